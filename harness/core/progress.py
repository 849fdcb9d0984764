"""How long operations report progress, without knowing who shows it (the CLI draws it with rich.progress).

A reporter is called as ``progress(done, total, note)``: DONE steps of TOTAL (None: unknown), NOTE what is under
way. The library's long operations (`rescore`, `contest simulate`, `dataset prepare`) take one; `silent` is
the default.
"""
from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int | None = None, note: str = "") -> None: ...


def silent(done: int, total: int | None = None, note: str = "") -> None:
    """Reports nowhere."""
