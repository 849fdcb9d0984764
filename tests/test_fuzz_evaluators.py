"""Hypothesis-fuzzed prediction files against every built-in evaluator: a clear error or a valid score — never a
crash of the harness, never a NaN that could be ranked."""
import math
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.enums import FailureReason
from harness.scoring.evaluator import evaluate
from harness.taskpacks.registry import BUILTIN_TASKS

OK_REASONS = {FailureReason.INVALID_PREDICTION, FailureReason.MISSING_OUTPUT}

lines = st.lists(st.one_of(st.sampled_from(["0", "1", "1 ", " 0", "", "2", "-1", "nan", "inf", "1.0", "０", "x"]),
                           st.text(max_size=8)), max_size=40)
predictions = st.one_of(
    lines.map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
    st.integers(0, 40).map(lambda n: ("0\n" * n).encode()),  # right values, possibly the right count
)


def _built(tmp_path_factory, name):
    out = tmp_path_factory.mktemp(name)
    subprocess.run([sys.executable, str(BUILTIN_TASKS / name / "build.py"), "--out", str(out), "--scale", "0.05"],
                   check=True)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=predictions)
def test_garbage_docs_evaluator_never_crashes(tmp_path_factory, data):
    dataset = getattr(test_garbage_docs_evaluator_never_crashes, "_dataset", None)
    if dataset is None:
        dataset = test_garbage_docs_evaluator_never_crashes._dataset = _built(tmp_path_factory, "garbage-docs")
    pred = tmp_path_factory.mktemp("pred") / "prediction"
    pred.write_bytes(data)
    result = evaluate(BUILTIN_TASKS / "garbage-docs" / "evaluation.py", pred, dataset / "test" / "test_label", 60)
    if result.ok:
        assert math.isfinite(result.score) and 0.0 <= result.score <= 1.0
    else:
        assert result.reason in OK_REASONS, (result, data[:80])
        assert result.message and "\n" not in result.message


# -- the keyed tasks: near-valid predictions with the attacks seen on main (duplicate ids written as 1 and 1.0,
# ids as 0.000001, ids as lists or text, missing and unknown rows) plus random junk in every field -------------
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402

_DATASETS: dict = {}


def _dataset(tmp_path_factory, name, scale="0.05"):
    if name not in _DATASETS:
        out = tmp_path_factory.mktemp(name)
        subprocess.run([sys.executable, str(BUILTIN_TASKS / name / "build.py"), "--out", str(out),
                        "--scale", scale], check=True)
        _DATASETS[name] = out
    return _DATASETS[name]


def _label_rows(dataset):
    with open(dataset / "test" / "test_label", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


junk = st.one_of(st.sampled_from(["", "1", "1.0", "0.000001", "-1", "nan", "inf", "1e308", "[1]", "NA", "None",
                                  " 2 ", "0x10", "１"]), st.text(max_size=6))


def _mangle(rows, data, n_extra_cols=0):
    """Take the true rows and apply a few hostile edits drawn by hypothesis."""
    rows = [list(r) for r in rows]
    for _ in range(data.draw(st.integers(0, 4))):
        if not rows:
            break
        op = data.draw(st.sampled_from(["dup", "dup_float", "drop", "junk", "float_id"]))
        i = data.draw(st.integers(0, len(rows) - 1))
        if op == "dup":
            rows.append(list(rows[i]))
        elif op == "dup_float":
            rows.append([rows[i][0] + ".0", *rows[i][1:]])
        elif op == "drop":
            rows.pop(i)
        elif op == "float_id":
            rows.append(["0.000001", *rows[i][1:]])
        else:
            j = data.draw(st.integers(0, len(rows[i]) - 1))
            rows[i][j] = data.draw(junk)
    return rows


def _csv(header, rows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue().encode()


def _check(task, dataset, pred_bytes, tmp_path_factory, low=None, high=None):
    pred = tmp_path_factory.mktemp("pred") / "prediction"
    pred.write_bytes(pred_bytes)
    result = evaluate(BUILTIN_TASKS / task / "evaluation.py", pred, dataset / "test" / "test_label", 60)
    if result.ok:
        assert math.isfinite(result.score)
        assert (low is None or result.score >= low) and (high is None or result.score <= high)
    else:
        assert result.reason in OK_REASONS, (task, result, pred_bytes[:200])
        assert result.message and "\n" not in result.message
    return result


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_bus_eta_evaluator_never_crashes_nor_folds_ids(tmp_path_factory, data):
    dataset = _dataset(tmp_path_factory, "bus-eta")
    header, *rows = _label_rows(dataset)
    rows = _mangle([[r[0], str(float(r[1]) + data.draw(st.floats(-5, 5)))] for r in rows], data)
    result = _check("bus-eta", dataset, _csv(["id", "travel_s"], rows), tmp_path_factory, low=0)
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids) or any(not i.strip().isdigit() for i in ids):
        assert not result.ok  # a duplicate, or an id that is not a whole number, is never scored


@FUZZ
@given(data=st.data())
def test_face_age_evaluator_never_crashes(tmp_path_factory, data):
    dataset = _dataset(tmp_path_factory, "face-age")
    header, *rows = _label_rows(dataset)
    rows = _mangle([r[:2] for r in rows], data)
    result = _check("face-age", dataset, _csv(["file_name", "age_class"], rows), tmp_path_factory, 0, 1)
    names = [r[0] for r in rows]
    if len(set(names)) != len(names):
        assert not result.ok


@FUZZ
@given(data=st.data())
def test_landmark_evaluator_never_crashes(tmp_path_factory, data):
    dataset = _dataset(tmp_path_factory, "landmark")
    header, *rows = _label_rows(dataset)
    rows = _mangle([[r[0], str(max(int(r[1]), 0)), "0.5"] for r in rows], data)
    result = _check("landmark", dataset, _csv(["image_id", "class_id", "confidence"], rows), tmp_path_factory, 0, 1)
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        assert not result.ok


json_junk = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                                   st.text(max_size=4)),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                    max_size=2), max_leaves=6)


