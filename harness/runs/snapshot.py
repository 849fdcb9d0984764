"""The code a run is given: a snapshot of the participant's folder (after .nsmlignore).

A snapshot is hostile input: symbolic links that stay inside the folder are kept as links; a link out of it, a
FIFO, a socket or a device is refused with one line naming it; its total size is capped (``limits.code_bytes``)
while it is copied; a failed snapshot leaves nothing behind.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from harness.core.code_ignore import IGNORE_FILE, ignore_spec
from harness.core.errors import UserError
from harness.core.escape import one_line

MAX_CODE_FILES = 20_000
MAX_EXAMINED = 10 * MAX_CODE_FILES  # names the walk matches against .nsmlignore, the ignored ones too (an ignored
#                                     folder is one name: what it holds is never walked)
_CHUNK = 1 << 20


def _real(path: Path | str, dir_fd: int | None = None) -> str | None:
    """Where PATH (relative to DIR_FD when given) leads, every link on its way followed by the kernel (40 at most),
    as one absolute path; None: nothing there (dangling, or a loop). One open, so the answer is of one moment
    (os.path.realpath reads each part of the path in turn, in Python: 2,000 chained links took it 12.6 s)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # (no /proc: a path is resolved part by part)
        return os.path.realpath(path) if dir_fd is None and os.path.exists(path) else None
    finally:
        os.close(fd)


def _inside(root: Path, path: Path | str, dir_fd: int | None = None) -> str | None:
    """Where PATH (a link, or a path that may pass through some; relative to DIR_FD when given) leads, when that
    exists inside ROOT; else None."""
    real = _real(path, dir_fd)
    return real if real is not None and (real == str(root) or real.startswith(str(root) + os.sep)) else None


def check_entry(code_dir: Path, entry: str) -> str:
    """The one rule for an entry file (`run -e`, `submit -e`): a relative path, never climbing, to a regular file
    inside CODE_DIR (a link is followed only while it stays inside). Returns it in POSIX form."""
    rel = Path(entry)
    if not entry.strip() or rel.is_absolute() or ".." in rel.parts:
        raise UserError(f"-e/--entry: {entry!r} must be a file of the code folder (a relative path inside it)")
    target = code_dir / rel
    if not target.is_file() or not _inside(code_dir.resolve(), target):
        raise UserError(f"-e/--entry: {entry!r} not found in {code_dir} (a file of the code folder)")
    return rel.as_posix()


def _copy_file(name: str, dir_fd: int, dest: Path, budget: list[int], limit: int, shown: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{shown}: not a regular file")
        with open(dest, "wb") as out:
            while True:
                block = os.read(fd, _CHUNK)
                if not block:
                    break
                budget[0] += len(block)
                if budget[0] > limit:
                    raise UserError(f"FOLDER: the code is over {limit} bytes (limits.code_bytes) at {shown}; "
                                    f"list data folders in {IGNORE_FILE}")
                out.write(block)
            os.fchmod(out.fileno(), stat.S_IMODE(os.fstat(fd).st_mode))
    finally:
        os.close(fd)


def _unreadable(src: Path, exc: OSError) -> None:
    """A folder the walk cannot open or list: one line naming it, never a snapshot that silently lacks it."""
    raise UserError(f"{one_line(str(src))}: its folder {one_line(str(exc.filename))} cannot be read "
                    f"({exc.strerror}); make it readable, or list it in {IGNORE_FILE}")


def snapshot_code(src: Path, dest: Path, max_bytes: int = 1 << 30) -> int:
    """Copy a participant folder, leaving out what .nsmlignore names. Returns the number of files copied.
    On any refusal DEST is removed and a UserError names the path."""
    if not src.is_dir():
        raise UserError(f"{src}: no such folder")
    root = src.resolve()
    spec = ignore_spec(src)
    kept, folders, budget, examined = 0, 0, [0], 0
    dest.mkdir(parents=True, exist_ok=False)
    try:
        # folders by descriptor: one swapped for a link as it is walked is never followed, nor read through
        for dirpath, dirnames, filenames, dirfd in os.fwalk(root, onerror=lambda e: _unreadable(src, e)):
            examined += len(dirnames) + len(filenames)
            if examined > MAX_EXAMINED:
                raise UserError(f"{src}: more than {MAX_EXAMINED} files and folders, ignored ones included; list "
                                f"data folders themselves in {IGNORE_FILE} (data/, not data/*.jpg)")
            rel_dir = Path(dirpath).relative_to(root)
            dirnames[:] = [d for d in dirnames if not spec.match_file(f"{(rel_dir / d).as_posix()}/")]
            entries = [(d, True) for d in dirnames] + [(f, False) for f in filenames]
            for name, _is_dir in entries:
                rel = (rel_dir / name).as_posix()
                if not _is_dir and spec.match_file(rel):
                    continue
                shown = one_line(f"{src}/{rel}")
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    real = _inside(root, name, dirfd)
                    if real is None:
                        raise UserError(f"{shown}: a symbolic link out of the folder (or dangling); copy the "
                                        f"file in, or list it in {IGNORE_FILE}")
                    # copied as where it led, relative to its folder: never an absolute path back into the
                    # participant's folder, nor a `..` that means something else once the folder has another name
                    os.symlink(os.path.relpath(real, os.path.join(root, rel_dir)), dest / rel)
                    if _is_dir:
                        dirnames.remove(name)  # kept as a link; what it points to is copied where it lives
                elif _is_dir:
                    (dest / rel).mkdir()
                    folders += 1
                elif stat.S_ISREG(st.st_mode):
                    _copy_file(name, dirfd, dest / rel, budget, max_bytes, shown)
                else:
                    raise UserError(f"{shown}: a FIFO, socket or device cannot be part of the code; list it in "
                                    f"{IGNORE_FILE}")
                kept += 1
                if kept > MAX_CODE_FILES:  # (folders too: each a name every later walk of the code reads)
                    raise UserError(f"{src}: more than {MAX_CODE_FILES} files and folders; list data folders in "
                                    f"{IGNORE_FILE}")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return kept - folders


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a folder the harness owns (code snapshot → run folder); its links stay links."""
    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
