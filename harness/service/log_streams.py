"""Log streams: a run's log read in bounded chunks, followed as it grows, and the slots that bound how many
follows (and other long waits: a submission's) are open at once.

A log may hold up to `limits.log_bytes` written by participant code; reading it whole per request lets a
participant hold that much of the server's memory per request they open and do not read. A follow holds one
worker thread of the server for as long as the run lasts; without a bound, a participant who opens one follow per
thread stops every other user's requests. So: every read is at most LOG_CHUNK bytes (a slow reader holds one
chunk), and follows are capped per account and in all (QuotaExceeded: HTTP 429), leaving threads for the rest;
the last quarter of all is kept for accounts that hold none yet, so a few colluding accounts never take every
follow from the others.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from harness.core import doorbell
from harness.core.errors import QuotaExceeded

LOG_CHUNK = 1 << 20           # bytes per read of a log: what one stream holds in memory at a time
WORKER_THREADS = 200          # the server's pool of worker threads (harness.server.app sets it)
FOLLOWS_PER_ACCOUNT = 8       # log follows one account may hold open at once (terminals, dashboard tabs)
FOLLOWS_IN_ALL = 160          # all accounts together, 40 threads staying for the rest
KEPT_FOR_NEW = 4              # 1/KEPT_FOR_NEW of all is only for an account that holds none yet


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(LOG_CHUNK)
    except FileNotFoundError:
        return b""


def read_chunks(path: Path) -> Iterator[bytes]:
    """PATH's bytes as they are now, LOG_CHUNK at a time (nothing if it does not exist)."""
    offset = 0
    while chunk := _read_from(path, offset):
        offset += len(chunk)
        yield chunk


def follow_file(path: Path, ended, tick=lambda: None, recheck: float = 1.0) -> Iterator[bytes]:
    """PATH's bytes as it grows, until ended() (what was written before the end comes too). Wakes on the file's
    growth and on the run's end marker (harness.core.doorbell); asks ended() when the marker is there, and every
    RECHECK seconds anyway. After RECHECK seconds with nothing new it yields b"" (readers skip it): the stream
    returns to its reader at least that often, so a server notices a client that left."""
    offset, last_check, last_yield = 0, float("-inf"), time.monotonic()
    marker = path.parent / doorbell.ENDED
    with doorbell.FileWatch(path.parent) as watch:
        while True:
            chunk = _read_from(path, offset)
            offset += len(chunk)
            if chunk:
                yield chunk
                last_yield = time.monotonic()
                if len(chunk) == LOG_CHUNK:
                    continue  # more is written already: read on before waiting
            now = time.monotonic()
            if marker.exists() or now - last_check >= recheck:
                last_check = now
                if ended():
                    while rest := _read_from(path, offset):  # what came between the last read and the end
                        offset += len(rest)
                        yield rest
                    return
                tick()
            watch.wait(recheck)
            if time.monotonic() - last_yield >= recheck:
                last_yield = time.monotonic()
                yield b""  # nothing new for a while: the reader learns it lives, a server sees a gone client


class FollowSlots:
    """How many long waits (log follows, submission waits) each account holds open, within FOLLOWS_PER_ACCOUNT
    and FOLLOWS_IN_ALL: each holds one of the server's worker threads while it waits. WHAT, KINDS and INSTEAD word
    the refusal for another kind of slot (server.transfers.PULLS: checkpoint pulls, each holding a tar)."""

    def __init__(self, per_account: int = FOLLOWS_PER_ACCOUNT, in_all: int = FOLLOWS_IN_ALL,
                 what: str = "long waits", kinds: str = " (log follows, submission waits)",
                 instead: str = "read the log without following"):
        self.per_account, self.in_all, self.what, self.kinds, self.instead = per_account, in_all, what, kinds, instead
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def held(self, account: str) -> int:
        with self._lock:
            return self._held[account]

    def take(self, account: str) -> Callable[[], None]:
        """A slot for ACCOUNT, or QuotaExceeded; returns its release (calling it twice releases once)."""
        with self._lock:
            if self._held[account] >= self.per_account:
                raise QuotaExceeded(f"{self.per_account} {self.what} of yours{self.kinds} are open already; close "
                                    f"one, or {self.instead}")
            total = sum(self._held.values())
            if total >= self.in_all or (self._held[account] and total >= self.in_all - self.in_all // KEPT_FOR_NEW):
                raise QuotaExceeded(f"the server has {total} {self.what} open{self.kinds}; try again shortly, "
                                    f"or {self.instead}")
            self._held[account] += 1
        done = []

        def release() -> None:
            with self._lock:
                if not done:
                    done.append(True)
                    self._held[account] -= 1
                    if self._held[account] <= 0:
                        del self._held[account]
        return release

    def hold(self, account: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """CHUNKS under a slot of ACCOUNT's, released when the stream ends, is closed, or is dropped unread."""
        release = self.take(account)

        def stream():
            try:
                yield from chunks
            finally:
                release()
        held = stream()
        weakref.finalize(held, release)  # a stream never started has no finally to run
        return held


SLOTS = FollowSlots()  # the process's follows (the server's, or the state root's local service's)
