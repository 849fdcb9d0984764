"""A round's submit is reported on its public half, and its private half is scored after (harness.scheduler
.private_half): the time a submit took, which its participant reads, says nothing of how the organizer's evaluator
ran on the hidden labels. A round closes, and an organizer's private board is drawn, once every private half is
scored; one that a stopped scheduler left due is scored by the next one."""
import time

import numpy as np
import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant

from harness.core.settings import load_settings
from harness.scoring.splits import halves
from harness.state import Harness
from harness.store.models import Submission

SLOW = 25  # seconds the evaluator takes on the private half (its 9 labels at public_fraction 0.4), where a test
#           looks at what happens meanwhile (a training and a submit: a few seconds)
EVALUATOR_SLOW_ON_PRIVATE = '''
import time
if len(open(a.test_label_path).read().split()) == 9:
    time.sleep({slow})
'''


def _contest(cli, tmp_path, slow=1):
    task = make_tiny_task(tmp_path / "tiny")
    head, tail = (task / "evaluation.py").read_text().split("preds = open", 1)
    (task / "evaluation.py").write_text(head + EVALUATOR_SLOW_ON_PRIVATE.format(slow=slow) + "preds = open" + tail)
    split = '[split]\nlabel = "lines"\nprediction = "lines"\n'
    (task / "task.toml").write_text((task / "task.toml").read_text() + split)
    cli("dataset", "add", task, user=ORGANIZER)
    (tmp_path / "cup.toml").write_text(
        'name = "cup"\n[teams]\nred = ["alice"]\n[[rounds]]\nname = "r1"\ntasks = ["tiny"]\n'
        'start = 2026-07-01T00:00:00\nend = 2026-07-02T00:00:00\npublic_fraction = 0.4\nsplit_seed = 3\n'
        'submit = { quota = 5, period_seconds = 60 }\n')
    cli("contest", "clock", "2026-07-01T01:00:00", user=ORGANIZER)
    cli("contest", "create", tmp_path / "cup.toml", user=ORGANIZER)
    return _session(cli, tmp_path)


def _session(cli, tmp_path, folder="code"):
    folder = participant(tmp_path / folder, NSML_MAIN)
    name = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1 --threshold 30", folder,
               user="alice").stdout.split()[1]
    cli("logs", "-f", name, user="alice")
    return name


def _row(sub_id):
    h = Harness(load_settings(user=ORGANIZER))
    try:
        with h.tx() as db:
            sub = db.get(Submission, sub_id)
            return sub.status.value, sub.private_due, sub.private_score, sub.private_low
    finally:
        h.store.close()


def _expected_private(threshold=30, seed=3):
    numbers = list(range(1, 100, 7))
    private = [numbers[i] for i in halves(15, 0.4, seed, "tiny")[1]]
    return sum((x > threshold) == (x > 50) for x in private) / len(private)


def test_a_submit_ends_before_its_private_half_is_scored_and_the_close_waits_for_it(cli, tmp_path, state_root):
    """Nor does the next submit wait for it, on one run slot: a private half takes no slot and no grade's thread
    (review: the next submit's time told how long the last one's private half took)."""
    (state_root / "harness.toml").write_text("[scheduler]\nmax_concurrent_runs = 1\n")
    name = _contest(cli, tmp_path, slow=SLOW)
    got = cli.json("submit", name, "0", user="alice")
    status, due, private, _ = _row(got["id"])
    assert (got["status"], status, due, private) == ("succeeded", "succeeded", True, None)  # the evaluator sleeps
    #                                                       on the private half still: the submit did not wait for it
    again = cli.json("submit", _session(cli, tmp_path, "other"), "0", user="alice")  # a run, and a grade
    assert again["id"] != got["id"] and again["status"] == "succeeded"
    assert _row(got["id"])[1] is True  # (the first's private half: still due, and nothing of it waited)
    assert "private_score" not in cli.json("history", "tiny", user="alice")[0]
    start = time.monotonic()
    [row] = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)["rows"]  # waits for it
    assert time.monotonic() - start > 1 and row["private"] == _expected_private()
    status, due, private, low = _row(got["id"])
    assert (status, due, private) == ("succeeded", False, _expected_private()) and low is not None
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)
    closed = cli.json("contest", "close", "cup/r1", user=ORGANIZER)
    assert closed["boards"]["tiny"][0]["private"] == _expected_private() and not closed["no_private_score"]
    assert _row(again["id"])[1] is False  # (the close waited for the second's too)


