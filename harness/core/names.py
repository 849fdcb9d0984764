"""User and team names: they become folder names and parts of session names (USER/TASK/N)."""
from __future__ import annotations

import re

from .errors import UserError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit"


def check_name(name: str, what: str = "--user") -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UserError(f"{what}: invalid name {name!r} ({NAME_RULE})")
    return name
