"""Tables for people, JSON for programs (-j). Text that participants control (memos, metric keys, checkpoint
names, messages, log lines) reaches a terminal only through `escape.terminal` (no escape sequences, no control
characters), and a table cell is only ever measured and padded, never interpreted.

Tables are drawn here, without rich (whose import is most of a quick command's cost): a heavy-headed box, columns
as wide as their widest cell; a table wider than the terminal (100 columns in a pipe) shortens its times, leaves
out its optional columns, and only then folds the widest cells; East Asian wide characters count two columns.
"""
from __future__ import annotations

import json
import re
import unicodedata

import click

from harness.core.display import score_text
from harness.core.escape import terminal
from harness.core.settings import terminal_columns

json_flag = click.option("-j", "--json", "as_json", is_flag=True, help="JSON output (the API's result as it is).")


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def answer(result, as_json: bool, show) -> None:
    """A command's RESULT: as JSON with -j, else SHOW(result) prints it for a person."""
    if as_json:
        emit_json(result)
    else:
        show(result)


def fmt(value) -> str:
    """A cell: scores in the one score format, booleans as yes/no (core.display)."""
    if value is None:
        return ""
    if isinstance(value, (bool, float)):
        return score_text(value)
    if isinstance(value, dict):
        return " ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(fmt(v) for v in value)
    return str(value)


def table(rows: list[dict], columns: list[tuple[str, str]], title: str | None = None,
          as_json: bool = False, empty: str = "nothing to show", optional: tuple[str, ...] = ()) -> None:
    """COLUMNS: (key, header) pairs. A table wider than the terminal (at least 60 columns) first shows its times
    shorter (MM-DD HH:MM), then leaves out the OPTIONAL columns (keys, the first to go first; a note on stderr
    names them), and only then folds cells."""
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(empty)
        return
    width = max(60, terminal_columns())
    cells = [[_long_time(terminal(fmt(row.get(key)))) for key, _ in columns] for row in rows]
    headers = [h for _, h in columns]
    if _natural(headers, cells) > width:
        cells = [[_short_time(c) for c in r] for r in cells]
    left_out = []
    for key in optional:
        if _natural(headers, cells) <= width:
            break
        i = [k for k, _ in columns].index(key)
        left_out.append(headers.pop(i))
        columns = columns[:i] + columns[i + 1:]
        cells = [r[:i] + r[i + 1:] for r in cells]
    click.echo(draw(headers, cells, width, title))
    if left_out:
        click.echo(f"(left out to fit {width} columns: {', '.join(left_out)}; -j shows every field)", err=True)


_TIME = re.compile(r"^(\d{4})-(\d\d-\d\d)[ T](\d\d:\d\d)(:\d\d)?(\.\d+)?( UTC)?$")


def _long_time(cell: str) -> str:
    """A time in one form, whichever path read it (ISO's T, a fraction of a second): YYYY-MM-DD HH:MM:SS."""
    m = _TIME.match(cell)
    return f"{m.group(1)}-{m.group(2)} {m.group(3)}{m.group(4) or ''}{m.group(6) or ''}" if m else cell


def _short_time(cell: str) -> str:
    m = _TIME.match(cell)
    return f"{m.group(2)} {m.group(3)}" if m else cell


def _natural(headers: list[str], cells: list[list[str]]) -> int:
    """The width of a table of these cells, none folded."""
    return sum(max([cell_width(h), *(cell_width(r[i]) for r in cells)]) + 3 for i, h in enumerate(headers)) + 1


def cell_width(text: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def _fold(text: str, width: int) -> list[str]:
    """TEXT in lines of at most WIDTH columns: at spaces where it can, inside a word where it must."""
    lines: list[str] = []
    for paragraph in text.split("\n") or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if cell_width(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for c in word:
                if cell_width(line + c) > width:
                    lines.append(line)
                    line = ""
                line += c
        lines.append(line)
    return lines


def _widths(natural: list[int], room: int) -> list[int]:
    """Column widths within ROOM: the widest column gives up a column at a time (none below 3, or its header)."""
    widths = list(natural)
    while sum(widths) > room:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        if widths[widest] <= 3:
            break
        widths[widest] -= 1
    return widths


def draw(headers: list[str], rows: list[list[str]], width: int, title: str | None = None) -> str:
    """A heavy-headed box table of ROWS under HEADERS, at most WIDTH columns wide where the cells allow."""
    natural = [max([cell_width(h), *(cell_width(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    widths = _widths(natural, width - 3 * len(headers) - 1)

    def line(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def body(cells, bar):
        folded = [_fold(c, w) for c, w in zip(cells, widths)]
        height = max(len(f) for f in folded)
        return [bar + bar.join(f" {(f[i] if i < len(f) else '')}{' ' * (w - cell_width(f[i] if i < len(f) else ''))} "
                               for f, w in zip(folded, widths)) + bar for i in range(height)]

    out = []
    if title:
        total = sum(widths) + 3 * len(widths) + 1
        out.append(title.center(total).rstrip())
    out.append(line("┏", "━", "┳", "┓"))
    out += body(headers, "┃")
    out.append(line("┡", "━", "╇", "┩"))
    for r in rows:
        out += body(r, "│")
    out.append(line("└", "─", "┴", "┘"))
    return "\n".join(out)


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
