"""Wake-ups instead of polling: the scheduler's doorbell, run-end markers, and a file watch for waiters.

- **Doorbell** (``ROOT/.harness/scheduler.wake``, a FIFO): whoever queues work or asks for a stop commits it,
  then rings; a scheduler waiting in ``select`` wakes at once.  Nobody listening is fine: the lease hand-off
  (harness.scheduler.lease) starts a scheduler, and a scheduler always re-reads the database after a wake, so a ring
  carries no data and a forged one costs one pass.
- **End markers** (``runs/ID/ended``): written after the transaction that records a run's end commits.
- **FileWatch**: waits for any change in one folder (Linux inotify through ctypes; elsewhere a short sleep),
  so ``logs -f`` wakes when the log grows and when the end marker appears.  Waiters always confirm in the
  database: a marker or event is a hint, never the truth.
"""
from __future__ import annotations

import errno
import os
import select
import stat
import struct
import time
from pathlib import Path

ENDED = "ended"
DOORBELL = "scheduler.wake"


def doorbell_path(state_dir: Path) -> Path:
    return state_dir / DOORBELL


def ring(state_dir: Path) -> bool:
    """Wake the scheduler if one listens. Never blocks; True when a scheduler had the doorbell open."""
    try:
        fd = os.open(doorbell_path(state_dir), os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # ENXIO: no reader; ENOENT: never created; ELOOP: not ours
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        os.write(fd, b"!")
    except BlockingIOError:  # full: a wake is pending anyway
        pass
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


class Doorbell:
    """The scheduler's end of the FIFO (it also holds a writer, so the reader never sees end-of-file)."""

    def __init__(self, state_dir: Path):
        path = doorbell_path(state_dir)
        try:
            if not stat.S_ISFIFO(os.lstat(path).st_mode):
                path.unlink()
        except FileNotFoundError:
            pass
        try:
            os.mkfifo(path, 0o622)
        except FileExistsError:
            pass
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        close_fds(self.fd, self._keep)


def wait_readable(fds: list[int], timeout: float) -> list[int]:
    """The fds that became readable within TIMEOUT seconds (an empty list on timeout)."""
    if not fds:
        time.sleep(max(0.0, timeout))
        return []
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    try:
        return [fd for fd, _ in poller.poll(max(0.0, timeout) * 1000)]
    except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for signal handlers that raise
        return []


def mark_ended(run_dir: str | Path) -> None:
    """Tell waiters that run's end is committed (best effort: they re-check the database anyway)."""
    try:
        fd = os.open(Path(run_dir) / ENDED,  # never through a link, never blocking on a planted FIFO
                     os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        os.close(fd)
    except OSError:
        pass


# -- inotify ---------------------------------------------------------------------------------------------------
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x4, 0x8, 0x80, 0x100
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name, NUL-padded)
_libc = None


def _inotify():
    global _libc
    if _libc is None:
        import ctypes  # here, not at the top: only waiters need it
        import ctypes.util

        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            lib.inotify_init1, lib.inotify_add_watch  # noqa: B018 - present on Linux only
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def close_fds(*fds: int) -> None:
    """Close each fd; one already closed is no error (a close runs on every way out)."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def prepare_run_dir(run_dir: str | Path) -> None:
    """Create a queued run's folder (so waiters can watch it) without a marker left from an earlier run."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    try:
        os.unlink(Path(run_dir) / ENDED)
    except FileNotFoundError:
        pass


class FileWatch:
    """Wakes on a write, creation or rename in FOLDER (of one of NAMES, if given); where inotify is missing it
    sleeps `fallback` seconds instead."""

    def __init__(self, folder: Path, names: set[str] | None = None, fallback: float = 0.05):
        self.fd: int | None = None
        self.fallback = fallback
        self.names = {os.fsencode(n) for n in names} if names else None
        lib = _inotify()
        if lib is None:
            return
        fd = lib.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return
        if lib.inotify_add_watch(fd, os.fsencode(folder), _MASK) < 0:
            os.close(fd)
            return
        self.fd = fd

    def wait(self, timeout: float) -> bool:
        """Return after a change in the folder (True), or after TIMEOUT seconds at most (False)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if self.fd is None:
                time.sleep(max(0.0, min(left, self.fallback)))
                return True  # no events here: the caller looks again
            if left <= 0 or not wait_readable([self.fd], left):
                return False
            if self._drain():
                return True

    def _drain(self) -> bool:
        """Read the pending events; True when one concerns a watched name (or any name when none are given)."""
        hit = False
        try:
            while True:
                data = os.read(self.fd, 64 * 1024)
                if not data:
                    return hit
                pos = 0
                while pos + _EVENT.size <= len(data):
                    _wd, _mask, _cookie, size = _EVENT.unpack_from(data, pos)
                    name = data[pos + _EVENT.size: pos + _EVENT.size + size].rstrip(b"\0")
                    hit = hit or self.names is None or name in self.names
                    pos += _EVENT.size + size
        except BlockingIOError:
            return hit
        except OSError as exc:  # pragma: no cover
            if exc.errno != errno.EAGAIN:
                raise
            return hit

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "FileWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

