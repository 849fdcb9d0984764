"""submit."""
from __future__ import annotations

import sys

import click

from .. import rounds, submits
from ..errors import UserError
from . import main, pass_harness
from .output import emit_json
from .session_cmds import pick_runtime, runtime_option


@main.command("submit")
@click.argument("session")
@click.argument("checkpoint", nargs=-1, required=True)
@click.option("-t", "--test", "dry_run", is_flag=True,
              help="Contract dry run on the test_submit split: scored, not ranked, not counted.")
@click.option("--time-limit", type=float, default=None, help="Wall-clock limit of the inference run (s).")
@runtime_option
@click.option("-j", "--json", "as_json", is_flag=True)
@pass_harness
def submit_cmd(lazy, session, checkpoint, dry_run, time_limit, runtime, as_json):
    """Run the bound infer of SESSION's CHECKPOINT on the hidden test set and score it.

    `submit select ID [ID...]` picks your team's final submissions for a round's private board."""
    h = lazy.get()
    if session == "select":  # session names have slashes: "select" is never one
        result = rounds.select_submissions(h, [_submission_id(i) for i in checkpoint])
        if as_json:
            emit_json(result)
        else:
            click.echo(f"Team {result['team']} selected {', '.join(map(str, result['selected']))} "
                       f"for the private board of {result['round']}")
        return
    if len(checkpoint) != 1:
        raise UserError(f"CHECKPOINT: expected one checkpoint, got {len(checkpoint)}: {' '.join(checkpoint)}")
    checkpoint = checkpoint[0]
    chosen = pick_runtime(h, runtime) if runtime else None  # default: the session's own runtime
    result = submits.submit(h, session, checkpoint, dry_run=dry_run, time_limit=time_limit, runtime=chosen)
    ok = result["status"] == "succeeded"
    if result.get("isolation") == "none":
        click.echo("Note: this run was not isolated (process runtime without bubblewrap): its code could read "
                   "any file of the harness's account and use the network", err=True)
    if as_json:
        emit_json(result)
    elif ok:
        kind = f" (public board of {result['round']})" if result.get("round") else ""
        click.echo(f"Score: {result['score']}{kind}")
        click.echo("Done")
    else:
        click.echo(f"Error: submission failed: {result['reason']}: {result['message']}", err=True)
    sys.exit(0 if ok else 1)


def _submission_id(text: str) -> int:
    try:
        return int(text.lstrip("#"))
    except ValueError:
        raise UserError(f"ID: {text!r} is not a submission id (see 'history TASK')") from None
