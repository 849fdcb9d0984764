"""The layout of a task pack (NSML's): the one place its folder and file names are spelled. ``train/`` is what a
training run sees; ``test/test_data`` what a submit run sees (``test_submit/test_data`` for a dry run, at the
same path); ``test*/test_label`` is read by scoring only, never given to a run; ``evaluation.py`` scores a
prediction and ``data_loader.py`` is the task's loader.
"""
from __future__ import annotations

from pathlib import Path

from harness.core.errors import UserError

TRAIN = "train"
EVALUATOR = "evaluation.py"
LOADER = "data_loader.py"
TEST_DATA = "test_data"
TEST_LABEL = "test_label"
REQUIRED = (TRAIN, f"test/{TEST_DATA}", f"test/{TEST_LABEL}", LOADER, EVALUATOR)


def split(dry_run: bool) -> str:
    """The split a submit reads: test_submit for a dry run (`submit -t`), else test."""
    return "test_submit" if dry_run else "test"


def split_dir(dataset: Path, dry_run: bool) -> Path:
    return Path(dataset) / split(dry_run)


def test_data(dataset: Path, dry_run: bool) -> Path:
    return split_dir(dataset, dry_run) / TEST_DATA


def label_path(dataset: Path, dry_run: bool) -> Path:
    return split_dir(dataset, dry_run) / TEST_LABEL


def evaluator(dataset: Path) -> Path:
    return Path(dataset) / EVALUATOR


def loader(dataset: Path) -> Path:
    return Path(dataset) / LOADER


def has_split(dataset: Path, dry_run: bool) -> bool:
    """Whether the pack has the split's inputs (a dry run needs test_submit/test_data)."""
    return test_data(dataset, dry_run).exists()


def submit_data(dataset: Path, dry_run: bool) -> Path:
    """The test inputs a submit run sees: test_submit's for a dry run."""
    source = test_data(dataset, dry_run)
    if not source.exists():
        raise UserError(f"{dataset}: task has no {split(dry_run)}/{TEST_DATA}"
                        + (" (needed by submit -t)" if dry_run else ""))
    return source


def is_pack(folder: Path) -> bool:
    """Whether FOLDER is a task pack's own folder (its evaluator and loader are there)."""
    return evaluator(folder).is_file() and loader(folder).is_file()
