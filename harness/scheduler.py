"""The background scheduler: one per state root, holding a file lock while it works.

It starts queued runs in FIFO order when their GPUs are free, watches running ones (limits, stop requests,
events), records outcomes, and scores finished submit runs in worker threads.  The CLI starts it on demand
(``ensure_running``) and it exits by itself when there is nothing left to do.

Hand-off without a lost run: whoever adds work commits it, then checks the lock and starts a scheduler if the
lock is free; the scheduler, after releasing the lock on its way out, checks once more for work and takes the
lock back if there is some.  Either side always sees the other's work.
"""
from __future__ import annotations

import argparse
import fcntl
import logging
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select

from . import gpus
from .db import Store, open_store
from .db.models import Run, Session, Submission, utcnow
from .enums import FailureReason, RunKind, RunStatus
from .ingest import ingest_events
from .launch import spec_for
from .runtime import Handle, Outcome, get_runtime, reap_orphans
from .scoring import evaluate
from .settings import Settings, load_settings
from .taskpack import Manifest
from .workspace import label_path

log = logging.getLogger("harness.scheduler")


class FileLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def is_free(self) -> bool:
        if self.acquire():
            self.release()
            return True
        return False


def has_pending_work(store: Store) -> bool:
    with store.tx() as db:
        return db.scalar(select(Run.id).where(Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING])).limit(1)) \
            is not None


def ensure_running(settings: Settings) -> None:
    """Start a background scheduler for this state root unless one holds the lock."""
    settings.ensure_dirs()
    if not FileLock(settings.lock_path).is_free():
        return
    log_file = open(settings.scheduler_log, "ab")
    cmd = [sys.executable, "-m", "harness.scheduler", "--root", str(settings.root), "--db", settings.db_url]
    src_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src_root, os.environ.get("PYTHONPATH")])))
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                     start_new_session=True, close_fds=True, env=env)
    log_file.close()


