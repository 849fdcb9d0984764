"""What a participant reads before a round closes never depends on the private half of its test set: whether a
submission's per-example values are kept (the Ladder's "not shown" words, the board's tie marks) and which public
values are kept were decided over every example, so a prediction crafted to overflow (or fail) on one private
example only if its hidden label is what the participant guessed told them that label, one bit per submit
(review of stop 49's notes). Now the public (or whole) half decides alone; a private half's unusable values are
kept as NaN, which only the private board's comparisons (after close) read, and they leave that entry out."""
import math

import numpy as np
import pytest
from helpers import make_tiny_task

from harness.core.enums import Direction
from harness.scoring import board_ties, score_interval
from harness.scoring.grade import prediction_path
from harness.scoring.splits import halves

SPLIT = (0.5, 1, "tiny")
N = 40


def _task(tmp_path, labels, metric_name, extra=""):
    task = make_tiny_task(tmp_path / "t")
    text = (task / "task.toml").read_text().replace('metric = "accuracy"', f'metric = "{metric_name}"')
    text = text.replace('"higher"', '"lower"')
    (task / "task.toml").write_text(text + '\n[split]\nlabel = "lines"\nprediction = "lines"\n' + extra)
    (task / "test" / "test_label").write_text("\n".join(map(str, labels)) + "\n")
    return task


def _grade(task, run_dir, pred, score, private_score, evaluator_values=None):
    """The intervals of PRED graded in RUN_DIR as a round's submission, its staged values committed."""
    prediction = prediction_path(str(run_dir))
    prediction.parent.mkdir(parents=True)
    prediction.write_text("\n".join(repr(v) for v in pred) + "\n")
    if evaluator_values is not None:
        (prediction.parent / score_interval.EVALUATOR_VALUES).write_text(
            "\n".join(repr(v) for v in evaluator_values) + "\n")
    got = score_interval.intervals(task, task / "test" / "test_label", prediction, score, private_score, SPLIT)
    score_interval.keep_values(prediction, keep=True)
    return got


def _rmse(pred, labels, idx):
    return math.sqrt(sum((pred[i] - labels[i]) ** 2 for i in idx) / len(idx))


@pytest.mark.parametrize("maker", ["library", "evaluator"])
def test_what_is_kept_of_the_public_half_does_not_depend_on_the_private_half(tmp_path, maker):
    labels = [float(i % 7) for i in range(N)]
    public, private = (list(h) for h in halves(N, *SPLIT))
    honest = [v + (0.5 if i % 3 == 0 else 0.0) for i, v in enumerate(labels)]
    probe = list(honest)
    probe[private[0]] = 1.2e154  # a finite value whose square overflows every resample (library: rmse)
    got, kept = {}, {}
    for name, pred in (("honest", honest), ("probe", probe)):
        errors = [(p - y) ** 2 for p, y in zip(pred, labels)]
        if maker == "library":
            task = _task(tmp_path / name, labels, "rmse")
            evaluator_values = None
        else:  # an opaque evaluator's own squared errors, one of them inf where the participant's value overflows
            task = _task(tmp_path / name, labels, "house-rmse", '[evaluator]\nper_example = "sqrt-mean"\n')
            evaluator_values = [e if math.isfinite(e) else math.inf for e in errors]
        run_dir = tmp_path / name / "run"
        got[name] = _grade(task, run_dir, pred, _rmse(pred, labels, public), _rmse(pred, labels, private),
                           evaluator_values)
        path = board_ties.kept_path(str(run_dir))
        kept[name] = np.load(path) if path.exists() else None
    assert got["honest"].private_low is not None and got["probe"].private_low is None  # (hidden until close)
    assert (got["probe"].low, got["probe"].high) == (got["honest"].low, got["honest"].high) != (None, None)
    assert kept["probe"] is not None, "the probe's values were not kept: the Ladder and the ties told it apart"
    assert np.array_equal(kept["probe"][public], kept["honest"][public])
    assert np.isnan(kept["probe"][private]).all() and np.isfinite(kept["honest"]).all()
    assert board_ties.kept_values(str(tmp_path / "probe" / "run")) is None  # whole-set readers leave it out


