"""Waiting for a run to end: woken by its end marker, confirmed in the database, and a scheduler started when
none serves the state root (so a wait never hangs on a scheduler that died).

H is the caller's `harness.state.Harness` (anything with `.settings` and `.tx()`): this floor sits below it.
"""
from __future__ import annotations

import time
from pathlib import Path

from harness.core import doorbell
from harness.core.enums import RunStatus
from harness.store.models import Run, Submission

from .lease import ensure_running, private_due_now

PRIVATE_RECHECK = 0.2  # seconds between two looks at a round's private halves still due


def run_status(h, run_id: int) -> RunStatus:
    with h.tx() as db:
        return db.get(Run, run_id).status


def wait_run(h, run_id: int, timeout: float | None = None, recheck: float = 1.0) -> Run:
    """Until the run has ended (or TIMEOUT): woken by its end marker (harness.core.doorbell), confirmed in the
    database, and looked at every RECHECK seconds anyway (a scheduler that died is replaced meanwhile)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with h.tx() as db:
        run_dir = Path(db.get(Run, run_id).run_dir)
    watch = doorbell.FileWatch(run_dir, names={doorbell.ENDED}) if run_dir.is_dir() else None
    try:
        while True:
            with h.tx() as db:
                run = db.get(Run, run_id)
                if run.status.terminal:
                    return run
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return run
            ensure_running(h.settings)  # cheap while a scheduler holds the lease
            pause = recheck if left is None else min(recheck, left)
            if watch is not None:
                watch.wait(pause)
            else:
                time.sleep(min(pause, 0.1))
    finally:
        if watch is not None:
            watch.close()


def wait_private(h, round_id: int | None = None, task_id: int | None = None, timeout: float | None = None) -> bool:
    """Until the submissions of the round (ROUND_ID) or of the task (TASK_ID) whose private half waits to be scored
    now (harness.scheduler.private_half) have been scored, or TIMEOUT (those reported later are not waited for: a
    round's steady submits never hold it); a scheduler is started when none serves the state root. True when
    they have."""
    from sqlalchemy import select

    query = select(Submission.id).where(private_due_now(h.settings))  # (those kept to the round's end: not now)
    if round_id is not None:
        query = query.where(Submission.round_id == round_id)
    if task_id is not None:
        query = query.where(Submission.task_id == task_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = None
    while True:
        with h.tx() as db:
            due = set(db.scalars(query))
        waited = due if waited is None else waited & due
        if not waited:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        ensure_running(h.settings)
        time.sleep(PRIVATE_RECHECK)
