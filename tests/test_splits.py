"""Every built-in task's [split] declaration lines predictions up with labels: a prediction that is right on
exactly the public half scores perfectly on the public board and not on the private one (and the reverse)."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from harness.core.enums import FailureReason, counted
from harness.scoring.splits import SplitFormat, SplitScores, evaluate_split, halves
from harness.taskpacks.registry import BUILTIN_TASKS, Manifest


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def predict(task, dataset, out, right):
    """A prediction that is right on the label records whose index is in `right`, wrong elsewhere."""
    label = dataset / "test" / "test_label"
    if task == "garbage-docs":
        rows = _rows(label)
        out.write_text("".join(f"{int(r['label']) if i in right else 1 - int(r['label'])}\n"
                               for i, r in enumerate(rows)))
    elif task == "bus-eta":
        rows = _rows(label)
        _write_csv(out, ["id", "travel_s"], [[r["id"], float(r["travel_s"]) + (0 if i in right else 500)]
                                             for i, r in enumerate(rows)][::-1])  # order must not matter
    elif task == "face-age":
        rows = _rows(label)
        _write_csv(out, ["file_name", "age_class"],
                   [[r["file_name"], int(r["age_class"]) if i in right else (int(r["age_class"]) + 1) % 5]
                    for i, r in enumerate(rows)])
    elif task == "landmark":
        rows = _rows(label)
        _write_csv(out, ["image_id", "class_id", "confidence"],
                   [[r["image_id"], int(r["class_id"]) if i in right else (int(r["class_id"]) + 1) % 40, 1.0]
                    for i, r in enumerate(rows) if int(r["class_id"]) >= 0])
    elif task == "playlist":
        hidden = json.loads(label.read_text())
        songs = [s["id"] for s in json.loads((dataset / "test" / "test_data" / "song_meta.json").read_text())]
        pred = []
        for i, p in enumerate(hidden):
            first = list(p["songs"]) if i in right else []
            filler = [s for s in songs if s not in set(p["songs"]) and s not in first]
            pred.append({"id": p["id"], "songs": (first + filler)[:100]})
        out.write_text(json.dumps(pred))
    return out


@pytest.mark.parametrize("task", ["garbage-docs", "bus-eta", "face-age", "landmark", "playlist"])
def test_public_half_and_private_half_line_up(task, tmp_path):
    dataset = tmp_path / task
    subprocess.run([sys.executable, str(BUILTIN_TASKS / task / "build.py"), "--out", str(dataset), "--scale", "0.05"],
                   check=True, capture_output=True)
    for f in ("evaluation.py", "task.toml"):
        (dataset / f).write_bytes((BUILTIN_TASKS / task / f).read_bytes())
    manifest = Manifest.read(dataset)
    fmt = SplitFormat.from_manifest(manifest.extra, task)
    label = dataset / "test" / "test_label"
    n = len(json.loads(label.read_text())) if fmt.label == "json" else len(_rows(label))
    public, private = halves(n, 0.3, 7, task)
    best = 0.0 if manifest.direction.value == "lower" else 1.0

    def score(right):
        pred = predict(task, dataset, tmp_path / f"pred-{len(right)}", set(right.tolist()))
        result = evaluate_split(dataset / "evaluation.py", pred, label, fmt, 0.3, 7, task, 120)
        assert isinstance(result, SplitScores), result
        return result.public.score, result.private.score

    pub, priv = score(public)
    assert pub == pytest.approx(best) and priv != pytest.approx(best)
    pub, priv = score(private)
    assert pub != pytest.approx(best) and priv == pytest.approx(best)
    pub, priv = score(np.arange(n))
    assert pub == pytest.approx(best) and priv == pytest.approx(best)


def test_a_prediction_invalid_as_a_whole_is_not_split(tmp_path):
    dataset = tmp_path / "garbage-docs"
    subprocess.run([sys.executable, str(BUILTIN_TASKS / "garbage-docs" / "build.py"), "--out", str(dataset),
                    "--scale", "0.05"], check=True, capture_output=True)
    pred = tmp_path / "prediction"
    pred.write_text("0\n")
    fmt = SplitFormat("csv", "lines")
    result = evaluate_split(BUILTIN_TASKS / "garbage-docs" / "evaluation.py", pred, dataset / "test" / "test_label",
                            fmt, 0.3, 7, "garbage-docs", 60)
    assert result.reason is FailureReason.INVALID_PREDICTION and "expected" in result.message


def _bus_eta(tmp_path):
    dataset = tmp_path / "bus-eta"
    subprocess.run([sys.executable, str(BUILTIN_TASKS / "bus-eta" / "build.py"), "--out", str(dataset), "--scale",
                    "0.05"], check=True, capture_output=True)
    return dataset, dataset / "test" / "test_label"


def test_a_prediction_the_evaluator_accepts_but_the_split_cannot_parse_is_invalid_and_counted(tmp_path):
    """bus-eta's evaluator reads a value padded with 200,000 spaces (pandas has no field limit); Python's csv module,
    which cuts the halves, refuses a field over 128 KiB. That must be the prediction's fault (invalid, counted), not
    a harness error (uncounted): otherwise a participant chooses, from inside a submit run, between a counted score
    and an uncounted crash, as often as they like."""
    dataset, label = _bus_eta(tmp_path)
    rows = _rows(label)
    pred = tmp_path / "prediction"
    _write_csv(pred, ["id", "travel_s"], [[r["id"], (" " * 200_000 if i == 0 else "") + r["travel_s"]]
                                          for i, r in enumerate(rows)])
    fmt = SplitFormat.from_manifest(Manifest.read(BUILTIN_TASKS / "bus-eta").extra, "bus-eta")
    result = evaluate_split(BUILTIN_TASKS / "bus-eta" / "evaluation.py", pred, label, fmt, 0.3, 7, "bus-eta", 60)
    assert not isinstance(result, SplitScores)
    assert result.reason is FailureReason.INVALID_PREDICTION and "cannot split" in result.message
    assert counted(False, result.reason)


@pytest.mark.parametrize("body", ["[" * 200_000, '{"a":' * 100_000])
def test_json_nested_past_the_recursion_limit_is_an_invalid_prediction_for_the_split_and_for_playlist(tmp_path,
                                                                                                     body):
    from harness.scoring.evaluator import evaluate
    pred = tmp_path / "prediction"
    pred.write_text(body)
    dataset = tmp_path / "playlist"
    subprocess.run([sys.executable, str(BUILTIN_TASKS / "playlist" / "build.py"), "--out", str(dataset), "--scale",
                    "0.05"], check=True, capture_output=True)
    label = dataset / "test" / "test_label"
    result = evaluate(BUILTIN_TASKS / "playlist" / "evaluation.py", pred, label, 60)
    assert result.reason is FailureReason.INVALID_PREDICTION, result  # not a scorer error (uncounted)
    lenient = tmp_path / "evaluation.py"  # an evaluator that accepts anything: the split's own parse must refuse
    lenient.write_text("print(1.0)\n")
    result = evaluate_split(lenient, pred, label, SplitFormat("json", "json", "id"), 0.3, 7, "playlist", 60)
    assert not isinstance(result, SplitScores)
    assert result.reason is FailureReason.INVALID_PREDICTION and "cannot split" in result.message
    assert counted(False, result.reason)


def test_a_prediction_that_swells_when_parsed_is_cut_in_a_capped_child_and_is_the_predictions_doing(tmp_path):
    """A prediction the evaluator accepted may still parse into gigabytes: the halves are cut in a child with a
    memory cap, never in the scheduler; past the cap, a prediction far larger than its labels is counted."""
    from harness.scoring.splits import _cut_in_child
    label = tmp_path / "test_label"
    label.write_text("0\n1\n" * 10)
    pred = tmp_path / "prediction"
    with open(pred, "w") as fh:
        for _ in range(100):
            fh.write("1\n" * 200_000)  # 40 MB: over 16 times the labels' bytes past 16 MiB
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = _cut_in_child(pred, label, SplitFormat("lines", "lines"), 0.5, 1, "t", tmp_path / "out",
                           memory=400 << 20)
    assert result.reason is FailureReason.INVALID_PREDICTION and "the prediction's doing" in result.message, result
    assert counted(False, result.reason)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # (KiB) none of it in this process
    assert _cut_in_child(label, label, SplitFormat("lines", "lines"), 0.5, 1, "t", tmp_path / "ok") is None
    assert all((tmp_path / "ok" / half / "test_label").exists() for half in ("public", "private"))
