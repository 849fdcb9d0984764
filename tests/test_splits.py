"""Every built-in task's [split] declaration lines predictions up with labels: a prediction that is right on
exactly the public half scores perfectly on the public board and not on the private one (and the reverse)."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from harness.core.enums import FailureReason
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