def test_a_private_half_left_due_by_a_stopped_scheduler_is_scored_before_the_close(cli, tmp_path):
    name = _contest(cli, tmp_path)
    got = cli.json("submit", name, "0", user="alice")
    cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)  # (scored)
    scored = _row(got["id"])
    h = Harness(load_settings(user=ORGANIZER))
    with h.tx() as db:  # as a scheduler that stopped between the submit's report and its private half leaves it
        sub = db.get(Submission, got["id"])
        sub.private_due, sub.private_score, sub.private_low, sub.private_high = True, None, None, None
    h.store.close()
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)
    closed = cli.json("contest", "close", "cup/r1", user=ORGANIZER)
    assert _row(got["id"]) == scored and closed["boards"]["tiny"][0]["private"] == _expected_private()


def test_a_private_half_that_cannot_be_scored_is_given_up_unless_the_store_failed(cli, tmp_path, state_root,
                                                                                  monkeypatch):
    """What a grade never raises for (the round gone, say) ends the wait: no private score, and why in the log
    (a close waits for every private half, and each scheduler pass would try it again); a database that failed
    leaves it due for the next pass."""
    import psutil
    from sqlalchemy.exc import OperationalError

    from harness.scheduler import private_half
    name = _contest(cli, tmp_path)
    got = cli.json("submit", name, "0", user="alice")
    cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)  # (scored)
    for p in psutil.process_iter(["cmdline"]):  # no scheduler serves the root now: this test's calls alone
        if "harness.scheduler" in " ".join(p.info["cmdline"] or []) and str(state_root) in " ".join(
                p.info["cmdline"] or []):
            p.kill()
            p.wait(10)
    h = Harness(load_settings(user=ORGANIZER))
    with h.tx() as db:
        db.get(Submission, got["id"]).private_due = True

    def fails(exc):
        def _score(settings, store, run_id):
            raise exc
        return _score
    monkeypatch.setattr(private_half, "_score", fails(OperationalError("SELECT", {}, Exception("locked"))))
    private_half.score(h.settings, h.store, _run_of(h, got["id"]))
    assert _row(got["id"])[1] is True
    monkeypatch.setattr(private_half, "_score", fails(ValueError("its round is gone")))
    private_half.score(h.settings, h.store, _run_of(h, got["id"]))
    assert _row(got["id"])[1] is False
    with h.tx() as db:
        log = open(db.get(Submission, got["id"]).run.log_path).read()
    h.store.close()
    assert "private half: ValueError: its round is gone (harness_error): this submission has no private score" in log


def _run_of(h, sub_id):
    with h.tx() as db:
        return db.get(Submission, sub_id).run_id


ABS_ERROR = '''
import argparse
p = argparse.ArgumentParser()
p.add_argument("--prediction"); p.add_argument("--test_label_path")
a = p.parse_args()
errors = [abs(float(x) - float(y)) for x, y in zip(open(a.prediction).read().split(),
                                                  open(a.test_label_path).read().split())]
open("per_example.txt", "w").write("".join(f"{e}\\n" for e in errors))
print(sum(errors) / len(errors))
'''


