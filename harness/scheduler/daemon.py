"""The scheduler's process: take the state root's lock (and, on a shared database, the database's lease), run
`Scheduler` passes until there is nothing left to do, hand the lock back. `python -m harness.scheduler`."""
from __future__ import annotations

import argparse
import logging
import signal
import time
import traceback

from harness.core import doorbell
from harness.core.settings import Settings, forget_store_url, load_settings
from harness.store import open_store

from .lease import FileLock, has_pending_work
from .loop import Scheduler

log = logging.getLogger("harness.scheduler")
IDLE_RECHECK = 1.0  # an idle scheduler looks at the database this often even without a ring


def serve(settings: Settings, lock: FileLock) -> None:
    """Work until idle, then hand the lock back (see harness.scheduler.lease for the hand-off). LOCK is held on entry.
    On a database several machines share (PostgreSQL) the database's lease is taken too: one scheduler serves it."""
    store = open_store(settings.db_url)
    dblease = store.lease()
    if not dblease.acquire():
        log.info("another scheduler holds this database's lease: it serves these runs; stopping")
        lock.release()
        store.close()
        return
    try:
        _serve(settings, lock, store)
    finally:
        dblease.release()
        store.close()


def _serve(settings: Settings, lock: FileLock, store) -> None:
    while True:
        bell = doorbell.Doorbell(settings.state_dir)  # opened before the first pass: no ring is missed
        sched = Scheduler(settings, store)
        try:
            sched.recover()
            idle_since = failing_since = None
            while True:
                if not settings.state_dir.is_dir():
                    log.error("%s is gone: this state root was removed; stopping", settings.state_dir)
                    return  # (finally: runs cancelled, lock released)
                now = time.monotonic()
                try:
                    busy = sched.tick()
                    failing_since = None
                except Exception:  # noqa: BLE001 - a bad pass (a locked DB, say) must not strand running runs
                    log.error("scheduler pass failed: %s", traceback.format_exc())
                    busy, failing_since = True, failing_since or now
                    if now - failing_since > settings.lease_seconds:
                        # as long as a lease: its heartbeats are stale by now, so the next CLI call would end it
                        log.error("every pass failed for %.0f s (the store is gone?): stopping; the next "
                                  "scheduler recovers this root's runs", now - failing_since)
                        return  # (finally: runs cancelled, lock released)
                if busy:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= settings.scheduler_idle_exit:
                    break
                timeout = settings.scheduler_tick if busy else \
                    min(IDLE_RECHECK, settings.scheduler_idle_exit - (now - (idle_since or now)))
                sched.wait_for_events(bell, timeout)
        finally:
            sched.shutdown()
            bell.close()
            lock.release()
        if not has_pending_work(store, settings) or not lock.acquire():
            break


def _stop(_signum, _frame) -> None:
    """SIGTERM (an operator's stop, a test's teardown): leave as at any end, through `_serve`'s cleanup, so that
    the runs it watches are cancelled and their containers removed rather than left behind for a later reap."""
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="harness-scheduler")
    parser.add_argument("--root", required=True)
    parser.add_argument("--db", default=None, help="the store (default: HARNESS_DB, as its starter gives it)")
    parser.add_argument("--lock-fd", type=int, default=None, help="the lease, already taken by whoever started us")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = load_settings(root=args.root, db=args.db, user="scheduler")
    forget_store_url()  # (its evaluators and tools inherit its environment)
    signal.signal(signal.SIGTERM, _stop)
    if args.lock_fd is not None:
        lock = FileLock.adopt(settings.lock_path, args.lock_fd)
    else:
        lock = FileLock(settings.lock_path)
        if not lock.acquire():
            return  # another scheduler serves this root
    serve(settings, lock)
