"""Rich tables for people, JSON for programs (-j). Text that participants control (memos, metric keys, checkpoint
names, messages, log lines) reaches a terminal only through `escape.terminal` (no escape sequences, no control
characters) and into rich only as `Text` (never parsed as rich markup)."""
from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core.escape import terminal

json_flag = click.option("-j", "--json", "as_json", is_flag=True, help="JSON output (the API's result as it is).")


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(fmt(v) for v in value)
    return str(value)


def table(rows: list[dict], columns: list[tuple[str, str]], title: str | None = None,
          as_json: bool = False, empty: str = "nothing to show") -> None:
    """columns: (key, header) pairs."""
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(empty)
        return
    t = Table(title=title, show_lines=False)
    for _key, header in columns:
        t.add_column(header, overflow="fold")
    for row in rows:
        t.add_row(*(Text(terminal(fmt(row.get(key)))) for key, _ in columns))
    Console(width=max(100, Console().width)).print(t)


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def log_text(text: str) -> str:
    """A log chunk for a terminal: escape sequences and control characters removed, carriage returns kept (the
    progress bars of training code redraw their line with them)."""
    return "\r".join(terminal(part) for part in text.split("\r"))


def say(text: str, err: bool = False) -> None:
    """One line that may hold participant text (a message, a name), made safe for a terminal."""
    click.echo(terminal(text), err=err)


def unconfined(isolation: str | None) -> bool:
    """`none` or `none+cgroup`: a process-runtime run without bubblewrap (limits, but no confinement)."""
    return (isolation or "").split("+")[0] == "none"
