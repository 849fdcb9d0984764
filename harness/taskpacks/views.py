"""Which of a task pack's folders a run may see. A training run sees the pack's ``train/``; a submit run sees
``test/test_data`` (``test_submit/test_data`` for a dry run, at the same path). Test labels are read by scoring
only, never given to a run.
"""
from __future__ import annotations

from pathlib import Path

from harness.core.errors import UserError


def submit_data(dataset: Path, dry_run: bool) -> Path:
    """The test inputs a submit run sees: test_submit's for a dry run."""
    split = "test_submit" if dry_run else "test"
    source = dataset / split / "test_data"
    if not source.exists():
        raise UserError(f"{dataset}: task has no {split}/test_data" + (" (needed by submit -t)" if dry_run else ""))
    return source


def label_path(dataset: Path, dry_run: bool) -> Path:
    return dataset / ("test_submit" if dry_run else "test") / "test_label"
