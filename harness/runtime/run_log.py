"""A run's log, written by the harness alone: the first `limits.log_bytes` of what the run prints, then the mark of
the cut; the rest is dropped.

The run never holds the log file. Its stdout and stderr are a pipe (`LogRelay`, process runtime) or the engine's
stream (docker runtime), copied by a thread of the harness through `CappedLog`. A run that wrote into the file
itself grew it at the speed of its writes between two of the scheduler's looks (1.5 GB against a 1 MiB limit in
0.25 s, the hostile review of stop 48), on the state root's disk and in no measure. Past the limit the relay reads
what it drops at most DRAIN_RATE bytes a second: a run that prints faster waits on its own pipe. A read that
empties the pipe waits GATHER_SECONDS: a run that prints a byte at a time costs the harness 100 reads a second.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path

DRAIN_RATE = 16 << 20  # bytes a second read and dropped past the limit (a verbose run prints far less)
CHUNK = 64 << 10
GATHER_SECONDS = 0.01  # a read that emptied the pipe waits this long before the next: a run that writes a byte at a
#                       time wakes the harness 100 times a second at most, and a copy of full chunks is not slowed
PIPE_BYTES = 1 << 20  # the pipe's size where the system allows it (a run printing fast waits on it less)
FINISH_SECONDS = 2.0  # how long a run's end waits for the last of its output: what is left in the pipe once every
#                       writer is gone takes milliseconds; a process that escaped an unconfined run (no sandbox, no
#                       control group) and holds the pipe is not waited for longer


class CappedLog:
    """The log at PATH, appended to: the first LIMIT bytes written (0: no limit), then the cut's mark."""

    def __init__(self, path: Path, limit: int | None):
        self.limit, self.written, self._failed = limit or 0, 0, False
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)

    def write(self, chunk: bytes) -> bool:
        """Keep CHUNK, or what of it fits; False once past the limit (CHUNK, or its rest, dropped), or once the
        log cannot be written (its disk failed: the rest is dropped too)."""
        if self._failed:
            return False
        try:
            if not self.limit or self.written + len(chunk) <= self.limit:
                _write_all(self._fd, chunk)
                self.written += len(chunk)
                return True
            if self.written <= self.limit:
                kept, self.written = self.limit - self.written, self.limit + 1
                _write_all(self._fd, chunk[:kept] + f"\n[harness] log truncated: over {self.limit} bytes\n".encode())
        except OSError:
            self._failed = True
        return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class LogRelay:
    """A pipe for a run's stdout and stderr (`write_end`: give it to the run, then `started`), copied into its
    CappedLog by a thread; `finish` waits for the last of it once the run has ended."""

    def __init__(self, path: Path, limit: int | None):
        self._read_end, self.write_end = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # (past /proc/sys/fs/pipe-max-size: the default 64 KiB)
            fcntl.fcntl(self._read_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._log = None
        try:
            self._log = CappedLog(path, limit)
            self._thread = threading.Thread(target=self._copy, daemon=True, name=f"log-{path.parent.name}")
            self._thread.start()
        except BaseException:  # (no log, or no thread: nothing is left open)
            os.close(self._read_end)
            os.close(self.write_end)
            if self._log is not None:
                self._log.close()
            raise

    def started(self) -> None:
        """The run holds the write end now (or never will): the harness's copy is closed, so the run's end is
        the pipe's."""
        if self.write_end is not None:
            os.close(self.write_end)
            self.write_end = None

    def _copy(self) -> None:
        try:
            while chunk := os.read(self._read_end, CHUNK):
                pause = 0.0 if self._log.write(chunk) else len(chunk) / DRAIN_RATE
                if len(chunk) < CHUNK:  # the pipe is empty: what the run prints gathers there meanwhile
                    pause = max(pause, GATHER_SECONDS)
                if pause:
                    time.sleep(pause)
        finally:
            os.close(self._read_end)
            self._log.close()

    def finish(self, timeout: float = FINISH_SECONDS) -> None:
        """Wait until the log holds all the run printed (every writer gone), at most TIMEOUT seconds: a process
        that left the run and still holds its stdout is not waited for (its output goes on, within the limit)."""
        self.started()
        self._thread.join(timeout)
