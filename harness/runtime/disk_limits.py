"""Disk is measured, not trusted: a thread of the scheduler that scans each running run's writable space.

A run's spec lists its writable folders in groups, each with a limit (the session's checkpoints:
``limits.checkpoint_bytes``; the code copy, private /tmp, output and events: ``limits.scratch_bytes``; for a
training run, also all of its user's sessions together: ``limits.user_storage_bytes``, a group `shared_by`).  Every
few seconds each group is measured as allocated bytes, or apparent bytes where more (a sparse file costs nothing
on disk, but a pull or copy of it writes it whole), without following links and within a bound on entries;
a group over its limit, or with more entries than can be counted, gets the run cancelled as ``disk_quota``;
so does a tree that moves under every walk (core.tree_usage) in MOVING_SCANS scans in a row, or processes whose
open files cannot be counted within their budget in as many, and a run whose processes hold open, in files with no
name left (runtime.open_files), more than its folders leave of its whole allowance (the sum of its limits: such a
file belongs to no folder, and is gone when the run ends). Where the runtime
can (a run in control groups of its own, a container) the run's processes are frozen while its folders are walked, so
nothing moves under the walk at all; a run is then measured at most a fiftieth of its time (a tree that takes
0.1 s to walk is measured every 5 s), so that training slows by 2% at most — and at least every MAX_GAP seconds
(a run that makes its own measure slow slows only itself).
Scans never run inside a database transaction and never hold up the scheduler's loop; WATCHERS runs are measured
at once, so one run that makes its own measure slow never delays every other run's.
"""
from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.core.tree_usage import usage
from harness.runtime import open_files

log = logging.getLogger("harness.runtime.disk_limits")

SCAN_EVERY = 2.0
MAX_ENTRIES = 200_000
SCAN_SECONDS = 10.0
FROZEN_SHARE = 50  # a run is measured (frozen) for at most a fiftieth of its time (2%)
MAX_GAP = 30.0  # but never measured less often than this (a run that makes its measure slow slows only itself)
WATCHERS = 4  # runs measured at once: a run that makes its own measure slow holds one, never every run's
MOVING_SCANS = 5  # scans in a row that cannot measure it whole (MOVED, UNCOUNTED) before the run is cancelled
MOVED = "files and folders moved under every measure"
UNCOUNTED = f"its processes' open files could not be counted within {open_files.BUDGET:g} s in every measure"


@dataclass
class DiskLimit:
    """Folders measured together against one limit (`setting` names where the limit comes from)."""

    paths: list[Path]
    limit: int
    setting: str
    shared_by: str = ""  # a group of more than this run's folders (all of its user's sessions), named so


def over_limit(limits: list[DiskLimit]) -> str | None:
    """The measure at a run's end: each group of the run's own once; the first one over its limit, as a message,
    or None. (A group shared with other sessions is left to the next admission, where its bytes still count.)"""
    return measure([group for group in limits if not group.shared_by])[0]


def measure(limits: list[DiskLimit], pids: list[int] = (), places=None) -> tuple[str | None, str]:
    """Measure each group once: the first one over its limit, as a message, or None; and why it could not be
    measured whole, or "": MOVED (a tree moved under every walk of it: measured by a lower bound, over the limit
    is over it, else no verdict now) or UNCOUNTED. PIDS: the run's processes, whose nameless open files count
    against the sum of the limits (only those it could have made: PLACES, Handle.places)."""
    moving = False
    measured = 0
    for group in limits:
        total = entries = 0
        for path in group.paths:
            used = usage(path, MAX_ENTRIES - entries, SCAN_SECONDS)
            if used.retry:  # the harness's own trouble, or a tree moving under every walk: no verdict on it now
                log.info("disk of %s not measured whole now: %s", path, used.why)
                moving = moving or (used.moved and not group.shared_by)  # (the user's other runs are not frozen)
                total += max(used.allocated, used.size)
                break
            if not used.complete:
                return (f"{', '.join(p.name for p in group.paths)} cannot be measured: {used.why} "
                        f"({group.setting} cannot be checked)"), MOVED * moving
            total += max(used.allocated, used.size)  # a sparse file counts at the size a copy of it writes
            entries += used.entries
        if total > group.limit and group.shared_by:
            return (f"{group.shared_by} hold {total} bytes, over the limit of {group.limit} ({group.setting}): "
                    f"remove sessions (nsml rm) or checkpoints (nsml model rm)"), MOVED * moving
        if total > group.limit:
            return (f"the run wrote {total} bytes to {', '.join(p.name for p in group.paths)}, over the limit of "
                    f"{group.limit} ({group.setting})"), MOVED * moving
        measured += 0 if group.shared_by else total
    message, counted = _nameless([group for group in limits if not group.shared_by], pids, measured, places)
    return message, MOVED if moving else "" if counted else UNCOUNTED


