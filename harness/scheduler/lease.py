"""The scheduler's lease on a state root: a file lock, the hand-off protocol, and recovery on any CLI call.

Hand-off without a lost run: whoever adds work commits it, rings the doorbell (harness.core.doorbell), then checks the
lock and starts a scheduler if the lock is free; the scheduler, after releasing the lock on its way out, checks
once more for work and takes the lock back if there is some.  Either side always sees the other's work.

Exactly one scheduler: the process that starts one takes the lock first and hands it to the child (the child
inherits the locked file), so no second scheduler can start while the first is still importing.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core import doorbell
from harness.core.enums import RunStatus
from harness.core.settings import Settings, inherited_environment, python_module

if TYPE_CHECKING:
    from harness.store import Store

# The lock and the start need no database library (harness.server.local_service starts a scheduler before it
# loads one); the checks that read the store import it when called.

log = logging.getLogger("harness.scheduler.lease")


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
        self.fd = fd
        self.write_holder(os.getpid())
        return True

    @classmethod
    def adopt(cls, path: Path, fd: int) -> "FileLock":
        """The lock as handed over by the process that started us (it holds the flock already)."""
        lock = cls(path)
        lock.fd = fd
        os.set_inheritable(fd, False)
        lock.write_holder(os.getpid())
        return lock

    def write_holder(self, pid: int) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(pid).encode(), 0)

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


def _graded_rounds(settings: Settings):
    """The rounds whose private halves are scored now where the operator keeps them to their round's end: a round
    closed, or ended by the contest clock with none of its submits still queued or running (review of this stop:
    one reported later could still become its team's best-public pick, and its inference could watch the others'
    private halves graded before it chose what to predict)."""
    from sqlalchemy import and_, or_, select

    from harness.core import clock
    from harness.store.models import Round, Submission
    pending = select(Submission.round_id).where(Submission.round_id.is_not(None),
                                                Submission.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
    return select(Round.id).where(or_(Round.closed_at.is_not(None),
                                      and_(Round.ends_at <= clock.now(settings), Round.id.not_in(pending))))


def private_due_now(settings: Settings):
    """Which submissions' private halves are scored now (a condition on Submission): those due, and where the
    operator keeps private halves to their round's end (`[scheduler] private_halves_at_close`), only those of a
    round that has ended and has no submit left to report (_graded_rounds). A participant's session running beside
    a private half's grade then sees it (the machine's CPU, its free space) only once the round takes no more
    submits, reports none, and its final selection is frozen (contest.rounds.select_submissions)."""
    from sqlalchemy import and_

    from harness.store.models import Submission
    due = Submission.private_due.is_(True)
    if not settings.private_at_close:
        return due
    return and_(due, Submission.round_id.in_(_graded_rounds(settings)))


def private_kept(settings: Settings, db, round_id: int) -> bool:
    """Whether ROUND_ID keeps its private halves now (private_due_now's rule for one round): until then no private
    half of it is graded, a rescore's included (it grades the public halves alone)."""
    from harness.store.models import Round
    return settings.private_at_close and db.scalar(_graded_rounds(settings).where(Round.id == round_id)) is None


def submit_key(task: str) -> str:
    """The serialization key (store.tx(serialize=...)) of TASK's submits: a submit's round gate, quota and insert
    run under it (service.submits.start_submit), and so does the check that a round reports no more submits
    before its kept private halves are graded (scheduler.private_half)."""
    return f"submit:{task}"


def round_graded(settings: Settings, store: Store, round_id: int, tasks: list[str]) -> bool:
    """Whether ROUND_ID's kept private halves may be graded (not private_kept), decided one after another with the
    submits of its TASKS: a submit let in just before the end but not committed yet is either seen queued, or is
    refused as after the end (review 3 of this stop: a plain read missed one by milliseconds)."""
    with store.tx(serialize=tuple(submit_key(t) for t in tasks)) as db:
        return not private_kept(settings, db, round_id)


def has_pending_work(store: Store, settings: Settings) -> bool:
    """Runs queued or running, or a submission's private half to score now (harness.scheduler.private_half)."""
    from sqlalchemy import select

    from harness.store.models import Run, Submission
    with store.tx() as db:
        return db.scalar(select(Run.id).where(Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING])).limit(1)) \
            is not None or db.scalar(select(Submission.id).where(private_due_now(settings)).limit(1)) is not None


