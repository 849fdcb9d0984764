"""What a folder tree holds on disk, measured while its writer may be changing it to be measured small.

The writer is a run (hostile): it may rename folders and files to new names, move them between folders, make
folders unreadable, nest them deep or make millions of entries, and it may watch for the walk. So:

- each folder is opened relative to its parent's descriptor the moment it is listed and walked before its
  siblings (renaming it later hides nothing), listed at once by that descriptor, with O_NOATIME where the
  harness may (reading a folder leaves no access time for the run to watch the walk by), and its entries are
  walked in an order drawn anew each walk (a run cannot know which of two folders is walked first, to keep its
  bytes in the one walked already);
- an entry gone between its listing and its measuring (renamed, deleted, replaced by a link) makes the walk
  start over — up to WALKS_WHEN_MOVING walks; a tree whose entries move under every walk is measured by its
  largest walk, a lower bound (`retry`: over the limit is over it, under it is measured again later; a tree
  moving under every scan for seconds is cancelled by the caller);
- a tree past the entry, depth or time bound, or with a folder made unreadable, is not measured: the caller
  cancels the run (`runtime.disk_limits`);
- a failure that is the harness's own (out of file descriptors, memory, an I/O error) is `retry`: no verdict
  now, the next scan measures again;
- a file counts once however many names it has (hard links, a rename across folders mid-walk), links are never
  followed, and nothing raises out of `usage`.

What no walk can see: a file held open after its last name is gone (O_TMPFILE, unlinked: the caller counts those
from the run's processes, runtime.open_files), and bytes moved between folders timed to the walk (a run that
watches each folder being opened — inotify, where the sandbox lets it — can, half of the walks; a run in control
groups is frozen while it is walked). Both end with the run (its folders are measured at every end); the threat
model says so.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import stat
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("harness.core.tree_usage")
_order = random.Random(os.urandom(16))  # (no seed a run could learn; it never sees a draw)

MAX_DEPTH = 100  # folders deep a measured tree may go (each level holds one descriptor while it is walked)
WALKS_WHEN_MOVING = 3  # walks of a tree whose entries move under each one before it counts as unmeasurable
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MOVED = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)  # gone, or replaced by a link or a file, since it was listed
ITS_OWN = (errno.EACCES, errno.EPERM)  # a folder its writer made unreadable
TOO_SLOW = "too slow to walk"  # (Usage.why of a walk past its time)


@dataclass
class Usage:
    """What a folder holds, measured without following links: apparent bytes, allocated bytes, entries."""

    size: int = 0
    allocated: int = 0
    entries: int = 0
    complete: bool = True  # False: a bound was reached first, or it cannot be measured (`why` says which)
    why: str = ""
    moved: bool = False  # an entry listed in a folder was gone by the time it was measured
    retry: bool = False  # not measured, for a reason of the harness's own (`why`): measure again later


class _Stop(Exception):
    """The walk ends here (the Usage says why)."""


def _open_dir(name, dir_fd: int | None = None) -> int:
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOATIME, dir_fd=dir_fd)
    except PermissionError as e:  # O_NOATIME is the owner's (or root's): a folder of another owner goes without
        if e.errno != errno.EPERM:
            raise
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _failed(error: OSError, name: str, out: Usage) -> None:
    """Note why NAME could not be measured: moved (the walk goes on, and is walked again), unreadable (the tree
    cannot be measured), or the harness's own trouble (measure again later) — the last two end the walk."""
    code = error.errno or 0
    if code in MOVED:
        out.moved = True
        return
    out.complete, out.why = False, f"{name!r} cannot be read ({os.strerror(code)})"
    out.retry = code not in ITS_OWN
    raise _Stop


