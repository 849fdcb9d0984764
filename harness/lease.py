"""The scheduler's lease on a state root: a file lock, the hand-off protocol, and recovery on any CLI call.

Hand-off without a lost run: whoever adds work commits it, then checks the lock and starts a scheduler if the
lock is free; the scheduler, after releasing the lock on its way out, checks once more for work and takes the
lock back if there is some.  Either side always sees the other's work.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from .db import Store
from .db.models import Run
from .enums import RunStatus
from .recovery import recover_runs, running_exists, stale_runs
from .settings import Settings

log = logging.getLogger("harness.lease")


class FileLock:
    """An exclusive, non-blocking flock; the holder writes its pid into the file."""

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
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
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

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None


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
    src_root = str(Path(__file__).resolve().parent.parent)  # this harness, installed or not
    boot = f"import sys; sys.path.insert(0, {src_root!r}); from harness.scheduler import main; main()"
    cmd = [sys.executable, "-c", boot, "--root", str(settings.root), "--db", settings.db_url]
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                     start_new_session=True, close_fds=True)
    log_file.close()


def recover_if_orphaned(settings: Settings, store: Store) -> None:
    """Run on every CLI call: runs marked running with no live scheduler are requeued or failed as lost."""
    lock = FileLock(settings.lock_path)
    if not lock.acquire():
        if not stale_runs(store, settings.lease_seconds):
            return  # a live scheduler renews its runs' heartbeats
        pid = lock.holder()  # it holds the lock but renews nothing: hung. End it and take over.
        if pid and pid != os.getpid():
            log.warning("scheduler %s renewed no heartbeat for %s s: killing it", pid, settings.lease_seconds)
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for _ in range(50):
            if lock.acquire():
                break
            time.sleep(0.1)
        else:
            return
    try:
        if running_exists(store):
            recover_runs(settings, store)  # runs being scored stay: the next scheduler scores them again
    finally:
        lock.release()
    if has_pending_work(store):
        ensure_running(settings)
