"""Nothing is left "running" when nobody watches it.

The scheduler holds the state root's lock (a lease the OS ends when the process dies) and renews a heartbeat on
each run it watches.  Any harness start or CLI call that finds the lock free while runs are marked running, or
finds their heartbeats older than the lease (a hung scheduler, which it then kills), recovers them:

- a run whose participant code never started (its scheduler died while launching) goes back to the queue;
- a run whose code started is failed with the reason ``lost`` and its processes and containers are reaped;
- a submit whose inference had finished and was being scored stays for the next scheduler, which scores it
  again (scoring is idempotent: one submission row, one score).
"""
from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from harness.core.clock import utcnow
from harness.core.enums import FailureReason, RunPhase, RunStatus
from harness.core.settings import Settings
from harness.runs.ending import mark, requeue
from harness.runs.events import collect_all, record
from harness.runtime.base import Executor, remove_scratch
from harness.runtime.executors import get_executor
from harness.store import Store
from harness.store.models import Run, Session

log = logging.getLogger("harness.scheduler.recovery")


def recover_runs(settings: Settings, store: Store, executor: Executor | None = None) -> list[int]:
    """Call with the scheduler lock held. Returns the submit runs to score again."""
    rescore = []
    executor = executor or get_executor(settings)
    with store.tx() as db:  # what the lost runs saved, read outside the transaction that records it
        pending = db.execute(select(Run.id, Run.run_dir, Run.events_offset, Session.dir)
                             .join(Session, Session.run_id == Run.id).where(Run.status == RunStatus.RUNNING)).all()
    collected = {rid: collect_all(Path(run_dir), offset or 0, Path(sess_dir) / "checkpoints")
                 for rid, run_dir, offset, sess_dir in pending}
    with store.tx() as db:
        for run in db.scalars(select(Run).where(Run.status == RunStatus.RUNNING)):
            if run.phase is RunPhase.SCORING:
                rescore.append(run.id)
                continue
            started = executor.runtime(run.runtime).cleanup(run) or bool(run.pid)  # the runtime reaps what is left
            if started:
                sess = db.scalar(select(Session).where(Session.run_id == run.id))
                if sess is not None and run.id in collected:
                    record(db, run, sess, collected[run.id])  # checkpoints it saved before the crash are kept
                mark(db, run, RunStatus.FAILED, FailureReason.LOST, "the scheduler watching this run stopped")
                if run.run_dir:
                    remove_scratch(Path(run.run_dir))  # (the run folder's scratch, as at every end)
                log.warning("run %s: lost", run.id)
            else:  # participant code never ran: back to the queue, in its old place
                requeue(db, run, run.message)
                log.warning("run %s: requeued (it had not started)", run.id)
    from harness.scoring.ladder_board import sweep
    sweep(store)  # Ladder decisions a crash or a failed replay left waiting (the lost runs' teams among them)
    with store.tx() as db:  # only runtimes this root has used can have left something (no engine ping otherwise)
        used = set(db.scalars(select(Run.runtime).distinct()))
    executor.reap_orphans(used)  # what is left belongs to no running run
    return rescore


def stale_runs(store: Store, lease_seconds: float) -> bool:
    limit = utcnow() - timedelta(seconds=lease_seconds)
    with store.tx() as db:
        return db.scalar(select(Run.id).where(Run.status == RunStatus.RUNNING, Run.heartbeat_at < limit)
                         .limit(1)) is not None


def running_exists(store: Store) -> bool:
    with store.tx() as db:
        return db.scalar(select(Run.id).where(Run.status == RunStatus.RUNNING).limit(1)) is not None