def test_ties_compare_the_public_halves_of_a_submission_whose_private_half_was_dropped(tmp_path):
    """The public board's tie marks read the public half only: an entry with a NaN private half is compared as
    the same entry with its private half kept, and the private board's leaves it out."""
    public, private = halves(N, *SPLIT)
    rng = np.random.default_rng(0)
    base = rng.random(N)
    dirs = {}
    for name, values in (("a", base), ("b", base + 0.05), ("b-probe", np.where(np.isin(np.arange(N), private[:1]),
                                                                               np.nan, base + 0.05))):
        graded = prediction_path(str(tmp_path / name)).parent
        graded.mkdir(parents=True)
        with open(graded / score_interval.PER_EXAMPLE, "wb") as fh:
            np.save(fh, np.asarray(values, dtype=np.float64))
        dirs[name] = str(tmp_path / name)
    public_split = (*SPLIT, "public")
    honest = board_ties.beats_next([dirs["a"], dirs["b"]], Direction.LOWER, public_split)
    probe = board_ties.beats_next([dirs["a"], dirs["b-probe"]], Direction.LOWER, public_split)
    assert honest is not None and probe == honest
    assert board_ties.beats_next([dirs["a"], dirs["b-probe"]], Direction.LOWER, (*SPLIT, "private")) is None
    assert board_ties.beats_next([dirs["a"], dirs["b"]], Direction.LOWER, (*SPLIT, "private")) is not None
    assert public.size + private.size == N


PRIVATE_SIZE_FAILS = '''
labels = open(a.test_label_path).read().split()
if len(labels) == {private}:  # stands for an evaluator that fails on the private half for some hidden labels
    raise ZeroDivisionError("no positive label among the predicted positives")
'''


def test_an_evaluator_failing_on_the_private_half_alone_fails_no_submission_before_close(cli, tmp_path):
    """The whole prediction and its public half scored, the private half failed: the submission stands on its
    public score with no private one, the failure is in its log for organizers, and a participant reads what
    they read of any other submission (it failed with the private half's failure, a bit of the hidden labels)."""
    from helpers import NSML_MAIN, ORGANIZER, participant
    task = make_tiny_task(tmp_path / "tiny")
    public, private = halves(15, 0.4, 3, "tiny")
    text = (task / "evaluation.py").read_text()
    head, tail = text.split("preds = open", 1)
    (task / "evaluation.py").write_text(head + PRIVATE_SIZE_FAILS.format(private=len(private)) + "preds = open" + tail)
    (task / "task.toml").write_text((task / "task.toml").read_text() + '[split]\nlabel = "lines"\nprediction = "lines"\n')
    cli("dataset", "add", task, user=ORGANIZER)
    (tmp_path / "cup.toml").write_text(
        'name = "cup"\n[teams]\nred = ["alice"]\n[[rounds]]\nname = "r1"\ntasks = ["tiny"]\n'
        'start = 2026-07-01T00:00:00\nend = 2026-07-02T00:00:00\npublic_fraction = 0.4\nsplit_seed = 3\n')
    cli("contest", "clock", "2026-07-01T01:00:00", user=ORGANIZER)
    cli("contest", "create", tmp_path / "cup.toml", user=ORGANIZER)
    folder = participant(tmp_path / "code", NSML_MAIN)
    name = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1 --threshold 35", folder,
               user="alice").stdout.split()[1]
    cli("logs", "-f", name, user="alice")
    got = cli.json("submit", name, "0", user="alice")
    assert got["status"] == "succeeded" and got["score"] is not None, got
    assert "private" not in str(got.get("message") or "") and got.get("reason") is None
    [row] = cli.json("board", "tiny", user="alice")["rows"]
    assert row["public"] == got["score"] and row.get("private") is None
    organizer = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)
    assert organizer["rows"][0]["private"] is None and organizer["rows"][0]["public"] == got["score"]
    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Submission
    h = Harness(load_settings(user=ORGANIZER))
    with h.tx() as db:
        sub = db.get(Submission, got["id"])
        assert sub.private_score is None and sub.score == got["score"]
        note = open(sub.run.log_path).read()
    h.store.close()
    assert "private half: " in note and "this submission has no private score" in note and "ZeroDivisionError" in note
    [again] = cli.json("rescore", "tiny", "--dry-run", user=ORGANIZER)["submissions"]  # the organizer's report
    assert not again["changed"] and again["note"].startswith("no private score: private half: ")
