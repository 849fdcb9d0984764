"""Files a run is given: the code snapshot (after .nsmlignore) and the views of a task's data.

A training view holds ``train/`` only.  A submit view holds ``test/test_data`` only (for a dry run, the
``test_submit/test_data`` split, placed at the same path so that the task's loader works unchanged) plus the
task's ``data_loader.py``.  Test labels are never copied or linked into any view.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pathspec

from .errors import UserError

IGNORE_FILE = ".nsmlignore"
ALWAYS_IGNORED = [".git/", "__pycache__/", ".nsml_ignored_by_harness"]
MAX_CODE_FILES = 20_000


def _ignore_spec(src: Path) -> pathspec.PathSpec:
    lines = list(ALWAYS_IGNORED)
    ignore = src / IGNORE_FILE
    if ignore.exists():
        lines += ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.PathSpec.from_lines("gitignore", lines)


def snapshot_code(src: Path, dest: Path) -> int:
    """Copy a participant folder, leaving out what .nsmlignore names. Returns the number of files copied."""
    if not src.is_dir():
        raise UserError(f"{src}: no such folder")
    spec = _ignore_spec(src)
    count = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = Path(dirpath).relative_to(src)
        dirnames[:] = [d for d in dirnames if not spec.match_file(f"{(rel_dir / d).as_posix()}/")]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if spec.match_file(rel):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(dirpath) / name, target, follow_symlinks=True)
            count += 1
            if count > MAX_CODE_FILES:
                raise UserError(f"{src}: more than {MAX_CODE_FILES} files; list data folders in {IGNORE_FILE}")
    dest.mkdir(parents=True, exist_ok=True)
    return count


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a folder (code snapshot → run folder)."""
    shutil.copytree(src, dest, symlinks=False, dirs_exist_ok=True)


def _link_or_copy(src: Path, dest: Path) -> None:
    """Place ``src`` at ``dest`` by hard links (cheap, and no path back to the source), copying as a fallback."""
    if src.is_dir():
        shutil.copytree(src, dest, copy_function=_link_file)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _link_file(src, dest)


def _link_file(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def train_view(dataset: Path, dest: Path) -> Path:
    """DATASET_PATH of a training session: the task's train/ only."""
    dest.mkdir(parents=True, exist_ok=True)
    _link_or_copy(dataset / "train", dest / "train")
    return dest


def submit_view(dataset: Path, dest: Path, dry_run: bool) -> Path:
    """DATASET_PATH of a submit run: test inputs only (test_submit's for a dry run), and the task's loader."""
    split = "test_submit" if dry_run else "test"
    source = dataset / split / "test_data"
    if not source.exists():
        raise UserError(f"{dataset}: task has no {split}/test_data" + (" (needed by submit -t)" if dry_run else ""))
    dest.mkdir(parents=True, exist_ok=True)
    _link_or_copy(source, dest / "test" / "test_data")
    return dest


def label_path(dataset: Path, dry_run: bool) -> Path:
    return dataset / ("test_submit" if dry_run else "test") / "test_label"


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
