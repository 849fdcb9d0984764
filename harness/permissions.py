"""Who may do what: the one place identity and rights are checked (the CLI and the coming HTTP API both call it).

Rules:
- A participant acts only on their own sessions, checkpoints and submissions; wildcards expand among their own.
- Organizers (``organizers`` in harness.toml; when the list is absent, the OS account that runs the harness) may
  act on anyone's, and alone may add, prepare, replace or remove tasks, and run the contest's organizer commands.
- User and team names match NAME_PATTERN: they become folder names and parts of session names.
"""
from __future__ import annotations

import re

from .errors import UserError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit"


class PermissionDenied(UserError):
    """Acting on what is not yours, or an organizer command by a participant."""


def check_name(name: str, what: str = "--user") -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UserError(f"{what}: invalid name {name!r} ({NAME_RULE})")
    return name


def is_organizer(settings) -> bool:
    return settings.user in settings.organizers


def require_organizer(settings, command: str) -> None:
    if not is_organizer(settings):
        raise PermissionDenied(f"{command} is an organizer command: user {settings.user!r} is not in 'organizers' "
                               f"of {settings.root / 'harness.toml'}")


def may_act_on(settings, owner: str) -> bool:
    return owner == settings.user or is_organizer(settings)


def require_owner(settings, owner: str, what: str) -> None:
    """WHAT (e.g. 'session alice/tiny/1') belongs to OWNER: only they or an organizer may act on it."""
    if not may_act_on(settings, owner):
        raise PermissionDenied(f"{what} belongs to {owner}; user {settings.user!r} may act only on their own")