def usage(path: Path, max_entries: int = 200_000, seconds: float = 5.0) -> Usage:
    """Sizes under PATH (a real folder, not a link to one; a file: its own size) — see the module's text."""
    deadline = time.monotonic() + seconds
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Usage()
    except OSError as e:
        return Usage(complete=False, why=f"cannot be read ({os.strerror(e.errno or 0)})", retry=True)
    if not stat.S_ISDIR(st.st_mode):
        return Usage(size=st.st_size, allocated=st.st_blocks * 512, entries=1)
    try:
        top = _open_dir(path)
    except FileNotFoundError:  # gone since it was looked at (the harness removing an ended run's folders): as if
        return Usage(complete=False, why="the folder went while it was measured", retry=True)  # not there, now
    except OSError as e:  # swapped for a link or a file since it was looked at: it cannot be measured
        out = Usage(complete=False, why="the folder was replaced while it was measured")
        with contextlib.suppress(_Stop):
            _failed(e, path.name, out)  # (unreadable, or the harness's own trouble: says so instead)
        return out
    try:
        best = Usage()
        for _ in range(WALKS_WHEN_MOVING):
            out = _walk(top, max_entries, deadline)
            if not out.complete or not out.moved:
                return out
            if out.allocated + out.size > best.allocated + best.size:
                best = out
        # moving under every walk (an honest `rm -rf` of 100,000 files does): the largest walk is a lower bound —
        # over the limit is over it; under it, measured again at the next scan
        best.complete, best.retry = False, True
        best.why = "files and folders moved while they were measured, every time"
        return best
    except Exception as e:  # noqa: BLE001 - never an error of the caller (a scheduler's thread)
        log.exception("measuring %s", path)
        return Usage(complete=False, why=f"not measured ({type(e).__name__})", retry=True)
    finally:
        os.close(top)


def _listed(fd: int) -> list[str]:
    """FD's entries, from a place and in a direction drawn anew (a rotation: cheap on a folder of 200,000)."""
    names = os.listdir(fd)
    if len(names) > 1:
        k = _order.randrange(len(names))
        names = names[k:] + names[:k]
        if _order.random() < 0.5:
            names.reverse()
    return names


def _walk(top: int, max_entries: int, deadline: float) -> Usage:
    """One walk from the descriptor TOP (kept open by the caller)."""
    out = Usage()
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[int, list[str]]] = []  # a descriptor per level, and the names of it left to measure
    try:
        stack.append((top, _listed(top)))
        while stack:
            fd, names = stack[-1]
            if not names:
                stack.pop()
                if fd != top:
                    os.close(fd)
                continue
            name = names.pop()
            out.entries += 1
            if out.entries > max_entries:
                out.complete, out.why = False, f"over {max_entries} files and folders"
                return out
            if time.monotonic() > deadline:
                out.complete, out.why = False, TOO_SLOW
                return out
            try:
                est = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as e:
                _failed(e, name, out)
                continue
            if stat.S_ISDIR(est.st_mode):
                if len(stack) >= MAX_DEPTH:
                    out.complete, out.why = False, f"folders over {MAX_DEPTH} deep"
                    return out
                try:
                    child = _open_dir(name, fd)
                except OSError as e:
                    _failed(e, name, out)
                    continue
                try:
                    listed = _listed(child)
                except BaseException as e:
                    os.close(child)
                    if not isinstance(e, OSError):
                        raise
                    _failed(e, name, out)
                    continue
                stack.append((child, listed))
                continue
            if est.st_nlink > 1 or est.st_size >= 1 << 16:  # a hard link, or a file renamed across folders
                key = (est.st_dev, est.st_ino)                 # during the walk: once (small ones may count twice)
                if key in seen:
                    continue
                seen.add(key)
            out.size += est.st_size
            out.allocated += est.st_blocks * 512
    except _Stop:
        return out
    except OSError as e:  # listing the top itself
        with contextlib.suppress(_Stop):
            _failed(e, ".", out)
        return out
    finally:
        for fd, _ in stack:
            if fd != top:
                os.close(fd)
    return out
