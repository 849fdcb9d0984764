"""What the templates show, shaped in one place: numbers (`fmt`), rank moves (`arrow`), times (`utc`: every time
the dashboard shows is UTC and says so), a round board's Public and Private tabs (each ranked by its own scores,
unscored entries below), and the entries a board's chart draws. Plain values only: the templates escape them."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import Form, Path, Query

from harness.api.operations import MAX_ID
from harness.core.display import arrow, score_text, time_text  # noqa: F401 - arrow: the templates take it from here
from harness.core.names import SESSION_NUMBER_MAX

# Every integer a dashboard route takes is bounded as the API's are (an unbounded one reached the store as an
# OverflowError: a 500, the hostile review of stop 48); tests/test_web.py checks every route's
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]  # a submission's id
SessionNo = Annotated[int, Path(ge=0, le=SESSION_NUMBER_MAX)]  # a session's number, as its name holds it
PageNo = Annotated[int, Query(ge=1, le=1_000_000)]
FormId = Annotated[int, Form(ge=1, le=MAX_ID)]

DASH = "—"  # an unscored entry's rank and score


fmt = score_text  # one score format everywhere (core.display); arrow too


def as_utc(value) -> datetime | None:
    """VALUE (a datetime, an ISO text such as the service gives, or Unix seconds) as an aware UTC datetime; a naive
    one is UTC already (the store keeps UTC). None when it is none of these."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utc(value) -> str:
    """A time as the dashboard shows every time: '2026-07-01 01:00:00 UTC' ('' for none; text that is no time
    is shown as it is)."""
    if value is None or value == "":
        return ""
    moment = as_utc(value)
    return str(value) if moment is None else time_text(moment.replace(tzinfo=None), seconds=True)


def tab_of(tab: str | None) -> str:
    """The board tab asked for: 'private', else 'public' (anything else in the query is the public tab)."""
    return "private" if tab == "private" else "public"


def _public_order(r: dict):
    return (r.get("public_rank") is None, r.get("public_rank") or 0, str(r.get("team")))


def _private_order(r: dict):
    return (r.get("private_rank") is None, r.get("private_rank") or 0, *_public_order(r))


def round_tab(board: dict, tab: str) -> dict:
    """A round's board as TAB shows it: the Public tab ranks by public rank (the public columns only), the Private
    tab (when the private board is shown) by private rank, each with the entries its own score does not rank
    (no submission, none valid, no private score) below the ranked ones."""
    private = tab == "private" and bool(board.get("private_shown"))
    rows = sorted(board.get("rows") or [], key=_private_order if private else _public_order)
    return {**board, "view": "private" if private else "public", "rows": rows}


def chart_names(board: dict, limit: int = 10) -> list[str]:
    """The entries a board's chart draws: its ranked users or teams, best first, at most LIMIT."""
    if board.get("kind") == "round":
        rows = [r for r in board.get("rows") or [] if r.get("public_rank") is not None]
        rows.sort(key=_public_order)
        return [r["team"] for r in rows][:limit]
    rows = [r for r in board.get("rows") or [] if r.get("rank") is not None]
    rows.sort(key=lambda r: r["rank"])
    return [r["user"] for r in rows][:limit]