@FUZZ
@given(data=st.data())
def test_playlist_evaluator_never_crashes_nor_accepts_twins(tmp_path_factory, data):
    dataset = _dataset(tmp_path_factory, "playlist", "0.2")
    labels = json.loads((dataset / "test" / "test_label").read_text(encoding="utf-8"))
    meta = json.loads((dataset / "test" / "test_data" / "song_meta.json").read_text(encoding="utf-8"))
    songs = [s["id"] for s in meta][:100]
    entries = [{"id": p["id"], "songs": list(songs)} for p in labels]
    op = data.draw(st.sampled_from(["twin_float", "twin_str", "id_list", "junk_id", "junk_songs", "none"]))
    i = data.draw(st.integers(0, len(entries) - 1))
    if op == "twin_float":
        entries.append({"id": float(entries[i]["id"]), "songs": list(songs)})
    elif op == "twin_str":
        entries.append({"id": str(entries[i]["id"]), "songs": list(songs)})
    elif op == "id_list":
        entries[i]["id"] = [entries[i]["id"]]
    elif op == "junk_id":
        entries[i]["id"] = data.draw(json_junk)
    elif op == "junk_songs":
        entries[i]["songs"] = data.draw(json_junk)
    result = _check("playlist", dataset, json.dumps(entries).encode(), tmp_path_factory, 0, 1)
    if op in ("twin_float", "twin_str", "id_list"):
        assert result.reason is FailureReason.INVALID_PREDICTION, result
    if op == "none":
        assert result.ok, result


@pytest.mark.parametrize("task,header,row", [("bus-eta", ["id", "travel_s"], None)])
def test_bus_eta_float_id_attack_is_refused(tmp_path_factory, task, header, row):
    """The attack on main: extra rows whose ids are 0.000001 folded onto id 0 and halved the RMSE."""
    dataset = _dataset(tmp_path_factory, "bus-eta")
    _h, *rows = _label_rows(dataset)
    honest = [[r[0], "100"] for r in rows]
    attack = honest + [["0.000001", rows[0][1]]] * 5
    assert _check(task, dataset, _csv(header, honest), tmp_path_factory).ok
    result = _check(task, dataset, _csv(header, attack), tmp_path_factory)
    assert result.reason is FailureReason.INVALID_PREDICTION and "whole number" in result.message


@pytest.mark.parametrize("source, line, said", [
    ("import sys\n\nprint(1 +\n", 3, "SyntaxError"),
    ("import sys\n\ndef score():\n    raise RuntimeError('boom')\nscore()\n", 4, "RuntimeError: boom"),
])
def test_an_evaluator_that_fails_names_its_own_line(tmp_path, source, line, said):
    from harness.scoring.evaluator import evaluate
    (tmp_path / "evaluation.py").write_text(source)
    (tmp_path / "pred").write_text("1\n")
    (tmp_path / "label").write_text("1\n")
    got = evaluate(tmp_path / "evaluation.py", tmp_path / "pred", tmp_path / "label", 30)
    assert got.reason.value == "scorer_error"
    assert got.message.startswith(f"evaluation.py failed at evaluation.py:{line}: ")
    assert said in got.message


def test_the_failing_line_is_found_in_linear_time_whatever_the_stderr_quotes():
    """An evaluator's error may quote a participant's prediction (here 1 MB of blank lines); the harness reads its
    stderr after the evaluator's time limit, so the search must not backtrack across lines (it took 25 s for
    200 KB when it did)."""
    import time
    from pathlib import Path

    from harness.scoring.evaluator import _where_failed
    start = time.monotonic()
    found = _where_failed('  File "/t/evaluation.py", line 3\n' + " \n" * 500_000, Path("evaluation.py"))
    assert time.monotonic() - start < 2 and found == ""  # (the frame line is past the last 64 KiB it reads)
    assert _where_failed(" \n" * 500_000 + '  File "/t/evaluation.py", line 9\n', Path("evaluation.py")) \
        == " at evaluation.py:9"
