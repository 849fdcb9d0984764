"""The two gates that walk a folder tree a run wrote — the disk measure (core.tree_usage) and the copy of a
checkpoint folder (core.safefs.copy_tree_safely) — fuzzed over random tree shapes: nested folders, files of any
size (sparse ones too), hard links, links to files and folders in the tree, to the tree's parent and to a secret
outside it, FIFOs, and names with spaces, newlines, markup and non-ASCII letters.

Invariants, against a reference computed by lstat alone:
- the measure never raises, counts every entry, and each file's bytes once (however many names it has);
  links are never followed (the secret's bytes never count); a smaller entry bound is said, never a short count
  passed off as whole;
- the copy holds exactly the tree's folders and regular files of one name, byte for byte, and nothing else (no
  link, no FIFO, no hard link: it may be to a file the run could read but not copy out; never the secret); what
  it left out it names; a byte bound is never passed; an entry bound is a one-line
  UserError, never another exception.
"""
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core import safefs, tree_usage
from harness.core.errors import UserError

SECRET = b"the test labels\n" * 4096

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1,
                max_size=12).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)
files = st.tuples(st.just("file"), st.integers(0, 70_000), st.booleans())  # size, sparse
links = st.tuples(st.just("link"), st.sampled_from(["secret-abs", "secret-rel", "parent", "self", "sibling",
                                                    "dangling"]))
others = st.tuples(st.sampled_from(["fifo", "hardlink"]))
trees = st.recursive(st.one_of(files, links, others),
                     lambda kids: st.tuples(st.just("dir"), st.dictionaries(names, kids, max_size=5)),
                     max_leaves=25)
shapes = st.dictionaries(names, trees, min_size=1, max_size=6)


def build(folder: Path, shape: dict, secret: Path, made: list[Path]) -> None:
    for name, node in shape.items():
        path = folder / name
        kind = node[0]
        if kind == "dir":
            path.mkdir()
            build(path, node[1], secret, made)
        elif kind == "file":
            with open(path, "wb") as fh:
                if node[2] and node[1]:
                    fh.truncate(node[1])  # sparse: a size, no blocks
                else:
                    fh.write(os.urandom(node[1]))
            made.append(path)
        elif kind == "link":
            target = {"secret-abs": str(secret), "secret-rel": os.path.relpath(secret, folder), "parent": "..",
                      "self": ".", "sibling": next(iter(shape)), "dangling": "nowhere"}[node[1]]
            os.symlink(target, path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif made:  # a hard link to a file made before
            os.link(made[0], path)
        else:
            path.write_bytes(b"h")
            made.append(path)


def reference(top: Path) -> tuple[int, int, dict[str, bytes], set[str], list[str]]:
    """Entries; bytes, each inode once; the regular files of one name by relative path; the real folders; the
    rest (links, FIFOs, files with more than one name)."""
    entries, size, seen, regular, folders, rest = 0, 0, set(), {}, set(), []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            entries += 1
            path = Path(dirpath) / name
            st_ = os.lstat(path)
            rel = str(path.relative_to(top))
            if stat.S_ISDIR(st_.st_mode):
                folders.add(rel)
                continue
            if (st_.st_dev, st_.st_ino) not in seen:
                seen.add((st_.st_dev, st_.st_ino))
                size += st_.st_size
            if stat.S_ISREG(st_.st_mode) and st_.st_nlink == 1:  # (a hard link may be to a file it may not copy)
                regular[rel] = path.read_bytes()
            else:
                rest.append(rel)
    return entries, size, regular, folders, rest


def planted(shape):
    root = Path(tempfile.mkdtemp(prefix="tree-gate-"))
    secret = root / "secret.bin"
    secret.write_bytes(SECRET)
    top = root / "ckpt"
    top.mkdir()
    build(top, shape, secret, [])
    return root, top


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(shape=shapes)
def test_the_disk_measure_counts_every_entry_and_each_files_bytes_once(shape):
    root, top = planted(shape)
    try:
        entries, size, _, _, _ = reference(top)
        used = tree_usage.usage(top)
        assert used.complete and not used.moved and not used.retry, used
        assert (used.entries, used.size) == (entries, size)
        if entries > 1:
            cut = tree_usage.usage(top, max_entries=entries - 1)
            assert not cut.complete and not cut.retry and "files and folders" in cut.why
    finally:
        _remove(root)


@FUZZ
@given(shape=shapes, limit=st.one_of(st.none(), st.integers(0, 200_000)))
def test_a_checkpoint_copy_holds_exactly_the_trees_folders_and_files(shape, limit):
    root, top = planted(shape)
    try:
        entries, _, regular, folders, rest = reference(top)
        dest = root / "pulled"
        skipped = safefs.copy_tree_safely(top, dest, max_bytes=limit)
        copied = {str(p.relative_to(dest)): p for p in dest.rglob("*")}
        assert not [p for p in copied.values() if p.is_symlink() or not (p.is_file() or p.is_dir())]
        assert {r for r, p in copied.items() if p.is_dir()} == folders
        total = 0
        for rel, path in copied.items():
            if path.is_file():
                data = path.read_bytes()
                assert data == regular[rel] and SECRET not in data
                total += len(data)
        assert limit is None or total <= limit
        assert set(rest) <= set(skipped)  # every link, FIFO and hard link named as left out
        kept = {r for r, p in copied.items() if p.is_file()}
        assert set(regular) - kept <= set(skipped)  # a file left out (over the byte bound) is named too
        if limit is None:
            assert kept == set(regular)
        if entries > 1:
            with pytest.raises(UserError, match="files and folders"):
                safefs.copy_tree_safely(top, root / "again", max_entries=entries - 1)
    finally:
        _remove(root)


def _remove(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            (os.rmdir if os.path.isdir(path) and not os.path.islink(path) else os.unlink)(path)
    os.rmdir(root)