class Scheduler:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.handles: dict[int, Handle] = {}
        self.gpu_busy: dict[int, list[int]] = {}
        self.scoring: dict[int, Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="score")
        self.runtimes: dict[str, object] = {}

    def runtime(self, name: str):
        if name not in self.runtimes:
            self.runtimes[name] = get_runtime(name, self.settings)
        return self.runtimes[name]

    # -- recovery ------------------------------------------------------------------------------------------
    def recover(self) -> None:
        """Runs marked running by a scheduler that is gone (we hold the lock) can no longer be watched."""
        reaped = reap_orphans(self.settings)
        if reaped:
            log.warning("removed orphaned containers of %s", ", ".join(reaped))
        with self.store.tx() as db:
            for run in db.scalars(select(Run).where(Run.status == RunStatus.RUNNING)):
                if run.pid:
                    _kill_group(run.pid)
                self._finish(db, run, Outcome(RunStatus.FAILED, FailureReason.LOST, run.exit_code,
                                              "the scheduler watching this run stopped"))

    # -- one pass ------------------------------------------------------------------------------------------
    def tick(self) -> bool:
        """One pass over running and queued runs. Returns False when there is nothing left to do."""
        with self.store.tx() as db:
            self._watch(db)
        with self.store.tx() as db:
            self._start_queued(db)
        self._collect_scores()
        return bool(self.handles or self.scoring) or has_pending_work(self.store)

    def _watch(self, db) -> None:
        for run in db.scalars(select(Run).where(Run.status == RunStatus.RUNNING)):
            handle = self.handles.get(run.id)
            if handle is None:
                continue  # being scored in a worker thread
            if run.kind is RunKind.TRAIN:
                sess = db.scalar(select(Session).where(Session.run_id == run.id))
                if sess is not None:
                    ingest_events(db, run, sess)
            if run.stop_requested:
                handle.cancel(FailureReason.STOPPED, "stopped by the user")
            outcome = handle.poll()
            if outcome is None:
                continue
            del self.handles[run.id]
            self.gpu_busy.pop(run.id, None)
            if run.kind is RunKind.TRAIN:
                sess = db.scalar(select(Session).where(Session.run_id == run.id))
                if sess is not None:
                    ingest_events(db, run, sess)
                self._finish(db, run, outcome)
            elif outcome.status is RunStatus.SUCCEEDED:
                run.exit_code = outcome.exit_code
                self.scoring[run.id] = self.pool.submit(self._score, run.id)
            else:
                self._finish(db, run, outcome)

    def _start_queued(self, db) -> None:
        busy = {g for ids in self.gpu_busy.values() for g in ids}
        gpu_blocked = False
        queued = db.scalars(select(Run).where(Run.status == RunStatus.QUEUED).order_by(Run.id)).all()
        for run in queued:
            if len(self.handles) + len(self.scoring) >= self.settings.max_concurrent_runs:
                return
            if run.stop_requested:
                self._finish(db, run, Outcome(RunStatus.STOPPED, FailureReason.STOPPED, None,
                                              "stopped before it started"))
                continue
            ids: list[int] = []
            if run.gpus:
                if gpu_blocked:
                    continue  # FIFO among GPU runs: nobody overtakes the first one that waits
                got = gpus.allocate(self.settings, busy, run.gpus)
                if got is None:
                    gpu_blocked = True
                    continue
                ids = got
            self._launch(db, run, ids)
            busy.update(ids)

    def _launch(self, db, run: Run, gpu_ids: list[int]) -> None:
        run.gpu_ids = gpu_ids
        run.started_at = utcnow()
        try:
            spec = spec_for(self.settings, db, run)
            handle = self.runtime(run.runtime).start(spec)
        except Exception as exc:  # noqa: BLE001 - the run fails with a named reason, the scheduler goes on
            log.error("run %s failed to start: %s", run.id, traceback.format_exc())
            self._finish(db, run, Outcome(RunStatus.FAILED, FailureReason.LAUNCH_ERROR, None,
                                          f"could not start: {exc}"))
            return
        run.status = RunStatus.RUNNING
        run.pid = handle.pid
        self.handles[run.id] = handle
        self.gpu_busy[run.id] = gpu_ids
        sub = db.scalar(select(Submission).where(Submission.run_id == run.id))
        if sub is not None:
            sub.status = RunStatus.RUNNING

    # -- outcomes ------------------------------------------------------------------------------------------
    def _finish(self, db, run: Run, outcome: Outcome) -> None:
        run.status = outcome.status
        run.reason = outcome.reason
        run.exit_code = outcome.exit_code
        run.message = outcome.message or None
        run.ended_at = utcnow()
        if run.kind is RunKind.SUBMIT:
            sub = db.scalar(select(Submission).where(Submission.run_id == run.id))
            if sub is not None and not sub.status.terminal:
                sub.status, sub.reason, sub.message = outcome.status, outcome.reason, outcome.message or None

    def _score(self, run_id: int) -> None:
        """Worker thread: score a finished submit run with the task's evaluator."""
        with self.store.tx() as db:
            run = db.get(Run, run_id)
            sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
            dataset = Path(sub.task.path)
            manifest = Manifest.read(dataset)
            limit = manifest.scorer_seconds or self.settings.scorer_time_limit
            prediction = Path(run.run_dir) / "output" / "prediction"
            labels = label_path(dataset, sub.dry_run)
            evaluation = dataset / "evaluation.py"
        result = evaluate(evaluation, prediction, labels, limit)
        with self.store.tx() as db:
            run = db.get(Run, run_id)
            sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
            if result.ok:
                sub.score = result.score
                sub.scored_at = utcnow()
                sub.status = RunStatus.SUCCEEDED
                self._finish(db, run, Outcome(RunStatus.SUCCEEDED, None, run.exit_code, ""))
            else:
                self._finish(db, run, Outcome(RunStatus.FAILED, result.reason, run.exit_code, result.message))

    def _collect_scores(self) -> None:
        for run_id, fut in list(self.scoring.items()):
            if not fut.done():
                continue
            del self.scoring[run_id]
            exc = fut.exception()
            if exc is not None:
                log.error("scoring run %s crashed: %r", run_id, exc)
                with self.store.tx() as db:
                    self._finish(db, db.get(Run, run_id), Outcome(RunStatus.FAILED, FailureReason.HARNESS_ERROR,
                                                                  None, f"scoring crashed: {exc}"))

    def shutdown(self) -> None:
        for handle in self.handles.values():
            handle.cancel(FailureReason.HARNESS_ERROR, "the scheduler was shut down")
        self.pool.shutdown(wait=True)


def _kill_group(pid: int) -> None:
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def serve(settings: Settings) -> None:
    """Work until idle, then hand the lock back (see the module docstring for the hand-off)."""
    lock = FileLock(settings.lock_path)
    store = open_store(settings.db_url)
    while lock.acquire():
        sched = Scheduler(settings, store)
        try:
            sched.recover()
            idle_since = None
            while True:
                try:
                    busy = sched.tick()
                except Exception:  # noqa: BLE001 - a bad pass (a locked DB, say) must not strand running runs
                    log.error("scheduler pass failed: %s", traceback.format_exc())
                    busy = True
                if busy:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= settings.scheduler_idle_exit:
                    break
                time.sleep(settings.scheduler_tick)
        finally:
            sched.shutdown()
            lock.release()
        if not has_pending_work(store):
            break
    store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.scheduler")
    parser.add_argument("--root", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    serve(load_settings(root=args.root, db=args.db, user="scheduler"))


if __name__ == "__main__":
    main()
