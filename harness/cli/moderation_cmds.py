"""hide / unhide / baseline / audit: organizers moderating boards, every action recorded."""
from __future__ import annotations

import click

from . import main, pass_harness
from .output import answer, json_flag, table


def _id(text: str) -> int:
    from harness.core.errors import UserError
    try:
        return int(text.lstrip("#"))
    except ValueError:
        raise UserError(f"ID: {text!r} is not a submission id") from None


def _visibility(name: str, hidden: bool, doc: str, done: str) -> None:
    """`hide` and `unhide`: one operation (hide_submission), two commands."""
    @main.command(name, help=doc)
    @click.argument("sub_id", metavar="ID")
    @pass_harness
    def command(lazy, sub_id):
        got = lazy.api().hide_submission(_id(sub_id), hidden)
        click.echo(f"Submission {got['id']} of {got['user']} on {got['task']} is {done}")


_visibility("hide", True, "[organizer] Hide submission ID from its board (it keeps its row and history; it never "
            "ranks).", "hidden")
_visibility("unhide", False, "[organizer] Show a hidden submission on its board again.", "shown again")


@main.command("baseline")
@click.argument("name")
@click.option("--team", is_flag=True, help="NAME is a team: CONTEST/TEAM (TEAM alone: the only such team).")
@click.option("--off", is_flag=True, help="No longer a baseline.")
@pass_harness
def baseline_cmd(lazy, name, team, off):
    """[organizer] Mark a user (or team) as a baseline: its board rows are marked as such."""
    lazy.api().mark_baseline(name, team, not off)
    click.echo(f"{'Team' if team else 'User'} {name} is {'no longer ' if off else ''}a baseline")


@main.command("audit")
@click.option("-n", "--last", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_flag
@pass_harness
def audit_cmd(lazy, last, as_json):
    """[organizer] Organizers' actions (hide, baseline, rescore, close), newest first: who, when, what."""
    answer(lazy.api().audit(last), as_json, lambda rows: table(
        [{**r, "detail": ", ".join(f"{k}={v}" for k, v in r["detail"].items())} for r in rows],
        [("time", "Time"), ("actor", "Who"), ("action", "Action"), ("target", "Target"), ("detail", "Detail")],
        empty="no organizer actions recorded"))
