"""`ps` and `board` (also `dataset board`): the listings people run most, kept light.

On an SQLite store whose schema is current and where nothing needs recovering they read through
harness.service.quick_reads (stdlib sqlite3, no SQLAlchemy: ~0.25 s less per call); otherwise, and for every error
message, through the library, which migrates and recovers first. Both paths build rows with harness.store.read_sql.
"""
from __future__ import annotations

import click

from harness.core.errors import UserError
from harness.core.escape import terminal
from harness.service import quick_reads

from . import main, pass_harness
from .output import json_flag, table, unconfined

PS_COLUMNS = [("name", "Name"), ("created", "Created"), ("status", "Status"), ("reason", "Reason"),
              ("gpu_ids", "CPUs/GPUs"), ("summary", "Summary"), ("memo", "Memo")]
BOARD_COLUMNS = [("rank", "Rank"), ("user", "User"), ("score", "Score"), ("session", "Session"),
                 ("checkpoint", "Checkpoint"), ("submits", "Submits"), ("last_submit", "Last submit")]


def with_intervals(columns: list, rows: list[dict], after: str, key: str,
                   header: str = "95% interval") -> tuple[list, list[dict]]:
    """COLUMNS with a HEADER column after AFTER's when any row has an interval (the rows' KEY, worded)."""
    if not any(r.get(key) for r in rows):
        return columns, rows
    from harness.core.display import interval_text
    at = [k for k, _ in columns].index(after) + 1
    return (columns[:at] + [(f"_{key}", header)] + columns[at:],
            [{**r, f"_{key}": interval_text(r.get(key))} for r in rows])


def with_ties(columns: list, rows: list[dict], key: str, header: str = "Tied") -> list:
    """COLUMNS with a HEADER column (the rank span of each entry's statistical tie group) when any row has one."""
    return columns + [(key, header)] if any(r.get(key) for r in rows) else columns


def interval_note(rows: list[dict], key: str) -> None:
    """Why a board shows no intervals (an opaque evaluator, say): one line on stderr."""
    if rows and not any(r.get(key) for r in rows):
        note = next((r["interval_note"] for r in rows if r.get("interval_note")), None)
        if note:
            click.echo(f"({note})", err=True)


def _resources(row: dict) -> str:
    """`ps`'s CPUs/GPUs cell: the CPU cores the run was given (its thread counts), then its GPUs and node."""
    cpus = f"{row['cpus']:g}" if row.get("cpus") else "-"
    gpus = ",".join(map(str, row["gpu_ids"] or []))
    return cpus + (f" / gpu {gpus}" if gpus else "") + (f" @node:{row['node']['id'][:8]}" if row.get("node") else "")


@main.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Include ended sessions.")
@click.option("-n", "--last", type=int, default=None, help="Only the last N.")
@click.option("-d", "--dataset", "task", default=None, help="Only this task.")
@json_flag
@pass_harness
def ps_cmd(lazy, all_, last, task, as_json):
    """List your sessions (running and queued; -a for all)."""
    got = None if lazy.login() else quick_reads.quick_ps(lazy.settings(), all_, last, task, with_inventory=not as_json)
    rows, inventory = got if got is not None else (lazy.api().list_sessions(all_, last, task), None)
    if not as_json:  # a queued session says what it waits for (a team's GPU quota, say); an unconfined one says so
        rows = [{**r, "reason": r["reason"] or (r["message"] if r["status"] == "queued" else None),
                 "gpu_ids": _resources(r),
                 "memo": ("[not isolated] " if unconfined(r["isolation"]) else "") + r["memo"]} for r in rows]
    marked = not as_json and any(unconfined(r["isolation"]) for r in rows)  # its memo says so: never left out
    table(rows, PS_COLUMNS, as_json=as_json, empty="no sessions" + ("" if all_ else " running (use -a for all)"),
          optional=("created",) if marked else ("memo", "created"))
    if not as_json:  # the GPUs in use: this machine's, or the cluster's node by node (on stderr, like hints)
        line = quick_reads.describe(inventory if inventory is not None else lazy.api().inventory())
        if line:  # a model name is the driver's text: no terminal escape of it reaches the terminal
            click.echo(terminal(line), err=True)


@click.command("board")
@click.argument("task")
@json_flag
@click.option("--top", type=int, default=100, show_default=True,
              help="Rows shown in the table (your own row is always shown); 0 for all.")
@pass_harness
def dataset_board(lazy, task, as_json, top):
    """The leaderboard of TASK: each user's best score (a contest round's task: each team's, see 'contest board')."""
    if top < 0:
        raise UserError(f"--top: must be 0 (all) or more, got {top}")
    remote = lazy.login()
    got = None if remote else quick_reads.quick_board(lazy.settings(), task)
    if got is None:
        result = lazy.api().board(task)
        if result["kind"] == "round":  # a round's task: its team board
            from .contest_cmds import show_round_board
            show_round_board(result, as_json)
            return
        got = result["title"], result["rows"]
    title, rows = got
    me = lazy.api().whoami()["user"] if remote else lazy.settings().user
    hidden = 0
    if not as_json and top and len(rows) > top:
        shown = rows[:top] + [r for r in rows[top:] if r["user"] == me]
        hidden, rows = len(rows) - len(shown), shown
    columns = BOARD_COLUMNS
    if not as_json:
        columns, rows = with_intervals(columns, rows, "score", "interval")
        columns = with_ties(columns, rows, "tie")
    table(rows, columns, title=title, as_json=as_json, empty=f"no scored submissions for {task} yet",
          optional=("checkpoint", "last_submit", "session"))
    if not as_json:
        interval_note(rows, "interval")
    if hidden:
        click.echo(f"{hidden} more rows (--top 0 for all, -j for JSON)", err=True)


main.add_command(dataset_board, "board")  # and `dataset board` (dataset_cmds adds it there)