def test_the_private_half_alone_is_evaluated_later_with_the_public_halfs_values_as_kept(tmp_path, monkeypatch):
    """The later grade evaluates the private half only (the organizer's evaluator runs twice a submit, not three
    times) and merges the public half's values as the first evaluation kept them: the same file, the same scores
    as a grade of both halves at once."""
    from harness.scoring import splits
    (tmp_path / "evaluation.py").write_text(ABS_ERROR)
    label, pred = tmp_path / "labels" / "test_label", tmp_path / "graded" / "prediction"
    label.parent.mkdir()
    pred.parent.mkdir()
    label.write_text("".join(f"{i % 7}\n" for i in range(30)))
    pred.write_text("".join(f"{(i * 3) % 5}\n" for i in range(30)))
    fmt, args = splits.SplitFormat("lines", "lines"), (0.4, 5, "abs", 60)
    both, later = tmp_path / "both.values", pred.parent / "evaluator_per_example.txt"
    whole = splits.evaluate_split(tmp_path / "evaluation.py", pred, label, fmt, *args, values_to=both)
    first = splits.evaluate_split(tmp_path / "evaluation.py", pred, label, fmt, *args, values_to=later,
                                  parts=("public",))
    assert first.private is None and first.public.score == whole.public.score
    assert [v for v in later.read_text().split() if v != "nan"] != both.read_text().split()  # (private: nan)
    seen = []
    evaluate = splits.evaluate
    monkeypatch.setattr(splits, "evaluate", lambda ev, p, *rest: seen.append(p.parent.name) or evaluate(ev, p, *rest))
    second = splits.evaluate_split(tmp_path / "evaluation.py", pred, label, fmt, *args, values_to=later,
                                   parts=("private",))
    assert seen == ["private"] and second.public is None and second.private.score == whole.private.score
    assert later.read_text() == both.read_text()


@pytest.mark.parametrize("metric_name", ["rmse", "f1"])  # values per example; a whole-sample metric's draws
def test_the_reported_grades_interval_work_never_reads_the_private_half(tmp_path, monkeypatch, metric_name):
    """The grade a submit is reported on computes and keeps the same, to the byte, whatever the private labels
    are: its interval child cuts the public half alone (private values and draws NaN) and resamples it alone."""
    from test_private_half_blind import SPLIT, N, _task, count_resampling

    from harness.scoring import score_interval
    public, private = halves(N, *SPLIT)
    kept, calls = [], count_resampling(monkeypatch)
    for shift in (0, 1):  # two test sets that differ in their private labels only
        labels = [(i % 3 + (shift if i in set(private.tolist()) else 0)) % 3 for i in range(N)]
        task = _task(tmp_path / str(shift), labels, metric_name)
        if metric_name == "f1":
            (task / "task.toml").write_text((task / "task.toml").read_text().replace('"lower"', '"higher"'))
        prediction = tmp_path / str(shift) / "graded" / "prediction"
        prediction.parent.mkdir()
        prediction.write_text("\n".join(str(i % 3) for i in range(N)) + "\n")
        calls.clear()
        from harness.scoring.metric_library import Records, metric
        m = metric(metric_name)
        kind = float if metric_name == "rmse" else int
        score = m.score(Records(labels=np.array([labels[i] for i in public], dtype=kind),
                                predictions=np.array([i % 3 for i in public], dtype=kind)))
        got = score_interval.compute(task, task / "test" / "test_label", prediction, score, None, SPLIT,
                                     wanted=("public",))
        staged = sorted(p.name for p in prediction.parent.iterdir() if p.name.endswith(".new"))
        kept.append((got, list(calls), [(prediction.parent / name).read_bytes() for name in staged]))
    assert kept[0] == kept[1] and kept[0][0].low is not None and kept[0][0].private_low is None
    assert len(kept[0][1]) == (1 if metric_name == "rmse" else 2)  # the public half's work alone


