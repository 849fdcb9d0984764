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

import contextlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
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
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise no("a name that is not UTF-8") from None
    if len(name.encode("utf-8")) > MAX_PATH_BYTES:
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


MAX_EXTENDED_HEADER = 16 << 10  # a PAX or GNU long-name header's payload
MAX_DIGIT_RUN = 32
_DIGITS = re.compile(rb"[0-9]{%d,}" % (MAX_DIGIT_RUN + 1))
_RECORD = re.compile(rb"([1-9][0-9]{0,5}) ")


def _header_size(block: bytes) -> int:
    field = block[124:136]
    if field[:1] in (b"\x80", b"\xff"):  # base-256
        return int.from_bytes(field[1:], "big", signed=field[:1] == b"\xff")
    text = field.split(b"\0", 1)[0].strip() or b"0"
    if not text.isdigit() or any(c > ord("7") for c in text):
        raise UserError("not a tar archive (a header's size is not a number)")
    return int(text, 8)


def _pax_records(payload: bytes, what: str) -> None:
    """A PAX header's records, checked strictly: 'LEN KEY=VALUE\n' with LEN the record's length; no sparse or
    charset keys (tarfile's parsing of those is where this Python is slow or crashes)."""
    pos = 0
    while pos < len(payload):
        if payload[pos:].strip(b"\0") == b"":
            return
        found = _RECORD.match(payload, pos)
        length = int(found.group(1)) if found else 0
        record = payload[pos:pos + length]
        if not found or length < 5 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            raise UserError(f"{what}: refused: a malformed extended (PAX) header")
        key = record[found.end() - pos:].split(b"=", 1)[0]
        if key.startswith(b"GNU.sparse") or key == b"hdrcharset":
            raise UserError(f"{what}: refused: sparse files and header charsets are not accepted")
        pos += length


def check_headers(fh: BinaryIO, what: str, max_members: int = MAX_MEMBERS) -> None:
    """Walk the raw 512-byte headers of a plain tar before `tarfile` parses them (FH is seekable; it is rewound):
    extended headers (PAX, GNU long names) at most MAX_EXTENDED_HEADER bytes, with no run of more than
    MAX_DIGIT_RUN digits (this Python's PAX parser is quadratic in one, holding the GIL), PAX records well formed,
    no sparse members. Anything else is left to `unpack`."""
    start = fh.tell()
    try:
        for _ in range(4 * max_members + 4):
            block = fh.read(512)
            if len(block) < 512 or block == bytes(512):
                return
            kind = block[156:157]
            size = _header_size(block)
            if size < 0:
                raise UserError(f"{what}: refused: a member with a negative size")
            if kind == b"S":
                raise UserError(f"{what}: refused: sparse files are not accepted")
            if kind in (b"x", b"g", b"L", b"K"):
                if size > MAX_EXTENDED_HEADER:
                    raise UserError(f"{what}: refused: an extended header of {size} bytes "
                                    f"(at most {MAX_EXTENDED_HEADER})")
                payload = fh.read(size)
                if _DIGITS.search(payload):
                    raise UserError(f"{what}: refused: an extended header with a run of over {MAX_DIGIT_RUN} digits")
                if kind in (b"x", b"g"):
                    _pax_records(payload, what)
                fh.seek((-size) % 512, os.SEEK_CUR)
            else:
                fh.seek(size + (-size) % 512, os.SEEK_CUR)
        raise UserError(f"{what}: more than {max_members} entries")
    except UserError as exc:
        if not str(exc).startswith(what):
            raise UserError(f"{what}: refused: {exc}") from None
        raise
    finally:
        fh.seek(start)


def unpack(archive: Path | BinaryIO, dest: Path, max_bytes: int, what: str, max_members: int = MAX_MEMBERS) -> None:
    """Extract a tar into DEST (created, must not exist) under the rules above; anything refused refuses the
    whole archive (one line naming the member) and leaves nothing. ARCHIVE is a file (a Path, or a seekable file
    object); a stream that cannot seek is spooled to a temporary file first, so its headers can be checked."""
    if not isinstance(archive, Path) and not (hasattr(archive, "seekable") and archive.seekable()):
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(archive, spool)
            spool.seek(0)
            return unpack(spool, dest, max_bytes, what, max_members)
    dest = Path(dest)
    dest.mkdir(parents=True)
    root_fd = os.open(dest, _DIR)
    try:
        with open(archive, "rb") if isinstance(archive, Path) else contextlib.nullcontext(archive) as fh:
            check_headers(fh, what, max_members)
            with tarfile.open(fileobj=fh, mode="r:") as tar:
                _extract(tar, root_fd, max_bytes, what, max_members)
    except (tarfile.TarError, ValueError, OverflowError, RecursionError, UnicodeError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{what}: not a tar archive ({type(exc).__name__}: {str(exc)[:200]})") from None
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UserError(f"{what}: could not be unpacked ({exc.strerror or type(exc).__name__})") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    finally:
        os.close(root_fd)


def _extract(tar: tarfile.TarFile, root_fd: int, max_bytes: int, what: str, max_members: int) -> None:
    total = count = 0
    for member in tar:
        count += 1
        if count > max_members:
            raise UserError(f"{what}: more than {max_members} entries")
        if member.size < 0:
            raise UserError(f"{what}: {member.name!r} refused: a negative size")
        total += member.size
        if total > max_bytes:
            raise UserError(f"{what}: more than {max_bytes} bytes unpacked")
        parts = member_parts(member.name, what)
        _check_kind(member, what)
        if parts:
            _write_member(tar, member, root_fd, parts, what)
