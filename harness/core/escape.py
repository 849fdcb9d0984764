"""Participant text made safe for where it goes: a spreadsheet cell (`csv_cell`), a terminal (`terminal`) and a
one-line message (`one_line`: a file name with a newline never adds a line of its own).
HTML is Jinja's autoescaping and the dashboard's `textContent`; these two are the other outputs participant
strings (metric keys, memos, checkpoint names, log lines, names) reach."""
from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula (OWASP)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# ESC sequences (7-bit) and their C1 (8-bit) forms: control strings (OSC, DCS, SOS, PM, APC) up to their
# terminator, CSI with its parameters, then any other ESC with its intermediates and final byte.
_ESCAPES = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # control strings, terminated
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase, ...
    r"|\x1b[ -/]*[0-~]")  # two-byte and nF escapes: charset switches, RIS (reset), ...
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
_CONTROLS = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI}]")


def is_number(text: str) -> bool:
    """A plain decimal number (`-0.5`, `+3`, `1e-4`): a spreadsheet reads it as a value, never a formula."""
    return _NUMBER.fullmatch(text) is not None


def csv_cell(value):
    """VALUE as a CSV cell no spreadsheet runs: a string that starts with = + - @ tab or CR and is not a plain
    number gets a leading `'`; numbers (also negative ones), None and other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not is_number(value):
        return "'" + value
    return value


def terminal(text: str) -> str:
    """TEXT for a terminal: ANSI/ESC sequences removed whole, then every other C0 and C1 control character and DEL
    (newline and tab are kept), and the bidirectional controls (overrides, isolates, marks) that make a line read
    other than it is (a name that shows as another participant's, digits that show in another order)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def one_line(name: str) -> str:
    """NAME (a participant's file name) inside a one-line message: each character that is not printable (a newline,
    a control, a bidi override, a byte that was not UTF-8) written as its Python escape (\\n, \\x1b, \\udcff), and
    then a backslash as two, so that a name spelling `a\\nb` never reads as one holding a newline."""
    if name.isprintable() and "\\" not in name:
        return name
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in name)
