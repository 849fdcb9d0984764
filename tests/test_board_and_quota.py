"""Leaderboard ordering (direction, ties, NaN) and the submit quota, against a real SQLite store."""
from datetime import timedelta

import pytest
from helpers import make_tiny_task

from harness.core.clock import utcnow
from harness.core.enums import FailureReason, RunKind, RunStatus
from harness.core.errors import QuotaExceeded
from harness.core.settings import load_settings
from harness.service import boards
from harness.service.submits import check_quota
from harness.state import Harness
from harness.store.models import Run, Submission
from harness.taskpacks.registry import Manifest


def _harness(tmp_path, direction):
    h = Harness(load_settings())
    folder = make_tiny_task(tmp_path / f"task-{direction}", name=f"t-{direction}", direction=direction)
    with h.tx() as db:
        h.register_task(db, Manifest.read(folder), folder)
    return h, f"t-{direction}"


def _add(h, task_name, user, score, minutes_ago, status=RunStatus.SUCCEEDED, reason=None, dry_run=False):
    with h.tx() as db:
        task = h.task(db, task_name)
        run = Run(kind=RunKind.SUBMIT, status=status, spec={}, gpu_ids=[])
        db.add(run)
        db.flush()
        db.add(Submission(user_id=h.user(db, user).id, task_id=task.id, session_name=f"{user}/{task_name}/1",
                          checkpoint=str(minutes_ago), run_id=run.id, status=status, reason=reason, score=score,
                          dry_run=dry_run, created_at=utcnow() - timedelta(minutes=minutes_ago)))


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_each_users_best_in_the_tasks_direction(tmp_path, direction):
    h, task = _harness(tmp_path, direction)
    _add(h, task, "alice", 0.5, 50)
    _add(h, task, "alice", 0.9, 40)
    _add(h, task, "bob", 0.7, 30)
    _add(h, task, "carol", 0.1, 20, dry_run=True)  # dry runs are never ranked
    rows = boards.board(h, task)
    if direction == "higher":
        assert [(r["user"], r["score"]) for r in rows] == [("alice", 0.9), ("bob", 0.7)]
    else:
        assert [(r["user"], r["score"]) for r in rows] == [("alice", 0.5), ("bob", 0.7)]
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["submits"] == 2 and rows[1]["submits"] == 1


def test_ties_share_a_rank_and_the_earlier_submission_comes_first(tmp_path):
    h, task = _harness(tmp_path, "higher")
    _add(h, task, "late", 0.8, 5)
    _add(h, task, "early", 0.8, 60)
    _add(h, task, "top", 0.95, 1)
    _add(h, task, "last", 0.2, 2)
    rows = boards.board(h, task)
    assert [(r["rank"], r["user"]) for r in rows] == [(1, "top"), (2, "early"), (2, "late"), (4, "last")]


def test_failed_and_nan_scores_are_never_ranked(tmp_path):
    h, task = _harness(tmp_path, "higher")
    _add(h, task, "nan", float("nan"), 10)
    _add(h, task, "crash", None, 9, status=RunStatus.FAILED, reason=FailureReason.EXIT_CODE)
    _add(h, task, "ok", 0.3, 8)
    assert [r["user"] for r in boards.board(h, task)] == ["ok"]


def test_quota_counts_submits_in_the_period_with_simulated_time(tmp_path):
    h, task = _harness(tmp_path, "higher")
    now = utcnow()
    with h.tx() as db:
        t, me = h.task(db, task), h.user(db, "alice")
        check_quota(db, me.id, t, quota=1, period=3600, now=now)  # nothing yet
    _add(h, task, "alice", 0.5, 30)
    with h.tx() as db:
        t, me = h.task(db, task), h.user(db, "alice")
        with pytest.raises(QuotaExceeded, match=r"next submit allowed at"):
            check_quota(db, me.id, t, quota=1, period=3600, now=now)
        check_quota(db, me.id, t, quota=1, period=3600, now=now + timedelta(minutes=31))  # an hour later: fine
        check_quota(db, me.id, t, quota=2, period=3600, now=now)
        check_quota(db, me.id, t, quota=0, period=3600, now=now)  # 0 = unlimited
        check_quota(db, h.user(db, "bob").id, t, quota=1, period=3600, now=now)  # per user


def test_harness_faults_and_dry_runs_do_not_count(tmp_path):
    h, task = _harness(tmp_path, "higher")
    _add(h, task, "alice", None, 5, status=RunStatus.FAILED, reason=FailureReason.LOST)
    _add(h, task, "alice", None, 4, status=RunStatus.FAILED, reason=FailureReason.HARNESS_ERROR)
    _add(h, task, "alice", 1.0, 3, dry_run=True)
    with h.tx() as db:
        check_quota(db, h.user(db, "alice").id, h.task(db, task), quota=1, period=3600)
    _add(h, task, "alice", None, 2, status=RunStatus.FAILED, reason=FailureReason.EXIT_CODE)  # the code's fault
    with h.tx() as db, pytest.raises(QuotaExceeded):
        check_quota(db, h.user(db, "alice").id, h.task(db, task), quota=1, period=3600)


def test_quota_through_the_cli(cli, tiny_task, nsml_folder):
    from helpers import run_session
    name = run_session(cli, nsml_folder)
    cli("submit", name, "1")
    r = cli("submit", name, "0", code=2)
    assert r.stderr.startswith("Error: submit quota reached for tiny: 1 per 3600 s; next submit allowed at")
    assert len(r.stderr.strip().splitlines()) == 1


def test_submitting_a_checkpoint_again_says_it_is_the_earlier_submission(cli, tiny_task, nsml_folder):
    from helpers import run_session
    name = run_session(cli, nsml_folder)
    first = cli("submit", name, "1")
    assert "Score:" in first.stdout and "submitted already" not in first.stderr
    again = cli("submit", name, "1")  # within the quota's hour: the same submission, never a second count
    assert "Score:" in again.stdout
    sub_id = cli.json("history", "tiny")[0]["id"]
    assert f"checkpoint 1 of {name} was submitted already, as submission {sub_id}: its score (counted once)" \
        in again.stderr
    assert len(cli.json("history", "tiny")) == 1
