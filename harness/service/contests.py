"""Contest commands as the CLI and the server call them: the organizer checks here, the rules in harness.contest.

Organizer commands: create, team add, close, clock (setting it), rescore. Participants: ls, teams, a round's
board (private scores only once the round is closed; organizers any time), select.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from harness.contest import definition, rounds
from harness.contest.gate import get_contest
from harness.contest.rescore import kept_private
from harness.contest.rescore import rescore as rescore_task
from harness.core import clock
from harness.core.errors import TaskNotPrepared, UserError
from harness.core.progress import Progress, silent
from harness.scheduler.waiting import wait_private
from harness.scoring import ladder_board
from harness.state import Harness
from harness.store.models import Task

from . import permissions
from .tasks import prepare_builtin


def parse(path: Path) -> dict:
    return definition.parse_spec(path)


def create(h: Harness, path: Path, prepare: bool = False, scale: float = 1.0, echo=None) -> tuple[str, dict]:
    """[organizer] Register a contest from its file; with PREPARE, prepare its built-in tasks first."""
    permissions.require_organizer(h.settings, "contest create")
    parsed = definition.parse_spec(path)
    if prepare:
        with h.tx() as db:
            have = set(db.scalars(select(Task.name)))
        for task in sorted({t for r in parsed["rounds"] for t in r["tasks"]} - have):
            prepare_builtin(h, task, scale=scale)
            if echo:
                echo(f"Task {task} is prepared")
    try:
        name = definition.create(h, path, parsed)
    except TaskNotPrepared as exc:
        if prepare:
            raise
        raise TaskNotPrepared(f"{path}: {exc} (or contest create --prepare, which prepares its built-in "
                              "tasks)") from None
    now = clock.now(h.settings)
    for r in parsed["rounds"]:
        if r["end"] <= now and echo:
            echo(f"Warning: {path}: rounds.{r['name']} ended at {r['end'].isoformat(sep=' ', timespec='minutes')} "
                 f"UTC, before the contest clock's now ({now.isoformat(sep=' ', timespec='minutes')} UTC"
                 f"{', simulated' if clock.is_simulated(h.settings) else ''}): its submits are refused")
    return name, parsed


def add_team(h: Harness, contest_name: str, team: str, members: list[str]) -> None:
    permissions.require_organizer(h.settings, "contest team add")
    with h.tx() as db:
        definition.add_team(h, db, get_contest(db, contest_name), team, members)


def list_contests(h: Harness) -> list[dict]:
    """Every round, its tasks named to a participant only once it reveals them (contest.gate.reveals)."""
    return definition.list_contests(h, shown_to_all=permissions.is_organizer(h.settings))


def show_teams(h: Harness, contest_name: str) -> list[dict]:
    return definition.show_teams(h, contest_name)


def board(h: Harness, task: str, round_ref: str | None = None, private: bool = False) -> dict:
    return rounds.board(h, task, round_ref, private, organizer=permissions.is_organizer(h.settings),
                        find=lambda db, name: permissions.task_of(h, db, name))  # (not revealed yet: no board)


def in_a_round(h: Harness, task: str) -> bool:
    with h.tx() as db:
        permissions.task_of(h, db, task)  # NotFound says why
        return rounds.round_for_task(db, task, clock.now(h.settings)) is not None


def select_submissions(h: Harness, ids: list[int]) -> dict:
    return rounds.select_submissions(h, ids)


def close(h: Harness, round_ref: str, force: bool = False) -> dict:
    permissions.require_organizer(h.settings, "contest close")
    result = rounds.close_round(h, round_ref, force)
    with h.tx() as db:
        from .moderation import record
        record(h, db, "close", f"round {result['round']}", {"qualifiers": sorted(result["qualifiers"])})
    return result


def clock_now(h: Harness) -> tuple[datetime, bool]:
    """The contest clock's time, and whether it is simulated."""
    return clock.now(h.settings), clock.is_simulated(h.settings)


def set_clock(h: Harness, when: str | None) -> None:
    """[organizer] Set a simulated time (ISO, UTC), or None: back to real time."""
    permissions.require_organizer(h.settings, "contest clock")
    try:
        moment = None if when is None else datetime.fromisoformat(when)
    except ValueError:
        raise UserError(f"WHEN: not an ISO date and time: {when!r}") from None
    clock.set_clock(h.settings, moment)


def rescore(h: Harness, task: str, dry_run: bool, progress: Progress = silent) -> tuple[list[dict], list[dict]]:
    """[organizer] Grade every stored prediction of TASK again; with DRY_RUN nothing is kept."""
    permissions.require_organizer(h.settings, "rescore")
    with h.tx() as db:
        task_id = h.task(db, task).id
        kept = kept_private(h.settings, db, task_id)  # (before the wait: a round may end during it)
    wait_private(h, task_id=task_id)  # what it reports as before: each submission's private half scored
    with h.tx() as db:
        rows, moves = rescore_task(h.settings, db, h.task(db, task), progress, keep_files=not dry_run, kept=kept)
        if dry_run:
            db.rollback()
            return rows, moves
        from .moderation import record
        record(h, db, "rescore", f"task {task}", {"changed": sum(1 for r in rows if r["changed"]),
                                                  "graded": len(rows), "rank_changes": len(moves)})
        teams = ladder_board.task_keys(db, h.task(db, task))
    # the rescore's own replay (in its transaction) made the report; this one, after the commit and serialized per
    # team like every grade's, makes the decisions final whatever a grade of the same team did meanwhile
    ladder_board.replay_teams(h.store, teams, from_start=True)
    return rows, moves
