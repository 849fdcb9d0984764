"""submit."""
from __future__ import annotations

import sys

import click

from .. import submits
from . import main, pass_harness
from .output import emit_json
from .session_cmds import pick_runtime, runtime_option


@main.command("submit")
@click.argument("session")
@click.argument("checkpoint")
@click.option("-t", "--test", "dry_run", is_flag=True,
              help="Contract dry run on the test_submit split: scored, not ranked, not counted.")
@click.option("--time-limit", type=float, default=None, help="Wall-clock limit of the inference run (s).")
@runtime_option
@click.option("-j", "--json", "as_json", is_flag=True)
@pass_harness
def submit_cmd(lazy, session, checkpoint, dry_run, time_limit, runtime, as_json):
    """Run the bound infer of SESSION's CHECKPOINT on the hidden test set and score it."""
    h = lazy.get()
    chosen = pick_runtime(h, runtime) if runtime else None  # default: the session's own runtime
    result = submits.submit(h, session, checkpoint, dry_run=dry_run, time_limit=time_limit, runtime=chosen)
    ok = result["status"] == "succeeded"
    if as_json:
        emit_json(result)
    elif ok:
        click.echo(f"Score: {result['score']}")
        click.echo("Done")
    else:
        click.echo(f"Error: submission failed: {result['reason']}: {result['message']}", err=True)
    sys.exit(0 if ok else 1)
