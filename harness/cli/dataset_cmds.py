"""dataset ls / prepare / add / check / rm / changes, and `history` (`dataset board`: listing_cmds)."""
from __future__ import annotations

import click

from harness.core.errors import UserError

from . import action_command, main, pass_harness, spinner, table_command

HISTORY_PAGE = 50
from .output import json_flag, table


@main.group("dataset")
def dataset_group():
    """Tasks (datasets) and their leaderboards."""


table_command(dataset_group, "ls", lambda api: api.list_tasks(),
              [("name", "Task"), ("prepared", "Prepared"), ("metric", "Metric"), ("direction", "Better"),
               ("submissions", "Submissions")], "no tasks", "Known tasks: prepared ones and built-ins that can be prepared.")


@dataset_group.command("prepare")
@click.argument("task")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Data size multiplier.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--corpus", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Build from your own text files instead of the built-in corpus (repeatable).")
@click.option("--replace", is_flag=True, help="Rebuild a task that is already registered (recorded).")
@pass_harness
def dataset_prepare(lazy, task, scale, seed, corpus, replace):
    """[organizer] Build a built-in task's data (offline, deterministic) and register it."""
    if scale <= 0:
        raise click.BadParameter("must be positive", param_hint="--scale")
    with spinner.shown(f"building {task}"):  # a spinner and the time on a terminal
        got = lazy.api().prepare_task(task, scale, seed, list(corpus), replace)
    click.echo(f"Task {got['name']} is prepared at {got['path']}")


@dataset_group.command("add")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--replace", is_flag=True, help="Replace a registered task of the same name (recorded).")
@click.option("--name", default=None, help="A plain NSML pack without task.toml: the task's name (writes one).")
@click.option("--metric", default=None, help="... its metric's name (e.g. accuracy).")
@click.option("--direction", type=click.Choice(["higher", "lower"]), default=None, help="... which is better.")
@pass_harness
def dataset_add(lazy, folder, replace, name, metric, direction):
    """[organizer] Register a task pack in NSML layout, where it is (a plain pack: with --name, --metric,
    --direction, which write its task.toml)."""
    added = lazy.api().add_task(folder, replace, name, metric, direction, click.echo)
    click.echo(f"Task {added} is registered")


@dataset_group.command("check")
@click.argument("task")
@json_flag
@pass_harness
def dataset_check(lazy, task, as_json):
    """[organizer] Check a task pack (a registered TASK or a FOLDER): layout, loader, manifest, evaluator, test_submit.
    Exit 0 only when every check passes."""
    from pathlib import Path
    if not lazy.login() and Path(task).is_dir():  # a folder here: the state root's service may run elsewhere
        task = str(Path(task).resolve())
    rows = lazy.api().check_task(task)
    table([{**r, "ok": "pass" if r["ok"] else "FAIL"} for r in rows] if not as_json else rows,
          [("check", "Check"), ("ok", "Result"), ("detail", "Detail")], as_json=as_json)
    if not all(r["ok"] for r in rows):
        raise SystemExit(1)


action_command(dataset_group, "rm", "task", lambda api, task: api.remove_task(task), "Task {} is removed",
               "[organizer] Unregister a task that has no sessions or submissions (its files stay where they are).")


@dataset_group.command("changes")
@click.argument("task")
@json_flag
@pass_harness
def dataset_changes(lazy, task, as_json):
    """[organizer] Who registered, replaced or removed TASK, with evaluator and test-data hashes."""
    table(lazy.api().task_changes(task),
          [("time", "Time"), ("action", "Action"), ("user", "User"), ("old_evaluator", "Evaluator before"),
           ("new_evaluator", "Evaluator after"), ("old_data", "Test data before"), ("new_data", "Test data after")],
          as_json=as_json, empty=f"no recorded changes of {task}")


@main.command("history")
@click.argument("task")
@json_flag
@click.option("--page", type=int, default=1, show_default=True, help="Which page, newest first.")
@click.option("--per-page", type=int, default=HISTORY_PAGE, show_default=True,
              help="Submissions a page.")
@pass_harness
def history_cmd(lazy, task, as_json, page, per_page):
    """Your own submissions to TASK, failed and dry runs included, newest first."""
    if page < 1:
        raise UserError(f"--page: must be 1 or more, got {page}")
    if per_page < 1:
        raise UserError(f"--per-page: must be 1 or more, got {per_page}")
    rows, total = lazy.api().history(task, page, per_page)
    if len(rows) == per_page or page > 1:
        pages = max(1, -(-total // per_page))
        if pages > 1:
            click.echo(f"page {page} of {pages} ({total} submissions; --page N for more)", err=True)
    columns = [("id", "#"), ("created", "Time"), ("session", "Session"), ("checkpoint", "Checkpoint"),
               ("dry_run", "Dry run"), ("status", "Status"), ("reason", "Reason"), ("score", "Score")]
    if any(r.get("in_round") for r in rows):  # a contest round's task: its private board and final selection
        columns += [("selected", "Selected"), ("private_score", "Private")]
    table(rows, columns, as_json=as_json, empty="no submissions", optional=("checkpoint", "dry_run"))


from .read_cmds import dataset_board  # noqa: E402 - the light module holds it; `dataset board` is the same command

dataset_group.add_command(dataset_board, "board")

from .init_cmds import dataset_init  # noqa: E402 - `dataset init` (init_cmds holds both scaffold commands)

dataset_group.add_command(dataset_init, "init")
