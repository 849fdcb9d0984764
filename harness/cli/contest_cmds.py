"""contest create / ls / teams / team add / board / close / clock / simulate, and rescore.

Organizer commands (create, team add, close, clock, rescore) say so in their help and check the organizer
identity of harness.toml's `organizers`.
"""
from __future__ import annotations

from pathlib import Path

import click

from harness.core.display import LADDER_NOTE, arrow, shakeup_text

from . import main, pass_harness, spinner, table_command
from .output import answer, emit_json, fmt, json_flag, table


@main.group("contest")
def contest_group():
    """Contest rounds: teams, quotas, public/private boards, qualifiers; and the contest simulator."""


@contest_group.command("create")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--prepare", is_flag=True, help="Prepare built-in tasks that are not prepared yet.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="With --prepare: data size multiplier.")
@pass_harness
def contest_create(lazy, file, prepare, scale):
    """[organizer] Register the contest of FILE (contest.toml); its first round opens at its start time."""
    got = lazy.api().create_contest(file, prepare, scale, click.echo)
    click.echo(f"Contest {got['name']} is created: {got['rounds']} round(s), {got['teams']} team(s)")


def _contest_row(r: dict) -> dict:
    from harness.core.display import rule_text
    return {**r, "qualify": rule_text(r["qualify"]) if r["qualify"] else ""}


table_command(contest_group, "ls", lambda api: api.list_contests(),
              [("contest", "Contest"), ("round", "Round"), ("tasks", "Tasks"), ("status", "Status"),
               ("start", "Start"), ("end", "End"), ("teams", "Teams"), ("quota", "Submits"),
               ("gpu_quota", "GPUs/team"), ("qualify", "Qualify")], "no contests",
              "Contests and their rounds, with each round's status and rules.", optional=("gpu_quota", "quota"),
              shown=_contest_row)


@contest_group.command("teams")
@click.argument("contest_name", metavar="CONTEST")
@json_flag
@pass_harness
def contest_teams(lazy, contest_name, as_json):
    """Teams of CONTEST, their members and the rounds they entered."""
    table(lazy.api().show_teams(contest_name),
          [("team", "Team"), ("members", "Members"), ("rounds", "Rounds")], as_json=as_json, empty="no teams")


@contest_group.group("team")
def team_group():
    """Manage teams."""


@team_group.command("add")
@click.argument("contest_name", metavar="CONTEST")
@click.argument("team")
@click.argument("users", nargs=-1, required=True)
@pass_harness
def team_add(lazy, contest_name, team, users):
    """[organizer] Add TEAM (or add USERS to it) in CONTEST."""
    lazy.api().add_team(contest_name, team, list(users))
    click.echo(f"Team {team}: {', '.join(users)}")


@contest_group.command("board")
@click.argument("task")
@click.option("--round", "round_ref", default=None, help="CONTEST/ROUND (default: the task's latest opened round).")
@click.option("--private", is_flag=True, help="Show private scores (organizers before close; everyone after).")
@json_flag
@pass_harness
def contest_board(lazy, task, round_ref, private, as_json):
    """Team board of TASK: public ranks; after the round closes, private ranks and the shake-up."""
    show_round_board(lazy.api().round_board(task, round_ref, private), as_json)


