"""How every run ends: `mark` records its status, failure reason and message, syncs the submission it serves,
and (after the commit) writes the run folder's end marker that waiters watch."""
from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy import select

from harness.core import doorbell
from harness.core.clock import utcnow
from harness.core.enums import FailureReason, RunKind, RunStatus
from harness.runtime.base import RUN_OUTPUT, remove_later
from harness.store.engine import after_commit
from harness.store.models import Run, Submission

from .events import events_path


def sync_submission(db, run: Run) -> Submission | None:
    """A submit run's submission follows its run's status, the one place that copies it (once the submission
    has ended it keeps its own outcome: a score stays a score). Returns it."""
    if run.kind is not RunKind.SUBMIT:
        return None
    sub = db.scalar(select(Submission).where(Submission.run_id == run.id))
    if sub is not None and not sub.status.terminal:
        sub.status = run.status
        if run.status.terminal:
            sub.reason, sub.message = run.reason, run.message
    return sub


def mark(db, run: Run, status: RunStatus, reason: FailureReason | None, message: str | None) -> None:
    """Record a run's end (and its submission's, unless that already ended). Once that is committed, what the run
    wrote beside its log goes: its events folder (read to its end by then) and a submit's output folder (its
    prediction taken, or never to be): each held up to limits.scratch_bytes, under no user's limit."""
    run.status, run.reason, run.message = status, reason, message or None
    run.ended_at = utcnow()
    run.phase = None
    sub = sync_submission(db, run)
    if run.run_dir:
        after_commit(db, functools.partial(doorbell.mark_ended, run.run_dir))  # waiters wake once it is committed
        after_commit(db, functools.partial(remove_later, events_path(run).parent, Path(run.run_dir) / RUN_OUTPUT))
        if sub is not None and sub.dry_run and sub.session_id is None:  # a dry run whose session was removed
            after_commit(db, functools.partial(remove_later, Path(run.run_dir)))  # while it ran: nothing stays
            #                                     (nobody's storage would count it: runs.create.kept_bytes)


def requeue(db, run: Run, message: str | None = None) -> None:
    """Put a run whose participant code never started back in the queue, in its old place (its id)."""
    run.status, run.phase, run.started_at, run.gpu_ids, run.heartbeat_at, run.pid = (
        RunStatus.QUEUED, None, None, [], None, None)
    run.message = message or None
    if run.spec and "node" in run.spec:
        run.spec = {k: v for k, v in run.spec.items() if k != "node"}
    sync_submission(db, run)
