"""Folders as tar streams between the CLI and a server: code uploads, task packs, checkpoint downloads.

Unpacking is hostile input on both sides: tarfile's `data` filter refuses absolute paths, `..`, links that
point out of the folder, devices and FIFOs, and drops set-id bits; on top of it the member count and the total
size are capped while reading, and a refused archive leaves nothing behind.
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO

from .errors import UserError

MAX_MEMBERS = 50_000
CHUNK = 1 << 20


def pack(folder: Path, out: BinaryIO) -> None:
    """FOLDER's contents (links kept as links) as an uncompressed tar written to OUT."""
    folder = Path(folder)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)


def unpack(archive: Path | BinaryIO, dest: Path, max_bytes: int, what: str, max_members: int = MAX_MEMBERS) -> None:
    """Extract a tar into DEST (created, must not exist) under the rules above; anything refused refuses the
    whole archive (one line naming the member) and leaves nothing."""
    dest = Path(dest)
    dest.mkdir(parents=True)
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
                parts = member.name.replace("\\", "/").split("/")
                if member.name.startswith("/") or ".." in parts:
                    raise UserError(f"{what}: {member.name!r} refused: a path out of the folder")
                try:
                    tar.extract(member, dest, filter="data")
                except tarfile.FilterError as exc:
                    raise UserError(f"{what}: {member.name!r} refused: {exc}") from None
    except tarfile.TarError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UserError(f"{what}: not a tar archive ({exc})") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
