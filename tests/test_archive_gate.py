"""The upload gate (`core.archives.unpack`) fuzzed: whatever members an archive holds, either it is refused in one
line and leaves nothing, or everything it left is inside the folder — no path, however its links chain, resolves
out of it — and nothing outside the folder changed."""
import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core import archives
from harness.core.errors import UserError

PART = st.sampled_from(["a", "b", "..", ".", "", "x" * 250, "evil\x1b", "c\\d", "main.py", "/"])
NAME = st.lists(PART, min_size=1, max_size=6).map("/".join)
KIND = st.sampled_from(["file", "dir", "sym", "hard", "fifo"])
MEMBER = st.tuples(KIND, NAME, NAME)


def _archive(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for kind, name, target in members:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = b"x" * 10
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            else:
                info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
                info.linkname = target
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _inside(root: Path) -> None:
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            resolved = os.path.realpath(os.path.join(dirpath, name))
            assert resolved == real_root or resolved.startswith(real_root + os.sep), (name, resolved)
            if os.path.isfile(os.path.join(dirpath, name)) and not os.path.islink(os.path.join(dirpath, name)):
                assert os.lstat(os.path.join(dirpath, name)).st_nlink == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(MEMBER, min_size=1, max_size=8))
def test_no_archive_writes_outside_or_leaves_a_half(tmp_path, members):
    box = tmp_path / "box"
    box.mkdir(exist_ok=True)
    (box / "outside.txt").write_text("keep")
    dest = box / "sub" / "dest"
    before = sorted(p.name for p in box.iterdir())
    try:
        archives.unpack(io.BytesIO(_archive(members)), dest, max_bytes=1 << 20, what="upload")
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("upload:")
        assert not dest.exists()
    else:
        _inside(dest)
    import shutil
    shutil.rmtree(box / "sub", ignore_errors=True)
    assert sorted(p.name for p in box.iterdir()) == before
    assert (box / "outside.txt").read_text() == "keep"
    assert not (tmp_path.parent / "escaped").exists()


def test_links_that_stay_inside_are_kept_and_bounds_hold(tmp_path):
    good = _archive([("dir", "pkg", ""), ("file", "pkg/mod.py", ""), ("sym", "alias", "pkg/mod.py"),
                     ("sym", "pkg/self", "mod.py")])
    archives.unpack(io.BytesIO(good), tmp_path / "ok", max_bytes=1 << 20, what="upload")
    assert os.readlink(tmp_path / "ok" / "alias") == "pkg/mod.py"
    assert (tmp_path / "ok" / "alias").read_bytes() == b"x" * 10
    many = _archive([("file", f"f{i}", "") for i in range(30)])
    with pytest.raises(UserError, match="more than 20 entries"):
        archives.unpack(io.BytesIO(many), tmp_path / "many", max_bytes=1 << 20, what="upload", max_members=20)
    with pytest.raises(UserError, match="bytes unpacked"):
        archives.unpack(io.BytesIO(many), tmp_path / "big", max_bytes=100, what="upload")
    assert not (tmp_path / "many").exists() and not (tmp_path / "big").exists()


def _raw_pax(records: bytes, data: bytes = b"x") -> bytes:
    """A hand-made PAX extended header (RECORDS as given, however malformed) and one regular member."""
    def header(name: str, size: int, kind: bytes) -> bytes:
        info = tarfile.TarInfo(name)
        info.size, info.type = size, kind
        return info.tobuf(format=tarfile.USTAR_FORMAT)
    out = header("././@PaxHeader", len(records), tarfile.XHDTYPE) + records + bytes(-len(records) % 512)
    return out + header("f", len(data), tarfile.REGTYPE) + data + bytes(-len(data) % 512) + bytes(1024)


def _record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


@pytest.mark.parametrize("records, words", [
    (b"1" * 16000, "digits"),  # this Python's PAX parser is quadratic in a digit run, holding the GIL
    (b"1" * 100_000, "extended header of"),
    (b"2 " * 8000 + b"=\n", "malformed"),  # every record's keyword the rest of the buffer: memory quadratic
    (_record(b"GNU.sparse.size", b"abc"), "sparse"),  # ValueError inside tarfile: was a 500
    (_record(b"GNU.sparse.map", b"1,x"), "sparse"),
    (_record(b"hdrcharset", b"\xff\xfe"), "charset"),
    (_record(b"size", b"-5"), "negative size"),
    (_record(b"path", b"\xff\xfe"), "not UTF-8"),
])
def test_extended_headers_that_hang_or_crash_tarfile_are_refused_before_it_parses_them(tmp_path, records, words):
    with pytest.raises(UserError, match=words) as refused:
        archives.unpack(io.BytesIO(_raw_pax(records)), tmp_path / "out", max_bytes=1 << 20, what="upload")
    assert "\n" not in str(refused.value) and not (tmp_path / "out").exists()
