"""Folders as tar streams between the CLI and a server: code uploads, task packs, checkpoint downloads.

Unpacking is hostile input, and `tarfile`'s own filters are not trusted (the `data` filter of this Python,
3.11.7, is defeated by a chain of long symbolic links that resolves out of the folder). `unpack` is the one gate:
it reads the archive member by member and writes each one itself, below a directory file descriptor it owns,
one path component at a time with ``O_NOFOLLOW`` (a link is never followed while writing) and files created
with ``O_EXCL`` (nothing is overwritten). Accepted: folders, regular files, and symbolic links whose target is a
relative path without ``..`` (so a link can only point at or below its own folder, however links chain).
Refused, each in one line naming the member: absolute paths and ``..``, hard links, devices, FIFOs, sparse
files, names with control characters, names or paths over their length bounds, trees deeper than the bound, an
entry that appears twice (or as a file and as a folder), and archives over the member or byte caps. A refused
archive leaves nothing behind.
"""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from .errors import UserError
from .safefs import UnsafeFile, descend

MAX_MEMBERS = 50_000
MAX_PATH_BYTES = 1024  # a member's whole name
MAX_COMPONENT_BYTES = 255  # one folder or file name (the usual file-system limit)
MAX_DEPTH = 64
CHUNK = 1 << 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def pack(folder: Path, out: BinaryIO) -> None:
    """FOLDER's contents (links kept as links) as an uncompressed tar written to OUT."""
    folder = Path(folder)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)


class _Refused(UserError):
    pass


def member_parts(name: object, what: str) -> list[str]:
    """The path components of a member name, or a one-line refusal naming it."""
    shown = repr(name[:80] + ("..." if len(name) > 80 else "")) if isinstance(name, str) else "an entry"

    def no(why: str) -> _Refused:
        return _Refused(f"{what}: {shown} refused: {why}")

    if not isinstance(name, str) or not name:
        raise no("an empty name")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise no(f"a name over {MAX_PATH_BYTES} bytes")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        raise no("a control character in the name")
    if "\\" in name:
        raise no("a backslash in the name")
    if name.startswith("/"):
        raise no("a path out of the folder (absolute)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise no("a path out of the folder ('..')")
    if not parts:
        return []
    if len(parts) > MAX_DEPTH:
        raise no(f"more than {MAX_DEPTH} folders deep")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES for p in parts):
        raise no(f"a file or folder name over {MAX_COMPONENT_BYTES} bytes")
    return parts


def link_target_problem(target: str) -> str | None:
    """Why a symbolic link's target is refused: only relative targets without '..' stay inside, however chained."""
    if not target:
        return "a link with an empty target"
    if target.startswith("/"):
        return "a link to an absolute path"
    if ".." in target.split("/"):
        return "a link whose target climbs with '..'"
    if len(target.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES or any(ord(c) < 32 for c in target):
        return "a link target that is too long or has a control character"
    return None


def _parent_fd(root_fd: int, parts: list[str], member: str, what: str) -> int:
    """An fd for the folder that will hold PARTS[-1], creating missing folders; no link is ever followed."""
    try:
        return descend(root_fd, parts[:-1], make=True)
    except UnsafeFile as exc:
        raise _Refused(f"{what}: {member!r} refused: {exc}, not a folder on its path") from None


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int, parts: list[str], what: str) -> None:
    name = member.name
    fd = _parent_fd(root_fd, parts, name, what)
    last = parts[-1]
    try:
        if member.isdir():
            try:
                os.mkdir(last, 0o755, dir_fd=fd)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(last, dir_fd=fd).st_mode):
                    raise _Refused(f"{what}: {name!r} refused: it is both a file and a folder") from None
        elif member.issym():
            problem = link_target_problem(member.linkname)
            if problem:
                raise _Refused(f"{what}: {name!r} refused: {problem}")
            try:
                os.symlink(member.linkname, last, dir_fd=fd)
            except FileExistsError:
                raise _Refused(f"{what}: {name!r} refused: the archive has it twice") from None
        else:
            mode = 0o755 if member.mode & 0o111 else 0o644
            try:
                out = os.open(last, _NEW_FILE, mode, dir_fd=fd)
            except FileExistsError:
                raise _Refused(f"{what}: {name!r} refused: the archive has it twice (or as a file and a folder)") \
                    from None
            try:
                src = tar.extractfile(member)
                left = member.size
                while left > 0 and src is not None:
                    block = src.read(min(CHUNK, left))
                    if not block:
                        break
                    os.write(out, block)
                    left -= len(block)
            finally:
                os.close(out)
    finally:
        os.close(fd)


def _check_kind(member: tarfile.TarInfo, what: str) -> None:
    if member.islnk():
        raise _Refused(f"{what}: {member.name!r} refused: hard links are not accepted")
    if member.issparse():
        raise _Refused(f"{what}: {member.name!r} refused: sparse files are not accepted")
    if not (member.isreg() or member.isdir() or member.issym()):
        kind = "a FIFO" if member.isfifo() else "a device" if member.isdev() else "not a file, folder or link"
        raise _Refused(f"{what}: {member.name!r} refused: {kind}")


def unpack(archive: Path | BinaryIO, dest: Path, max_bytes: int, what: str, max_members: int = MAX_MEMBERS) -> None:
    """Extract a tar into DEST (created, must not exist) under the rules above; anything refused refuses the
    whole archive (one line naming the member) and leaves nothing."""
    dest = Path(dest)
    dest.mkdir(parents=True)
    root_fd = os.open(dest, _DIR)
    try:
        opened = tarfile.open(archive, mode="r:") if isinstance(archive, Path) else \
            tarfile.open(fileobj=archive, mode="r|")
        with opened as tar:
            total = count = 0
            for member in tar:
                count += 1
                if count > max_members:
                    raise UserError(f"{what}: more than {max_members} entries")
                total += max(member.size, 0)
                if total > max_bytes:
                    raise UserError(f"{what}: more than {max_bytes} bytes unpacked")
                parts = member_parts(member.name, what)
                _check_kind(member, what)
                if parts:
                    _write_member(tar, member, root_fd, parts, what)
    except tarfile.TarError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UserError(f"{what}: not a tar archive ({str(exc)[:200]})") from None
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UserError(f"{what}: could not be unpacked ({exc.strerror or type(exc).__name__})") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    finally:
        os.close(root_fd)
