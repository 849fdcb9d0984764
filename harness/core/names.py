"""User and team names (they become folder names and parts of session names, USER/TASK/N), and the bounds of
free text a participant sets (a session memo)."""
from __future__ import annotations

import re

from .errors import UserError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit"


SESSION_NUMBER_MAX = 10 ** 18 - 1  # a session's number: what its name may hold (the API's and the web's bound too)
SESSION_RE = re.compile(r"(?P<user>[^/\s]+)/(?P<task>[^/\s]+)/(?P<check>check-)?"
                        rf"(?P<number>\d{{1,{len(str(SESSION_NUMBER_MAX))}}})")
CHECK_PREFIX = "check-"  # `nsml check`'s own sessions: USER/TASK/check-K, stored as number -K


def parse_session_name(name: str, what: str = "SESSION") -> tuple[str, str, int]:
    """USER/TASK/N, the one grammar of a session's name (the CLI, the client, the server's paths, the library).
    `nsml check` runs its sessions as USER/TASK/check-K: hidden from ps, they take no number of the participant's
    own sequence (code loads `session=USER/TASK/14` by number), and are stored as the number -K."""
    match = SESSION_RE.fullmatch(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise UserError(f"{what}: {name!r} is not a session name (USER/TASK/N)")
    number = int(match["number"])
    if match["check"] and number == 0:  # check sessions count from 1 (-0 would name session 0)
        raise UserError(f"{what}: {name!r} is not a session name (USER/TASK/N, or USER/TASK/check-K from 1)")
    return match["user"], match["task"], -number if match["check"] else number


def session_name(user: str, task: str, number: int) -> str:
    return f"{user}/{task}/{session_folder(number)}"


def is_check(number: int) -> bool:
    """A session `nsml check` ran (a negative number; see parse_session_name)."""
    return number < 0


def session_folder(number: int) -> str:
    """The last part of a session's name, and its folder under sessions/USER/TASK: N, or check-K."""
    return f"{CHECK_PREFIX}{-number}" if is_check(number) else str(number)


def check_name(name: str, what: str = "--user") -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UserError(f"{what}: invalid name {name!r} ({NAME_RULE})")
    return name


MEMO_MAX = 1000
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # + every bidi control


def check_memo(text: object, what: str = "memo") -> str:
    """A memo: at most MEMO_MAX characters on one line, with no control characters (it is shown in ps, the web
    and CSV; each of those escapes it too)."""
    if not isinstance(text, str):
        raise UserError(f"{what}: must be text")
    if len(text) > MEMO_MAX:
        raise UserError(f"{what}: {len(text)} characters, over {MEMO_MAX}")
    if _CONTROL_RE.search(text):
        raise UserError(f"{what}: control characters (newlines, escapes) are not allowed")
    return text


def pull_target(dest, session: str, checkpoint: str):
    """Where `model pull SESSION CHECKPOINT DEST` writes, locally and from a server alike: DEST itself, or, like
    `cp -r`, a folder named after the checkpoint inside DEST when DEST is a folder already. A path that exists there
    is refused (a pull never mixes into or replaces files)."""
    from pathlib import Path

    from .errors import UserError
    target = Path(dest).expanduser().resolve()
    if target.is_dir():
        target = target / f"{session.replace('/', '_')}_{checkpoint}"
    if target.exists():
        raise UserError(f"PATH: {target} already exists")
    return target
