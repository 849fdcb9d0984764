"""What a run's processes hold open that no walk of its folders can see.

A file that is deleted while a process keeps it open (or maps it), or that was made without a name at all
(O_TMPFILE: Python's ``tempfile.TemporaryFile`` on Linux), still takes its bytes on disk until the last holder
lets go, and a walk of the run's folders never meets it: a run could fill the machine's disk that way under any
folder limit. The same goes for memory: a memfd (``memfd_create``) that is not mapped holds memory that neither
the run's resident set nor its tmpfs shows. So the run's processes are looked at from the inside:

- every descriptor (``/proc/PID/fd``) and every mapped file (``/proc/PID/map_files``, readable by a root harness
  only: elsewhere mappings whose descriptor was closed go unseen) that is a regular file with no name left;
- each file once (by device and inode, however many processes and descriptors hold it), at its allocated bytes;
- on the run's own file systems (the devices of its folders) it counts as disk held, on the kernel's internal
  file system of anonymous shared memory (memfd) as memory held.

A process's folder is opened once and everything of it is read through that one descriptor, so what is read
belongs to one process even if its id is reused meanwhile. Descriptors are numbered by the run, so they are
visited in a random order (a run cannot put its big file where a bound cuts the walk off), within a bound on
entries and on time: what was not visited is not counted, and the result says so (`complete`), so that counting
can only fall short, never inflate. Everything here is the run's to shape; no failure to read is an error of the
caller: it is what was not seen.
"""
from __future__ import annotations

import functools
import os
import random
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass

MAX_ENTRIES = 100_000  # descriptors and mappings looked at in one measure, over all the run's processes
BUDGET = 0.5  # seconds one measure may take


@dataclass
class Held:
    """Bytes held in files that have no name: on the run's disk, and in anonymous shared memory."""

    disk: int = 0
    memory: int = 0
    complete: bool = True  # every descriptor and mapping of every process was looked at


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


def _names(dirfd: int, folder: str) -> tuple[int | None, list[str]]:
    """A descriptor of FOLDER under the process folder DIRFD, and its entries (None, [] when unreadable)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return None, []
    try:
        return fd, os.listdir(fd)
    except OSError:
        os.close(fd)
        return None, []


def held(pids: Iterable[int], devices: set[int], max_entries: int = MAX_ENTRIES, budget: float = BUDGET) -> Held:
    """What the processes PIDS hold in nameless files: on DEVICES (the run's folders' file systems) as disk, in
    memfds as memory; see the module's text."""
    found = Held()
    memfd_device = anonymous_memory_device()
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + budget
    left = max_entries
    order = list(pids)
    random.shuffle(order)
    for pid in order:
        try:
            proc = os.open(f"/proc/{int(pid)}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (OSError, ValueError):
            continue  # (ended meanwhile: what it held is let go)
        try:
            for folder in ("fd", "map_files"):
                fd, names = _names(proc, folder)
                if fd is None:
                    continue
                try:
                    random.shuffle(names)
                    for name in names:
                        if left <= 0 or time.monotonic() > deadline:
                            found.complete = False
                            return found
                        left -= 1
                        try:
                            st = os.stat(name, dir_fd=fd)  # (follows the link: the open file itself)
                        except OSError:
                            continue
                        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 0 or (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                        if st.st_dev in devices:
                            found.disk += st.st_blocks * 512
                        elif st.st_dev == memfd_device:
                            found.memory += st.st_blocks * 512
                finally:
                    os.close(fd)
        finally:
            os.close(proc)
    return found
