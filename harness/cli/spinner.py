"""Progress of long operations: a rich.progress bar on a terminal, a plain line now and then otherwise.

Plain lines (logs, CI, pipes) start only once the operation has taken PLAIN_AFTER seconds, then come every
PLAIN_EVERY seconds and once at the end, so quick operations print nothing extra.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

import click

from harness.core.progress import Progress

PLAIN_AFTER = 2.0
PLAIN_EVERY = 10.0


@contextlib.contextmanager
def shown(description: str, total: int | None = None) -> Iterator[Progress]:
    maker = _bar if sys.stderr.isatty() else _plain
    with maker(description, total) as report:
        yield report


@contextlib.contextmanager
def _bar(description: str, total: int | None):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
             TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=Console(stderr=True),
             transient=False) as bar:
        task = bar.add_task(description, total=total, note="")

        def report(done: int, total_now: int | None = None, note: str = "") -> None:
            bar.update(task, completed=done, total=total_now if total_now is not None else total, note=note)
        yield report
        bar.update(task, completed=bar.tasks[0].total or bar.tasks[0].completed)


@contextlib.contextmanager
def _plain(description: str, total: int | None):
    start = time.monotonic()
    state = {"last": None, "done": 0, "total": total, "note": ""}

    def line() -> str:
        of = f"/{state['total']}" if state["total"] else ""
        note = f" ({state['note']})" if state["note"] else ""
        return f"{description}: {state['done']}{of}{note}, {time.monotonic() - start:.0f} s"

    def report(done: int, total_now: int | None = None, note: str = "") -> None:
        state.update(done=done, note=note, total=total_now if total_now is not None else state["total"])
        now = time.monotonic()
        due = state["last"] is None and now - start >= PLAIN_AFTER or \
            state["last"] is not None and now - state["last"] >= PLAIN_EVERY
        if due:
            state["last"] = now
            click.echo(line(), err=True)
    yield report
    if state["last"] is not None:
        click.echo(line() + ", done", err=True)
