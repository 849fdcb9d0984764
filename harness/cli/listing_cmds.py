"""`ps` and `board` (also `dataset board`): the listings people run most, kept light.

On an SQLite store whose schema is current and where nothing needs recovering they read through
harness.db.quick (stdlib sqlite3, no SQLAlchemy: ~0.25 s less per call); otherwise, and for every error message,
through the library, which migrates and recovers first. Both paths build rows with harness.listing.
"""
from __future__ import annotations

import click

from .. import listing
from ..db.quick import QuickReader
from ..errors import UserError
from . import main, pass_harness
from .output import table

PS_COLUMNS = [("name", "Name"), ("created", "Created"), ("status", "Status"), ("reason", "Reason"),
              ("gpu_ids", "GPUs"), ("summary", "Summary"), ("memo", "Memo")]
BOARD_COLUMNS = [("rank", "Rank"), ("user", "User"), ("score", "Score"), ("session", "Session"),
                 ("checkpoint", "Checkpoint"), ("submits", "Submits"), ("last_submit", "Last submit")]


def _quick_sessions(settings, all_, last, task):
    """The sessions by the quick path, or None where the library must answer (recovery, an unknown task)."""
    reader = QuickReader.open(settings)
    if reader is None:
        return None
    try:
        task_id = None
        if task:
            found = listing.task_of(reader.rows, task)
            if found is None:
                return None  # the library says why ("not prepared yet", "did you mean")
            task_id = found[0]
        uid = listing.user_id(reader.rows, settings.user)
        return [] if uid is None else listing.session_rows(reader.rows, uid, task_id, all_, last)
    finally:
        reader.close()


@main.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Include ended sessions.")
@click.option("-n", "--last", type=int, default=None, help="Only the last N.")
@click.option("-d", "--dataset", "task", default=None, help="Only this task.")
@click.option("-j", "--json", "as_json", is_flag=True)
@pass_harness
def ps_cmd(lazy, all_, last, task, as_json):
    """List your sessions (running and queued; -a for all)."""
    rows = _quick_sessions(lazy.settings(), all_, last, task)
    if rows is None:
        from .. import sessions
        rows = sessions.list_sessions(lazy.get(), all_=all_, last=last, task=task)
    if not as_json:  # a queued session says what it waits for (a team's GPU quota, say); an unconfined one says so
        rows = [{**r, "reason": r["reason"] or (r["message"] if r["status"] == "queued" else None),
                 "memo": ("[not isolated] " if r["isolation"] == "none" else "") + r["memo"]} for r in rows]
    table(rows, PS_COLUMNS, as_json=as_json, empty="no sessions" + ("" if all_ else " running (use -a for all)"))


def _quick_board(settings, task):
    """(title, rows) by the quick path, or None where the library must answer (a round's task, errors)."""
    reader = QuickReader.open(settings)
    if reader is None:
        return None
    try:
        found = listing.task_of(reader.rows, task)
        if found is None or listing.in_a_round(reader.rows, task):
            return None
        task_id, metric, direction = found
        return _title(task, metric, direction.value), listing.board_rows(reader.rows, task_id, direction)
    finally:
        reader.close()


def _title(task, metric, direction):
    return f"{task} — {metric} ({direction} is better)"


def _full_board(lazy, task, as_json):
    """The library's answer: a round's team board, or the task's own board."""
    from .. import leaderboard, rounds
    h = lazy.get()
    with h.tx() as db:
        t = h.task(db, task)
        in_round = rounds.round_for_task(db, task) is not None
        title = _title(t.name, t.metric, t.direction.value)
    if in_round:
        from .contest_cmds import show_round_board
        show_round_board(h, task, None, False, as_json)
        return None
    return title, leaderboard.board(h, task)


@click.command("board")
@click.argument("task")
@click.option("-j", "--json", "as_json", is_flag=True, help="Every row, as JSON.")
@click.option("--top", type=int, default=100, show_default=True,
              help="Rows shown in the table (your own row is always shown); 0 for all.")
@pass_harness
def dataset_board(lazy, task, as_json, top):
    """The leaderboard of TASK: each user's best score (a contest round's task: each team's, see 'contest board')."""
    if top < 0:
        raise UserError(f"--top: must be 0 (all) or more, got {top}")
    settings = lazy.settings()
    got = _quick_board(settings, task) or _full_board(lazy, task, as_json)
    if got is None:
        return  # a round's board, shown
    title, rows = got
    hidden = 0
    if not as_json and top and len(rows) > top:
        shown = rows[:top] + [r for r in rows[top:] if r["user"] == settings.user]
        hidden, rows = len(rows) - len(shown), shown
    table(rows, BOARD_COLUMNS, title=title, as_json=as_json, empty=f"no scored submissions for {task} yet")
    if hidden:
        click.echo(f"{hidden} more rows (--top 0 for all, -j for JSON)", err=True)


main.add_command(dataset_board, "board")  # and `dataset board` (dataset_cmds adds it there)