_host = None  # a process that runs the scheduler on a thread of its own (harness.server.local_service)


def host_schedulers(start) -> None:
    """From now on, ensure_running in this process hands the lock it took to START(lock) (which runs
    harness.scheduler.daemon.serve on a thread and owns the lock) instead of starting `python -m harness.scheduler`:
    the local executor only (a Ray driver keeps its own process)."""
    global _host
    _host = start


def ensure_running(settings: Settings) -> bool:
    """Start a background scheduler for this state root unless one holds the lock. True when one was started."""
    settings.ensure_dirs()
    lock = FileLock(settings.lock_path)
    if not lock.acquire():
        return False
    if _host is not None and settings.executor == "local":
        _host(lock)
        return True
    try:
        log_file = open(settings.scheduler_log, "ab")
        cmd = [*python_module("harness.scheduler"), "--root", str(settings.root), "--lock-fd", str(lock.fd)]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, pass_fds=(lock.fd,), cwd=settings.state_dir,
                                env=inherited_environment(settings.db_url))  # (the URL: never on a command line)
        log_file.close()
        lock.write_holder(proc.pid)
    finally:
        os.close(lock.fd)  # the child holds the lock now (the same open file); a failed start frees it
        lock.fd = None
    return True


def wake(settings: Settings) -> None:
    """After committing new work or a stop request: wake the scheduler, or start one."""
    doorbell.ring(settings.state_dir)
    ensure_running(settings)


SCHEDULER_HOSTS = (b"harness.scheduler", b"harness.server.local_service")  # what may hold the lock as a scheduler


def _wait_for(lock: "FileLock", seconds: float = 5.0) -> bool:
    for _ in range(int(seconds * 10)):
        time.sleep(0.1)
        if lock.acquire():
            return True
    return False


def _end_hung_holder(lock: "FileLock", settings: Settings) -> None:
    """The lock's holder renews no heartbeat: a hung scheduler (its own process, or a local service hosting its
    thread). End it, and only such a process: a pid the lock file names may be a recoverer's (a command, a server)."""
    pid = lock.holder()
    if pid == os.getpid():
        log.warning("this process's scheduler thread renewed no heartbeat for %s s", settings.lease_seconds)
        return  # (a service's own thread: ending it would end the service; its runs' limits still hold)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
    except OSError:
        return
    if any(host in command for host in SCHEDULER_HOSTS):
        log.warning("scheduler %s renewed no heartbeat for %s s: killing it", pid, settings.lease_seconds)
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def recover_if_orphaned(settings: Settings, store: Store) -> None:
    """Run on every CLI call: runs marked running with no live scheduler are requeued or failed as lost."""
    from .recovery import recover_runs, running_exists, stale_runs
    lock = FileLock(settings.lock_path)
    if not lock.acquire():
        if not stale_runs(store, settings.lease_seconds):
            return  # a live scheduler renews its runs' heartbeats
        if not _wait_for(lock):  # another recoverer (a command, the server's watcher) holds it a moment only
            _end_hung_holder(lock, settings)
            if not _wait_for(lock):
                return
    try:
        if running_exists(store):
            if store.lease().held_elsewhere() and not stale_runs(store, settings.lease_seconds):
                return  # a scheduler on another machine (or root) sharing this database serves them, alive
            recover_runs(settings, store)  # runs being scored stay: the next scheduler scores them again
    finally:
        lock.release()
    if has_pending_work(store, settings):
        ensure_running(settings)
