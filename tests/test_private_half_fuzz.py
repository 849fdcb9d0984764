"""Hypothesis-fuzzed prediction files through a round's deferred grade (harness.scheduler.private_half): what the
submit is reported on is the same, to the byte, whatever the private half's labels are; the later grade of the
private half never raises, leaves the reported public half as it was, and comes to what one grade of both halves
at once comes to."""
import io
from types import SimpleNamespace

import numpy as np
from helpers import make_tiny_task
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.settings import load_settings
from harness.scoring import score_interval
from harness.scoring.grade import grade
from harness.scoring.splits import halves

N = 30
ROUND = SimpleNamespace(public_fraction=0.5, split_seed=4)  # (what grade reads of a round)
PUBLIC, PRIVATE = halves(N, ROUND.public_fraction, ROUND.split_seed, "tiny")
BASE = [str(i % 2) for i in range(N)]
OTHER = [("7" if i % 3 else "0") if i in set(PRIVATE.tolist()) else BASE[i] for i in range(N)]  # private differs

tokens = st.one_of(st.sampled_from(["0", "1", "7", "", " ", "nan", "crash", "1.0", "-0", "0 1", "\t"]),
                   st.text(max_size=6))
predictions = st.one_of(
    st.lists(tokens, min_size=N - 1, max_size=N + 1).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(["0", "1", "7"]), min_size=N, max_size=N).map(lambda ls: "\n".join(ls).encode()),
    st.binary(max_size=120),
)
KEPT = (score_interval.STAGED, score_interval.STAGED_DRAWS, score_interval.EVALUATOR_VALUES)


def _task(folder, labels):
    task = make_tiny_task(folder)
    (task / "test" / "test_label").write_text("\n".join(labels) + "\n")
    (task / "test" / "test_data").write_text("\n".join(str(i) for i in range(N)) + "\n")
    split = "[split]\nlabel = \"lines\"\nprediction = \"lines\"\n"
    (task / "task.toml").write_text((task / "task.toml").read_text() + split)
    return task


def _graded(folder, data):
    prediction = folder / "graded" / "prediction"
    prediction.parent.mkdir(parents=True)
    prediction.write_bytes(data)
    return prediction


def _reported(prediction):
    return {name: (prediction.parent / name).read_bytes() for name in KEPT if (prediction.parent / name).exists()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=predictions)
def test_a_deferred_grade_is_blind_to_the_private_half_and_comes_to_a_whole_grade(tmp_path_factory, data):
    harness = load_settings()
    where = tmp_path_factory.mktemp("fuzz")
    tasks = [_task(where / name, labels) for name, labels in (("base", BASE), ("other", OTHER))]
    first = []
    for task in tasks:
        prediction = _graded(task.parent / f"{task.name}-run", data)
        g = grade(harness, task, prediction, False, ROUND, None, defer_private=True)
        first.append((g.score, g.reason, g.message, g.private_score, g.private_due, g.intervals, _reported(prediction)))
    assert first[0] == first[1], data[:80]  # the reported grade: nothing of the private labels in it
    task, (score, reason, _, private, due, _, _) = tasks[0], first[0]
    assert private is None and due is (reason is None)
    if reason is not None:
        return
    prediction = tasks[0].parent / f"{task.name}-run" / "graded" / "prediction"
    score_interval.keep_values(prediction, True)  # (as the scheduler commits the reported grade)
    reported = _kept(prediction)
    later = grade(harness, task, prediction, False, ROUND, None, public_score=score)
    if later.ok:
        score_interval.keep_private_half(prediction, (ROUND.public_fraction, ROUND.split_seed, "tiny"))
    else:
        score_interval.keep_values(prediction, False)
    assert later.score == score and not later.private_due
    assert _kept(prediction) == reported  # what the submit was reported with: as it was, to the byte
    whole_prediction = _graded(where / "whole", data)
    whole = grade(harness, task, whole_prediction, False, ROUND, None)
    assert (whole.score, whole.private_score) == (later.score, later.private_score)
    if later.private_score is not None:
        assert 0.0 <= later.private_score <= 1.0
    score_interval.keep_values(whole_prediction, True)
    private_kept = _kept(prediction, score_interval.PRIVATE_KEPT.values())
    for whole_kept, alone, cut in zip(_kept(whole_prediction), private_kept, (PRIVATE, 1)):  # the private half
        if alone is not None:  # ... as one grade of both halves keeps it
            assert np.array_equal(np.load(io.BytesIO(whole_kept))[cut], np.load(io.BytesIO(alone))[cut])


def _kept(prediction, names=(score_interval.PER_EXAMPLE, score_interval.DRAWS)):
    """The bytes of the values and draws kept beside PREDICTION (NAMES), None where none."""
    return [(prediction.parent / name).read_bytes() if (prediction.parent / name).exists() else None
            for name in names]
