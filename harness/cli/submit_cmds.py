"""submit."""
from __future__ import annotations

import sys

import click

from harness.core.enums import RunStatus
from harness.core.errors import UserError

from . import main, pass_harness
from .output import emit_json, fmt, json_flag, say, unconfined
from .session_cmds import esm_option, note, runtime_option, write_out


@main.command("submit")
@click.argument("session")
@click.argument("checkpoint", nargs=-1, required=True)
@click.option("-t", "--test", "dry_run", is_flag=True,
              help="Contract dry run on the test_submit split: scored, not ranked, not counted.")
@click.option("--time-limit", type=float, default=None, help="Wall-clock limit of the inference run (s).")
@click.option("-v", "--verbose", is_flag=True,
              help="Stream the infer log (your dry runs; organizers: every submit).")
@click.option("-e", "--entry", default=None, help="Infer with another entry file of the session's code.")
@esm_option
@runtime_option
@json_flag
@pass_harness
def submit_cmd(lazy, session, checkpoint, dry_run, time_limit, verbose, entry, esm, runtime, as_json):
    """Run the bound infer of SESSION's CHECKPOINT on the hidden test set and score it.

    `submit select ID [ID...]` picks your team's final submissions for a round's private board."""
    api = lazy.api()
    if session == "select":  # session names have slashes: "select" is never one
        result = api.select_submissions([_submission_id(i) for i in checkpoint])
        if as_json:
            emit_json(result)
        else:
            click.echo(f"Team {result['team']} selected {', '.join(map(str, result['selected']))} "
                       f"for the private board of {result['round']}")
        return
    if len(checkpoint) != 1:
        raise UserError(f"CHECKPOINT: expected one checkpoint, got {len(checkpoint)}: {' '.join(checkpoint)}")
    checkpoint = checkpoint[0]
    sub_id = api.start_submit(session, checkpoint, dry_run, time_limit, runtime, entry, esm, verbose, note)
    if verbose:
        write_out(api.infer_log(sub_id, follow=True))
    if api.remote and sys.stderr.isatty():  # a spinner while the server runs it (and while it reconnects)
        from . import spinner
        with spinner.shown(f"submission {sub_id}") as report:
            result = _until_ended(api, sub_id, report)
    else:
        result = _until_ended(api, sub_id)
    ok = result["status"] == "succeeded"
    if unconfined(result.get("isolation")):
        click.echo("Note: this run was not isolated (process runtime without bubblewrap): its code could read "
                   "any file of the harness's account and use the network", err=True)
    if as_json:
        emit_json(result)
    elif ok:
        _show_dry_run(result)
        kind = f" (public board of {result['round']})" if result.get("round") else ""
        shown = "hidden until the round closes" if result["score"] is None and result.get("ladder") else \
            fmt(result["score"])
        click.echo(f"Score: {shown}{kind}")
        if result.get("ladder"):
            click.echo(f"Ladder: {result['ladder']}")
        click.echo("Done")
    else:
        _show_dry_run(result)
        say(f"Error: submission {sub_id} failed: {result['reason']}: {result['message']}", err=True)
        if not dry_run and not result.get("log_tail"):  # a real submit's infer log saw hidden inputs: not shown
            click.echo(f"To see the infer log, run it on test_submit: nsml submit -t {session} {checkpoint}",
                       err=True)
    sys.exit(0 if ok else 1)


def _show_dry_run(result: dict) -> None:
    """`submit -t` is for debugging: the first predictions, and on failure the end of the log."""
    if result.get("log_tail"):
        click.echo("[harness] end of the infer log:", err=True)
        for line in result["log_tail"]:
            say(f"  {line}", err=True)
    if result.get("predictions_head"):
        click.echo(f"[harness] the prediction file's first {len(result['predictions_head'])} prediction(s) (lines, "
                   f"or the elements of one line of JSON):", err=True)
        for line in result["predictions_head"]:
            say(f"  {line}", err=True)


def _submission_id(text: str) -> int:
    try:
        return int(text.lstrip("#"))
    except ValueError:
        raise UserError(f"ID: {text!r} is not a submission id (see 'history TASK')") from None


def _until_ended(api, sub_id: int, progress=None) -> dict:
    while True:  # each wait_submission returns within 30 s
        info = api.wait_submission(sub_id, progress=progress)
        if RunStatus(info["status"]).terminal:
            return info
