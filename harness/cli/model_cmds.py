"""model ls / rm / pull."""
from __future__ import annotations

import click

from . import main, pass_harness
from .output import answer, human_size, json_flag, say, table


@main.group("model")
def model_group():
    """Checkpoints of a session."""


@model_group.command("ls")
@click.argument("session")
@json_flag
@pass_harness
def model_ls(lazy, session, as_json):
    answer(lazy.api().list_checkpoints(session), as_json, lambda rows: table(
        [dict(r, size=human_size(r["size"]), elapsed=f"{r['elapsed']:.1f}s") for r in rows],
        [("checkpoint", "Checkpoint"), ("last_modified", "Last Modified"), ("elapsed", "Elapsed"),
         ("summary", "Summary"), ("size", "Size")], empty=f"{session} has no checkpoints"))


@model_group.command("rm")
@click.argument("session")
@click.argument("checkpoint")
@pass_harness
def model_rm(lazy, session, checkpoint):
    """Remove a checkpoint ('*' for all)."""
    for name in lazy.api().remove_checkpoints(session, checkpoint):
        click.echo(f"Checkpoint {name} of {session} is removed")


@model_group.command("pull")
@click.argument("session")
@click.argument("checkpoint")
@click.argument("path", type=click.Path())
@pass_harness
def model_pull(lazy, session, checkpoint, path):
    """Copy a checkpoint's folder to PATH."""
    target, skipped = lazy.api().pull_checkpoint(session, checkpoint, path)
    for rel in skipped:
        say(f"Warning: {rel} left out: not a regular file or folder (links are never followed), or a state root's "
            f"file (harness.toml, leaderboard.db, .harness)", err=True)
    click.echo(f"Checkpoint {checkpoint} of {session} is pulled to {target}")
