"""Reading what participant code controls, without being fooled by it.

Everything a run can write (its output folder, events file, checkpoints, its copy of the code, its /tmp) is
hostile: a name may be a symbolic link out of the folder, a hard link to an organizer's file, a FIFO that blocks
a reader forever, a device, or a file that grows without end.  The helpers here open such files component by
component with ``O_NOFOLLOW`` below a folder the harness owns, accept regular files only (with one link), copy at
most a given number of bytes, and measure folders without following links and within a bound on entries.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from harness.core.errors import UserError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 1 << 20
CHECKPOINT_NAME_MAX = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A checkpoint name: one path component that is also safe as a CSV cell, in HTML and in a terminal (the
# in-session module checks the same pattern, nsml._CHECKPOINT_NAME, so a bad name fails at save time).
CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]*")


# Errors of the harness's own (its descriptors, memory, disk): never blamed on what a run left
HARNESS_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EIO, errno.EINTR, errno.ENOSPC})


class UnsafeFile(Exception):
    """A file a run left that the harness refuses to read (the message says why, in one line)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def descend(fd: int, parts: list[str], flags_last: int = _DIR_FLAGS, make: bool = False) -> int:
    """A new fd for FD/PARTS, opened one component at a time without following any link (folders, then the last
    component with FLAGS_LAST); with MAKE, missing folders are created (the last too, when it is opened as one).
    FD stays open. Raises UnsafeFile naming the component that is a link or not a folder, FileNotFoundError when
    one is missing."""
    fd = os.dup(fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if make and (not last or flags_last == _DIR_FLAGS):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                nxt = os.open(part, flags_last if last else _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT or exc.errno in HARNESS_ERRNOS:
                    raise
                if exc.errno in (errno.EACCES, errno.EPERM):  # a run chmod-ed what it wrote (a harness that is
                    raise UnsafeFile(f"{'/'.join(parts[:i + 1])} cannot be read: "  # not root: the run's doing)
                                     f"its permissions forbid it") from None
                try:  # a link, a socket (ENXIO), a device, a folder where a file was asked: what the run put there
                    what = _kind(os.lstat(part, dir_fd=fd).st_mode)
                except OSError:
                    what = "not a file the harness opens"
                raise UnsafeFile(f"{'/'.join(parts[:i + 1])} is {what}") from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_beneath(root: Path, rel: str | Path, directory: bool = False) -> int:
    """An fd for ROOT/REL, opened one component at a time without following any link (ROOT itself is the
    harness's). Raises UnsafeFile for a link, FileNotFoundError when a component is missing."""
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    if any(p == ".." or "/" in p for p in parts):
        raise UnsafeFile(f"{rel}: '..' is not allowed")
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        return descend(root_fd, parts, _DIR_FLAGS if directory else _FILE_FLAGS)
    finally:
        os.close(root_fd)


def _check_regular(fd: int, name: str, max_bytes: int | None) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{name} is {_kind(st.st_mode)}, not a regular file")
    if st.st_nlink != 1:
        raise UnsafeFile(f"{name} has more than one hard link; only a file the run created itself is read")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UnsafeFile(f"{name} is over the {max_bytes}-byte limit")  # (its size is the run's choice: not said)
    return st


def write_whole(path: Path, text: str, mode: int = 0o644) -> None:
    """Write TEXT to PATH whole: a reader sees the old file or the new one, never half of it. The text goes to a
    temporary file of its own beside PATH (a fresh name, created exclusively: never through a planted link, and
    two writers never share one), made MODE before it holds anything, then renamed over PATH."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_out(root: Path, rel: str, dest: Path, max_bytes: int) -> int:
    """Copy the regular file ROOT/REL (no link anywhere on the way, one hard link) to DEST, at most MAX_BYTES.
    Returns the size. DEST is written fresh (any previous file there is replaced, never followed)."""
    fd = open_beneath(root, rel)
    try:
        _check_regular(fd, rel, max_bytes)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        total = 0
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            while True:
                block = os.read(fd, CHUNK)
                if not block:
                    break
                total += len(block)
                if total > max_bytes:  # it grew while we copied
                    raise UnsafeFile(f"{rel} is over the {max_bytes}-byte limit")
                os.write(out, block)
        except BaseException:
            os.close(out)
            tmp.unlink(missing_ok=True)
            raise
        os.close(out)
        os.replace(tmp, dest)
        return total
    finally:
        os.close(fd)


def read_from(root: Path, rel: str, offset: int, max_bytes: int) -> bytes:
    """Up to MAX_BYTES of the regular file ROOT/REL from OFFSET (no links, no FIFOs: a reader never blocks)."""
    fd = open_beneath(root, rel)
    try:
        _check_regular(fd, rel, None)
        os.lseek(fd, offset, os.SEEK_SET)
        chunks, left = [], max_bytes
        while left > 0:
            block = os.read(fd, min(CHUNK, left))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
        return b"".join(chunks)
    finally:
        os.close(fd)


def append_note(path: Path, text: str) -> None:
    """Append a harness line to a run's log, never through a link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        os.write(fd, f"[harness] {text}\n".encode())
    finally:
        os.close(fd)


def checkpoint_name_problem(name: object) -> str | None:
    """Why NAME cannot be a checkpoint (one safe path component), or None when it can."""
    if not isinstance(name, str) or not name:
        return "a checkpoint name must be a non-empty string"
    if name in (".", "..") or name.startswith("."):
        return f"checkpoint name {name[:40]!r} starts with a dot"
    if "/" in name or "\\" in name:
        return f"checkpoint name {name[:40]!r} has a path separator"
    if _CONTROL.search(name):
        return f"checkpoint name {name[:40]!r} has a control character"
    if len(name) > CHECKPOINT_NAME_MAX:
        return f"checkpoint name is {len(name)} characters, over {CHECKPOINT_NAME_MAX}"
    if not CHECKPOINT_NAME.fullmatch(name):
        return (f"checkpoint name {name[:40]!r} is not letters, digits, spaces and _ . - "
                f"(starting with a letter, digit or _)")
    return None


def is_real_dir(path: Path) -> bool:
    """A folder, and not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


MAX_COPY_ENTRIES = 200_000  # files and folders one copy of a participant's folder may hold


_IGNORED_IN_NAMES = {0x034F, *range(0x180B, 0x1810), *range(0xFE00, 0xFE10)}  # + every format character (Cf)


def _named(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether NAME matches one of PATTERNS as a file system that folds names might see it: case and compatibility
    forms folded (Harness.toml; harneſſ.toml, whose ſ folds to s), characters HFS+ ignores dropped (.g\u200cit),
    and the trailing dots and spaces Windows drops (.git. on a shared drive)."""
    import fnmatch
    import unicodedata
    kept = "".join(c for c in name if ord(c) not in _IGNORED_IN_NAMES and unicodedata.category(c) != "Cf")
    folded = unicodedata.normalize("NFKC", kept).casefold().rstrip(". ")
    return any(fnmatch.fnmatchcase(folded, p.casefold()) for p in patterns)


def _bare_repository(dirnames: list[str], filenames: list[str]) -> bool:
    """A folder git takes for a bare repository (HEAD, objects/, refs/): its config runs commands too."""
    return "HEAD" in filenames and {"objects", "refs"} <= set(dirnames)


def copy_tree_safely(src: Path, dest: Path, max_bytes: int | None = None,
                     max_entries: int = MAX_COPY_ENTRIES, leave_out: tuple[str, ...] = ()) -> list[str]:
    """Copy folders and regular files of SRC to DEST; links and special files are left out (their paths are
    returned), and so is a file that would take the copy past MAX_BYTES, and any file or folder whose name matches
    a pattern of LEAVE_OUT. Used for folders participant code wrote (checkpoints being pulled), which may change
    while they are copied: the walk holds each folder open (os.fwalk) and lists that folder, never a path a link
    swapped in after it was listed; past MAX_ENTRIES it stops (UserError)."""
    skipped: list[str] = []
    total = entries = 0
    dest.mkdir(parents=True, exist_ok=False)
    for dirpath, dirnames, filenames, dirfd in os.fwalk(src, follow_symlinks=False):
        rel_dir = Path(dirpath).relative_to(src)
        entries += len(dirnames) + len(filenames)
        if leave_out and _bare_repository(dirnames, filenames):  # left out whole (its folder stays, empty)
            skipped.append(str(rel_dir))
            dirnames.clear()
            continue
        if entries > max_entries:
            raise UserError(f"{src.name}: more than {max_entries} files and folders; not copied whole")
        for d in list(dirnames):
            try:
                real = stat.S_ISDIR(os.stat(d, dir_fd=dirfd, follow_symlinks=False).st_mode)
            except OSError:
                real = False
            if not real or _named(d, leave_out):  # a link (fwalk lists links to folders as folders), or gone
                dirnames.remove(d)
                skipped.append(str(rel_dir / d))
            else:
                (dest / rel_dir / d).mkdir()
        for name in filenames:
            rel = rel_dir / name
            if _named(name, leave_out):
                skipped.append(str(rel))
                continue
            try:
                size = copy_out(src, str(rel), dest / rel, (max_bytes - total) if max_bytes else 1 << 62)
            except UnsafeFile:
                skipped.append(str(rel))
                continue
            total += size
    return skipped


def remove_tree(path: Path | str) -> None:
    """Remove PATH — a link or a file itself, a folder with everything under it — never following a link and however
    deep a run made it (shutil.rmtree recurses once per level: a chain 3,000 folders deep raises RecursionError on
    this Python, and what lay below would stay). A folder its run made unwritable or unreadable (chmod 0o500: a
    harness that is not root could remove nothing below it) is made its owner's again first, by `chmod -R`, which
    follows no link. What cannot be removed stays, and nothing is raised."""
    if not is_real_dir(Path(path)):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, check=False)
    try:  # (still there: through a descriptor of the folder itself, a link swapped in meanwhile is never followed)
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)  # (a folder mode 000 too)
    except OSError:
        return
    try:
        subprocess.run(["chmod", "-R", "u+rwx", "--", f"/proc/self/fd/{fd}"], capture_output=True, check=False,
                       pass_fds=(fd,))
    finally:
        os.close(fd)
    subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, check=False)