def test_the_later_grade_keeps_the_private_half_beside_what_the_reported_one_kept(tmp_path):
    """The later grade's child does more (both halves) and may fail where the reported one did not: what the
    reported grade kept stays as it was, to the byte and to its inode (a public board's tie marks are cached by
    those files: review of stop 51, a rewrite made the next public read slower at the moment the private half was
    kept); the private half goes into files of its own, which a private board reads; with nothing kept at the
    report nothing is written. A grade of both halves at once (a rescore) drops them."""
    from harness.scoring import board_ties, score_interval
    split = (0.4, 5, "t")
    public, private = halves(20, *split)
    folder = tmp_path / "graded"
    folder.mkdir()
    prediction = folder / "prediction"
    values, draws = np.arange(20.0), np.stack([np.ones(5), np.full(5, np.nan)])
    values[private] = np.nan

    def save(name, array):  # (as the harness writes them: np.save would add .npy to a name)
        with open(folder / name, "wb") as fh:
            np.save(fh, array)
    save(score_interval.PER_EXAMPLE, values)
    save(score_interval.DRAWS, draws)
    reported = {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    stamp = board_ties._stamp(str(tmp_path))
    save(score_interval.STAGED, np.arange(20.0) + 100)  # (its public half differs: never taken)
    save(score_interval.STAGED_DRAWS, np.stack([np.zeros(5), np.full(5, 2.0)]))
    score_interval.keep_private_half(prediction, split)
    assert {name: (folder / name).read_bytes() for name in reported} == {k: v[0] for k, v in reported.items()}
    assert {name: ((folder / name).stat().st_ino, (folder / name).stat().st_mtime_ns) for name in reported} == \
        {k: v[1:] for k, v in reported.items()} and board_ties._stamp(str(tmp_path)) == stamp
    later = board_ties.kept_halves(str(tmp_path), private=True)
    assert (later[private] == private + 100).all() and (later[public] == public).all()  # (both halves, merged)
    assert (board_ties.kept_halves(str(tmp_path))[public] == public).all()
    assert (board_ties.kept_draws(str(tmp_path), private=True)[1] == 2.0).all()
    assert board_ties._stamp(str(tmp_path), private=True) != board_ties._stamp(str(tmp_path))
    assert not list(folder.glob("*.new"))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    score_interval.keep_private_half(prediction, split)  # the later grade's child failed: nothing staged
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    save(score_interval.STAGED, np.arange(20.0))  # a rescore's grade of both halves: the private files go
    score_interval.keep_values(prediction, True)
    assert sorted(p.name for p in folder.iterdir()) == [score_interval.PER_EXAMPLE]
    for p in list(folder.iterdir()):
        p.unlink()
    save(score_interval.STAGED, np.arange(20.0))  # nothing kept at the report: nothing is now
    score_interval.keep_private_half(prediction, split)
    assert not list(folder.iterdir())


def test_a_later_private_interval_stands_only_beside_a_public_one(tmp_path):
    """As one grade of both halves: a public half whose interval overflows leaves no private interval either
    (the later grade does not resample the public half; private_half.private_interval keeps the rule)."""
    from test_private_half_blind import SPLIT, N, _task

    from harness.scheduler.private_half import private_interval
    from harness.scoring import score_interval
    from harness.scoring.metric_library import Records, metric
    public, private = halves(N, *SPLIT)
    labels = [float(i % 3) for i in range(N)]
    task = _task(tmp_path, labels, "rmse")
    pred = [1.2e154 if i == public[0] else float(i % 2) for i in range(N)]  # (its square overflows when summed)
    m = metric("rmse")
    scores = [m.score(Records(labels=np.array([labels[i] for i in cut]), predictions=np.array([pred[i] for i in cut])))
              for cut in (public, private)]
    got = {}
    for wanted in (("public", "private"), ("private",)):
        prediction = tmp_path / "-".join(wanted) / "prediction"
        prediction.parent.mkdir()
        prediction.write_text("\n".join(repr(x) for x in pred) + "\n")
        got[wanted] = score_interval.compute(task, task / "test" / "test_label", prediction, *scores, SPLIT,
                                             wanted=wanted)
    joint, later = got.values()
    assert joint.low is None and joint.private_low is None and later.private_low is not None  # (the later alone)
    assert private_interval(joint.low, later) == (None, None)
    assert private_interval(0.5, later) == (later.private_low, later.private_high)


def test_the_reported_grades_class_table_holds_the_public_halfs_classes_alone(tmp_path, monkeypatch):
    """Each half is coded alone (metric_records.Aligned): a private half of 20 classes the public half never
    shows makes no larger table (review: coded over the whole file, a crafted prediction's table outgrew the
    interval child's memory cap, or not, by how many classes the private half held)."""
    from test_private_half_blind import SPLIT, N, _task

    from harness.scoring import metric_library, score_interval
    from harness.scoring.metric_library import Records, metric
    public, private = halves(N, *SPLIT)
    tables, kept = [], []
    real = metric_library.CellSample.__post_init__
    monkeypatch.setattr(metric_library.CellSample, "__post_init__",
                        lambda self: (tables.append(self.ncells), real(self))[1])
    m = metric("f1")
    for many in (False, True):  # the private half's labels: the public half's three classes, or 20 new ones
        labels = [(100 + i if many and i in set(private.tolist()) else i % 3) for i in range(N)]
        task = _task(tmp_path / str(many), labels, "f1")
        (task / "task.toml").write_text((task / "task.toml").read_text().replace('"lower"', '"higher"'))
        prediction = tmp_path / str(many) / "graded" / "prediction"
        prediction.parent.mkdir()
        prediction.write_text("\n".join(str(i % 3) for i in range(N)) + "\n")
        score = m.score(Records(labels=np.array([labels[i] for i in public]),
                                predictions=np.array([i % 3 for i in public])))
        tables.clear()
        got = score_interval.compute(task, task / "test" / "test_label", prediction, score, None, SPLIT,
                                     wanted=("public",))
        staged = sorted(p.name for p in prediction.parent.iterdir() if p.name.endswith(".new"))
        kept.append((got, sorted(set(tables)), [(prediction.parent / name).read_bytes() for name in staged]))
    assert kept[0] == kept[1] and kept[0][1] == [9] and kept[0][0].low is not None  # (3 classes: a 3x3 table)


@pytest.mark.parametrize("metric_name", ["rmse", "f1"])
def test_the_later_grades_interval_work_is_the_private_halfs_alone(tmp_path, monkeypatch, metric_name):
    """The later grade checks the public half's score (cheap) but resamples only the private half: the same
    private interval, values and draws as one grade of both halves, for about half the work."""
    from test_private_half_blind import SPLIT, N, _task, count_resampling

    from harness.scoring import score_interval
    from harness.scoring.metric_library import Records, metric
    public, private = halves(N, *SPLIT)
    calls = count_resampling(monkeypatch)
    labels = [(i * 7) % 3 for i in range(N)]
    task = _task(tmp_path, labels, metric_name)
    if metric_name == "f1":
        (task / "task.toml").write_text((task / "task.toml").read_text().replace('"lower"', '"higher"'))
    m, kind = metric(metric_name), float if metric_name == "rmse" else int
    pred = [i % 3 for i in range(N)]
    score_of = [m.score(Records(labels=np.array([labels[i] for i in cut], dtype=kind),
                                predictions=np.array([pred[i] for i in cut], dtype=kind))) for cut in (public, private)]
    got = {}
    for wanted in (("public", "private"), ("private",)):
        prediction = tmp_path / "-".join(wanted) / "prediction"
        prediction.parent.mkdir()
        prediction.write_text("\n".join(map(str, pred)) + "\n")
        calls.clear()
        result = score_interval.compute(task, task / "test" / "test_label", prediction, score_of[0], score_of[1],
                                        SPLIT, wanted=wanted)
        staged = [np.load(prediction.parent / name) for name in sorted(p.name for p in prediction.parent.iterdir()
                                                                      if p.name.endswith(".new"))]
        got[wanted] = (result, list(calls), staged)
    (both, both_calls, both_staged), (later, later_calls, later_staged) = got.values()
    assert later.low is None and (later.private_low, later.private_high) == (both.private_low, both.private_high)
    assert later.private_low is not None and len(later_calls) * 2 == len(both_calls)
    for whole, alone in zip(both_staged, later_staged):  # values: the private indices; draws: the private row
        assert np.array_equal(whole[private] if whole.ndim == 1 else whole[1],
                              alone[private] if alone.ndim == 1 else alone[1])


def test_a_public_boards_tie_marks_never_look_at_private_intervals():
    """Review of stop 51: with no public interval on the board, a private interval kept later (a team's final
    submission's) still made the public board's next read query its run folders and resample: more work, at the
    moment the private half was kept."""
    from harness.core.enums import Direction
    from harness.scoring.board_ties import mark_board

    def queried(*a, **k):
        raise AssertionError("the public board looked up run folders")
    rows = [{"team": t, "public_rank": i + 1, "public_submission": i + 1, "final_submission": i + 1,
             "public_interval": None, "private_interval": [0.1, 0.2]} for i, t in enumerate(("red", "blue"))]
    mark_board(rows, queried, Direction.HIGHER, "public_rank", "public_submission", (0.5, 1, "tiny", "public"))
    assert all(r["tie"] is None and r["beats_next"] is None for r in rows)