def show_round_board(result: dict, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    cols = [("public_rank", "Public rank"), ("team", "Team"), ("public", "Public")]
    if result["private_shown"]:
        cols = [("private_rank", "Private rank"), ("team", "Team"), ("private", "Private"),
                ("public_rank", "Public rank"), ("public", "Public"), ("shakeup", "Shake-up"),
                ("final_submission", "Final #")]
    cols += [("submits", "Submits"), ("last_submit", "Last submit")]
    if any(r.get("reason") for r in result["rows"]):
        cols.append(("reason", "Unscored because"))
    rows = [{**r, "shakeup": arrow(r.get("shakeup"))} for r in result["rows"]]
    from .read_cmds import interval_note, with_intervals, with_ties
    cols, rows = with_intervals(cols, rows, "public", "public_interval",
                                "Public 95%" if result["private_shown"] else "95% interval")
    if result["private_shown"]:
        cols, rows = with_intervals(cols, rows, "private", "private_interval", "Private 95%")
        cols = with_ties(cols, rows, "private_tie", "Tied")
    cols = with_ties(cols, rows, "tie", "Tied (public)" if result["private_shown"] else "Tied")
    title = (f"{result['task']} in {result['round']} ({result['status']}) — {result['metric']}, "
             f"{result['direction']} is better" + ("" if result["private_shown"] else "; public board"))
    table(rows, cols, title=title, empty=f"no scored submissions in {result['round']} yet",
          optional=("last_submit", "final_submission", "submits", "_public_interval", "tie"))
    interval_note(rows, "public_interval")
    if result.get("public_board") == "ladder":
        click.echo(LADDER_NOTE)
    if result.get("shakeup"):
        click.echo(shakeup_text(result["shakeup"], result["status"] == "closed"))


@contest_group.command("close")
@click.argument("round_ref", metavar="ROUND")
@click.option("--force", is_flag=True, help="Close a round that is not over yet (it says what it cuts short).")
@json_flag
@pass_harness
def contest_close(lazy, round_ref, force, as_json):
    """[organizer] Close ROUND (CONTEST/ROUND): freeze it, reveal private ranks, enter qualifiers in the next."""
    answer(lazy.api().close_round(round_ref, force), as_json, _show_closed)


def _show_closed(result: dict) -> None:
    if result.get("cut_short"):
        click.echo(f"Cut short: {result['cut_short']}")
    clock_kind = "simulated contest clock" if result.get("clock_simulated") else "contest clock"
    if result.get("clock_now", result["closed_at"]) != result["closed_at"]:  # a clock set back before the opening
        clock_kind = f"the time it opened: the {clock_kind} says {result['clock_now']}, earlier"
    click.echo(f"Round {result['round']} is closed at {result['closed_at']} UTC ({clock_kind})")
    for task, rows in result["boards"].items():
        ranked = ", ".join(f"{r['private_rank']}. {r['team']} ({fmt(r['private'])}, {arrow(r['shakeup'])})"
                           for r in sorted((r for r in rows if r["private_rank"]), key=lambda r: r["private_rank"]))
        unscored = ", ".join(f"{r['team']} ({r['reason']})" for r in rows if r.get("reason") and not r["private_rank"])
        click.echo(f"{task}: {ranked or 'no scored submissions'}" + (f"; unscored: {unscored}" if unscored else ""))
    failed = result.get("no_private_score") or []
    if failed:
        shown = ", ".join(f"#{f['submission']} ({f['team']}, {f['task']}{', selected' if f['selected'] else ''})"
                          for f in failed[:10])
        click.echo(f"No private score (their private half failed; each log says why, and none was a final): "
                   f"{shown}" + (f" and {len(failed) - 10} more" if len(failed) > 10 else ""), err=True)
    chosen = result["qualifiers"]
    click.echo(f"Qualified ({len(chosen)}): {', '.join(sorted(chosen)) or 'none'}"
               + (f" → {result['next_round']}" if result["next_round"] else ""))


@contest_group.command("clock")
@click.argument("when", required=False)
@click.option("--real", is_flag=True, help="Go back to real time.")
@pass_harness
def contest_clock(lazy, when, real):
    """[organizer] Show the contest clock, or set a simulated time WHEN (ISO, UTC)."""
    got = lazy.api().set_clock(when, real) if when or real else lazy.api().clock()
    click.echo(f"{got['now']} UTC ({'simulated' if got['simulated'] else 'real'})")


@contest_group.command("simulate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--teams", type=click.IntRange(2, 200), default=15, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--scale", type=click.FloatRange(0.01, 100), default=0.3, show_default=True,
              help="Data size multiplier of the tasks built here (built-in ones).")
@click.option("--out", type=click.Path(file_okay=False), default="contest-sim", show_default=True,
              help="Folder for the simulation's state root and its report.")
@click.option("--gpus", type=click.IntRange(0, 10_000), default=8, show_default=True, help="Simulated GPU inventory.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Runs at once (real processes).")
@click.option("--baseline", "baselines", multiple=True, metavar="TASK=FOLDER",
              help="A baseline folder for TASK's synthetic teams (repeat; the strongest first). Default: the "
                   "task's [simulate] baselines, or the built-in tasks' own.")
@click.option("--submit-time-limit", type=click.FloatRange(1, 7 * 86400), default=None,
              help="Seconds a submit may take (default: the task's [limits] submit_seconds).")
@pass_harness
def contest_simulate(lazy, file, teams, seed, scale, out, gpus, workers, baselines, submit_time_limit):
    """Run a whole contest on simulated time with synthetic teams and write a report (Markdown, HTML, PNGs).

    Its tasks: built-in ones are built at --scale; others must be registered in this state root
    (`nsml dataset add FOLDER`). Exits non-zero when most honest submits failed.

    \b
    Example:
      nsml contest simulate contest.toml --teams 6 --baseline mytask=baselines/knn --baseline mytask=baselines/mean
    """
    from harness.sim.baselines import parse_cli
    from harness.sim.simulate import SimConfig, simulate

    def registered() -> dict:
        return {r["name"]: r["path"] for r in lazy.api().list_tasks() if r.get("path")}

    cfg = SimConfig(contest_file=Path(file), teams=teams, seed=seed, scale=scale, out=Path(out), gpus=gpus,
                    workers=workers, submit_time_limit=submit_time_limit, baselines=parse_cli(baselines),
                    registered=registered)
    with spinner.shown("simulate") as report:
        written = simulate(cfg, echo=click.echo, progress=report)
    click.echo(f"Report: {written}")


@main.command("rescore")
@click.argument("task")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@json_flag
@pass_harness
def rescore_cmd(lazy, task, dry_run, as_json):
    """[organizer] Grade every stored prediction of TASK again (e.g. after an evaluator fix); show changes."""
    with spinner.shown(f"rescore {task}") as report:
        got = lazy.api().rescore(task, dry_run, progress=report)
    if as_json:
        emit_json(got)
        return
    rows, moves = got["submissions"], got["rank_changes"]
    changed = [r for r in rows if r["changed"]]
    shown = [{"id": r["id"], "who": r["who"], "before": _grade(r["before"]), "after": _grade(r["after"]),
              "note": r["note"]} for r in rows
            if r["changed"] or r["after"] and r["after"][0] == "succeeded" and r["note"]]  # (a failed private half)
    table(shown, [("id", "#"), ("who", "Team/user"), ("before", "Before"), ("after", "After"), ("note", "Note")],
          title=f"rescore {task}: {len(changed)} of {len(rows)} changed" + (" (dry run)" if dry_run else ""),
          empty=f"rescore {task}: {len(rows)} graded again, nothing changed")
    if moves:
        table([{**m, "move": arrow((m["before"] or 0) - (m["after"] or 0)) if m["before"] and m["after"] else ""}
               for m in moves],
              [("board", "Board"), ("who", "Team/user"), ("before", "Rank before"), ("after", "Rank after"),
               ("move", "Move")], title="rank changes")


def _grade(g) -> str:
    if g is None:
        return ""
    state, public, private = g
    if state != "succeeded":
        return state
    return fmt(public) + (f" / private {fmt(private)}" if private is not None else "")