def _nameless(limits: list[DiskLimit], pids: list[int], measured: int, places) -> tuple[str | None, bool]:
    """Whether what the run's processes hold in files with no name, with the MEASURED bytes of its folders, is
    over its whole allowance (the sum of its limits), as a message; and whether they were all counted."""
    if not pids:
        return None, True
    devices = set()
    for path in (p for group in limits for p in group.paths):
        with contextlib.suppress(OSError):
            devices.add(path.stat().st_dev)
    found = open_files.held(pids, devices, places=places)
    if found.bounded:
        return (f"the run holds more than {open_files.MAX_ENTRIES} open files and mappings of deleted files: its "
                f"disk cannot be checked ({' + '.join(g.setting for g in limits)})"), True
    held = found.disk  # (a lower bound where not all were counted: over the allowance is over it)
    allowance = sum(group.limit for group in limits)
    if measured + held <= allowance:
        return None, found.complete
    return (f"the run holds {held} bytes in deleted files it keeps open; with the {measured} bytes in its folders "
            f"that is over its disk allowance of {allowance} ({' + '.join(g.setting for g in limits)})"), True


@dataclass
class _Watched:
    """One run under watch: its limit groups, how to hold it still, and what the scans found so far."""

    limits: list[DiskLimit]
    held_still: Callable[[], contextlib.AbstractContextManager]
    pids: Callable[[], list[int]]
    places: list[tuple[str, bool]] | None = None
    verdict: str | None = None
    moving: int = 0  # scans in a row in which a tree moved under every walk
    next_at: float = 0.0  # when it may be measured again (frozen at most 1/FROZEN_SHARE of its time)
    busy: bool = False  # being measured now


class DiskWatch:
    """Scans registered runs in the background; `verdict(run_id)` is the latest over-limit message, if any."""

    def __init__(self, every: float = SCAN_EVERY):
        self.every = every
        self._runs: dict[int, _Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, run_id: int, limits: list[DiskLimit], handle=None) -> None:
        """Measure LIMITS every few seconds until `forget`. HANDLE (runtime.base.Handle), where given: its
        processes are frozen for a walk nothing moves under (`held_still`), and what they hold open is counted
        (`pids`)."""
        if not limits:
            return
        with self._lock:
            self._runs[run_id] = _Watched(limits, handle.held_still if handle else contextlib.nullcontext,
                                          handle.pids if handle else list, handle.places() if handle else None)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="disk-watch", daemon=True)
            self._thread.start()

    def forget(self, run_id: int) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def verdict(self, run_id: int) -> str | None:
        with self._lock:
            watched = self._runs.get(run_id)
            return watched.verdict if watched else None

    def _loop(self) -> None:
        with ThreadPoolExecutor(WATCHERS, thread_name_prefix="disk-watch") as pool:
            while not self._stop.wait(self.every * random.uniform(0.75, 1.25)):  # (no beat to time moves by)
                now = time.monotonic()
                with self._lock:  # (the longest waiting first; a run being measured is never measured twice)
                    due = sorted((w.next_at, run_id, w) for run_id, w in self._runs.items()
                                 if not w.busy and now >= w.next_at)
                    for _, _, watched in due:
                        watched.busy = True
                for _, run_id, watched in due:
                    pool.submit(self._measure, run_id, watched)

    def _measure(self, run_id: int, watched: _Watched) -> None:
        """One measure of one run (a run forgotten meanwhile is left alone: its handle is going)."""
        with self._lock:
            if self._runs.get(run_id) is not watched:
                return
        started, failed = time.monotonic(), False
        try:
            with watched.held_still():
                message, moving = measure(watched.limits, watched.pids(), watched.places)
        except Exception:  # noqa: BLE001 - one run's folders never end the watch of every run
            log.exception("disk watch of run %s", run_id)
            failed = True
        with self._lock:  # (free again and next due in one step: never picked twice in between)
            watched.busy = False
            watched.next_at = started + min(FROZEN_SHARE * (time.monotonic() - started), MAX_GAP)
            if failed:
                return
            watched.moving = watched.moving + 1 if moving else 0
            if watched.moving >= MOVING_SCANS:  # (an honest `rm -rf` is over in a scan or two)
                message = f"{moving} of {MOVING_SCANS} scans in a row: the run's disk cannot be checked"
            if message:
                watched.verdict = message

    def close(self) -> None:
        self._stop.set()

