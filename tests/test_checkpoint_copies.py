"""Checkpoint folders are written by participant code, which keeps running while its folders are pulled or
measured: a pull lists only the folders it holds open (a folder swapped for a link mid-walk shows nothing of where
the link points), and a sparse file costs its full size against limits.checkpoint_bytes, on disk and in a pull."""
import os

import pytest

from harness.core import safefs, tree_usage
from harness.core.errors import UserError
from harness.runtime.disk_limits import DiskLimit, over_limit


def _sparse(path, size):
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def test_a_folder_swapped_for_a_link_during_a_pull_shows_nothing_of_its_target(tmp_path, monkeypatch):
    """The run swaps `sub` (listed as a real folder) for a link to another user's folder at the last moment before
    the walk goes into it (a run can time that with inotify); the pulled copy and its skipped list name nothing of
    the other folder."""
    ckpt, other = tmp_path / "ckpt", tmp_path / "bob-session"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "a-first.bin").write_bytes(b"x")
    (other / "bobs-secret-folder").mkdir(parents=True)
    (other / "bobs-secret-file.txt").write_text("s")
    real_open, real_scandir, swapped = os.open, os.scandir, []

    def swap():
        if not swapped:
            (ckpt / "sub").rmdir()
            os.symlink(other, ckpt / "sub")
            swapped.append(True)

    def open_(path, flags, mode=0o777, *, dir_fd=None):  # a walk that holds folders open goes in by name + fd
        if path == "sub" and dir_fd is not None:
            swap()
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def scandir_(path="."):  # a walk by paths goes in by the path
        if isinstance(path, str) and path.endswith(os.sep + "sub"):
            swap()
        return real_scandir(path)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "scandir", scandir_)
    skipped = safefs.copy_tree_safely(ckpt, tmp_path / "pulled")
    monkeypatch.undo()
    assert swapped
    names = [p.name for p in (tmp_path / "pulled").rglob("*")] + skipped
    assert not [n for n in names if "bobs" in n], names
    assert (tmp_path / "pulled" / "a-first.bin").read_bytes() == b"x"


def test_a_sparse_checkpoint_counts_at_its_full_size_on_disk_and_in_a_pull(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    _sparse(ckpt / "huge.bin", 1 << 30)  # 1 GiB that takes no disk
    (ckpt / "small.txt").write_text("kept")
    assert tree_usage.usage(ckpt).allocated < 1 << 20
    said = over_limit([DiskLimit([ckpt], 64 << 20, "limits.checkpoint_bytes")])
    assert said and "over the limit of 67108864 (limits.checkpoint_bytes)" in said
    skipped = safefs.copy_tree_safely(ckpt, tmp_path / "pulled", max_bytes=64 << 20)
    assert skipped == ["huge.bin"] and (tmp_path / "pulled" / "small.txt").read_text() == "kept"
    assert not (tmp_path / "pulled" / "huge.bin").exists()


def test_a_pull_of_a_folder_with_too_many_entries_stops_with_one_line(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for i in range(30):
        (ckpt / f"f{i}").write_text("")
    with pytest.raises(UserError, match="more than 20 files and folders"):
        safefs.copy_tree_safely(ckpt, tmp_path / "pulled", max_entries=20)
