"""What a run's processes hold open that no walk of its folders can see.

A file that is deleted while a process keeps it open (or maps it), or that was made without a name at all
(O_TMPFILE: Python's ``tempfile.TemporaryFile`` on Linux), still takes its bytes on disk until the last holder
lets go, and a walk of the run's folders never meets it: a run could fill the machine's disk that way under any
folder limit. The same goes for memory: a memfd (``memfd_create``) that is not mapped holds memory that neither
the run's resident set nor its tmpfs shows. So the run's processes are looked at from the inside:

- every descriptor (``/proc/PID/fd``), and every mapping of a deleted file (the lines of ``/proc/PID/maps`` that
  say so, each looked at through ``/proc/PID/map_files``: readable by a root harness only, elsewhere a mapping
  whose descriptor was closed goes unseen), that is a regular file with no name left;
- each file once (by device and inode, however many processes and descriptors hold it), at its allocated bytes;
- on the run's own file systems (the devices of its folders) it counts as disk held, on the kernel's internal
  file system of anonymous shared memory (memfd, SysV) as memory held.

A process's folder is opened once and everything of it is read through that one descriptor, so what is read
belongs to one process even if its id is reused meanwhile. Everything here is the run's to shape, so the work is
bounded: past MAX_ENTRIES descriptors and mappings of deleted files in all, the run cannot be measured
(`bounded`: its caller cancels it — a run that held its bytes behind a million decoy descriptors would
otherwise be counted short at every measure); past the time budget, what was seen is a lower bound and the
caller measures again later (`complete` False). No failure to read is an error of the caller: it is what was not
seen. What this cannot see: a descriptor in flight in a unix socket (sent, not yet received) — only a file-system
quota per run bounds that (docs/threat-model.md).
"""
from __future__ import annotations

import functools
import os
import random
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass

MAX_ENTRIES = 1_000_000  # descriptors and mappings of deleted files to look at in one measure, over all processes
BUDGET = 5.0  # seconds one measure may take (a million stats take about two; a run past it, scan after scan, is
#               cancelled: runtime.disk_limits)
_RANGE = re.compile(rb"[0-9a-f]+-[0-9a-f]+")
MAPS_BYTES = 16 << 20  # of /proc/PID/maps read (65,530 mappings, the kernel's default most, take ~7 MiB)


@dataclass
class Held:
    """Bytes held in files that have no name: on the run's disk, and in anonymous shared memory."""

    disk: int = 0
    memory: int = 0
    complete: bool = True  # every descriptor and mapping of every process was looked at
    bounded: bool = False  # more than MAX_ENTRIES to look at: the run cannot be measured


@functools.lru_cache(maxsize=1)
def anonymous_memory_device() -> int | None:
    """The device number of the kernel's internal file system behind memfd_create (one per boot)."""
    try:
        fd = os.memfd_create("nsml-harness-probe", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return None
    try:
        return os.fstat(fd).st_dev
    finally:
        os.close(fd)


def _open(name: str, dir_fd: int, directory: bool = True) -> int | None:
    try:
        return os.open(name, os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0), dir_fd=dir_fd)
    except OSError:
        return None


def _deleted_mappings(proc: int) -> dict[str, str]:
    """PROC's mappings of deleted files: address range (its map_files name) → the path it had."""
    fd = _open("maps", proc, directory=False)
    if fd is None:
        return {}
    try:
        text = b""
        while len(text) < MAPS_BYTES and (chunk := os.read(fd, 1 << 20)):
            text += chunk
    except OSError:
        return {}
    finally:
        os.close(fd)
    return deleted_in_maps(text)


def deleted_in_maps(text: bytes) -> dict[str, str]:
    """The mappings of deleted files in TEXT, a /proc/PID/maps (file names are the run's to choose): address range
    → the path it had. Lines are split at newlines only (the kernel escapes a newline in a name, never a carriage
    return), and a range is only ever hex-dash-hex."""
    found = {}
    for line in text.split(b"\n"):
        if line.endswith(b" (deleted)"):
            fields = line.split(b" ", 5)
            if len(fields) == 6 and _RANGE.fullmatch(fields[0]):
                found[fields[0].decode()] = os.fsdecode(fields[5].lstrip(b" ")[:-len(b" (deleted)")])
    return found


def _where(name: str, folder: int, mappings: dict[str, str]) -> str:
    """The path a descriptor's or a mapping's file had (the run's view of it)."""
    if name in mappings:
        return mappings[name]
    try:
        return os.readlink(name, dir_fd=folder).removesuffix(" (deleted)")
    except OSError:
        return ""


def writable(path: str, places: list[tuple[str, bool]]) -> bool:
    """Whether PATH lies in a place the run may write: the longest of PLACES that holds it, by whole components
    (a read-only mount inside a writable one is read-only; a path in none is not the run's)."""
    best, may = -1, False
    for place, can in places:
        base = place.rstrip("/")
        if (path == place or path.startswith(base + "/")) and len(base) > best:
            best, may = len(base), can
    return may


def _candidates(proc: int) -> tuple[list[tuple[int | None, list[str]]], dict[str, str]]:
    """PROC's descriptors, its mappings of deleted files and its executable (a program the kernel keeps alive
    with neither a descriptor nor a mapping): (a descriptor of the folder to stat them in, names) — each folder
    but PROC's own the caller closes — and the mappings' paths."""
    fds = _open("fd", proc)
    try:
        names = os.listdir(fds) if fds is not None else []
    except OSError:
        names = []
    mappings = _deleted_mappings(proc)
    return [(fds, names), (_open("map_files", proc) if mappings else None, list(mappings)), (proc, ["exe"])], mappings


def held(pids: Iterable[int], devices: set[int], max_entries: int = MAX_ENTRIES, budget: float = BUDGET,
         places: list[tuple[str, bool]] | None = None) -> Held:
    """What the processes PIDS hold in nameless files: on DEVICES (the run's folders' file systems) as disk — only
    those whose path lies where the run may write, where PLACES says (Handle.places) — and in memfds as memory;
    see the module's text."""
    found = Held()
    memfd_device = anonymous_memory_device()
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + budget
    left = max_entries
    order = list(pids)
    random.shuffle(order)
    for pid in order:
        if time.monotonic() > deadline:  # (reading a process's maps costs before any of its entries is looked at)
            found.complete = False
            return found
        try:
            proc = os.open(f"/proc/{int(pid)}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (OSError, ValueError):
            continue  # (ended meanwhile: what it held is let go)
        folders = []
        try:
            folders, mappings = _candidates(proc)
            for folder, names in folders:
                left -= len(names)
                if left < 0:
                    found.complete, found.bounded = False, True
                    return found
                if folder is None:
                    continue
                random.shuffle(names)  # (within the time budget, a fair sample: no place for a run to keep last)
                for name in names:
                    if time.monotonic() > deadline:
                        found.complete = False
                        return found
                    try:
                        st = os.stat(name, dir_fd=folder)  # (follows the link: the open file itself)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 0 or (st.st_dev, st.st_ino) in seen:
                        continue
                    if st.st_dev in devices:  # (counted once it is seen where the run could have made it)
                        if places is None or writable(_where(name, folder, mappings), places):
                            seen.add((st.st_dev, st.st_ino))
                            found.disk += st.st_blocks * 512
                    elif st.st_dev == memfd_device:
                        seen.add((st.st_dev, st.st_ino))
                        found.memory += st.st_blocks * 512
        finally:
            for folder, _ in folders:
                if folder is not None and folder != proc:
                    os.close(folder)
            os.close(proc)
    return found
