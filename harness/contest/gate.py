"""The gate every session and submit of a round's task passes: the round is open, the user is in a team that
entered it, and the team's GPU quota holds. Also the look-ups of contests and rounds by name."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from harness.core import clock
from harness.core.enums import GpuPolicy, Reveal, RoundStatus, RunStatus
from harness.core.errors import NotFound, UserError
from harness.state import Harness
from harness.store.models import Contest, Round, RoundEntry, Run, Team, TeamMember, User


@dataclass
class Gate:
    """What a session or submit of a round task runs under."""

    contest: Contest
    round: Round
    team: Team

    @property
    def gpu_quota(self) -> int | None:
        """The team's GPU quota in this round: its own, else the round's (None: no limit)."""
        return (self.round.gpu_quota_teams or {}).get(self.team.name, self.round.gpu_quota)


def rounds_of_task(db, task: str) -> list[Round]:
    """The rounds that hold a task, by contest and round number."""
    return [r for r in db.scalars(select(Round).order_by(Round.contest_id, Round.number)) if task in r.tasks]


def entered(db, rnd: Round, team: Team) -> bool:
    return db.scalar(select(RoundEntry.id).where(RoundEntry.round_id == rnd.id, RoundEntry.team_id == team.id)) \
        is not None


def get_contest(db, name: str) -> Contest:
    contest = db.scalar(select(Contest).where(Contest.name == name))
    if contest is None:
        names = db.scalars(select(Contest.name)).all()
        raise NotFound(f"unknown contest {name!r} (known: {', '.join(names) or 'none'})")
    return contest


def get_round(db, ref: str) -> Round:
    """CONTEST/ROUND, or ROUND alone when only one contest has a round of that name."""
    if "/" in ref:
        cname, rname = ref.split("/", 1)
        contest = get_contest(db, cname)
        rnd = db.scalar(select(Round).where(Round.contest_id == contest.id, Round.name == rname))
        found = [rnd] if rnd else []
    else:
        found = list(db.scalars(select(Round).where(Round.name == ref)))
    if len(found) == 1:
        return found[0]
    known = [r.label for r in db.scalars(select(Round).order_by(Round.id))]
    if not found:
        raise NotFound(f"ROUND: unknown round {ref!r} (known: {', '.join(known) or 'none'})")
    raise UserError(f"ROUND: {ref!r} is ambiguous, say CONTEST/ROUND (one of {', '.join(r.label for r in found)})")


def status(rnd: Round, now: datetime) -> RoundStatus:
    if rnd.closed:
        return RoundStatus.CLOSED
    if rnd.opened_at is None or now < rnd.starts_at:
        return RoundStatus.PENDING
    if now >= rnd.ends_at:
        return RoundStatus.ENDED
    return RoundStatus.OPEN


def reveals(rnd: Round, now: datetime) -> bool:
    """Whether participants may know RND's tasks at NOW: from its opening on (reveal = "open"), or always."""
    return rnd.reveal is Reveal.ALWAYS or status(rnd, now) is not RoundStatus.PENDING


def governing(rounds: list[Round], now: datetime) -> Round | None:
    """Of ROUNDS (those holding one task, in order), the one whose rules and board are the task's at NOW: the open
    one, else the latest that has begun, else the first to open — among those that reveal the task (`reveals`: a
    later round not revealed yet never governs it, nor is named, while an earlier one has its practice and its
    final board); among all where none does (an organizer's view of a hidden task)."""
    known = [r for r in rounds if reveals(r, now)] or rounds
    began = [r for r in known if status(r, now) is not RoundStatus.PENDING]
    live = [r for r in began if status(r, now) is RoundStatus.OPEN]
    return live[0] if live else began[-1] if began else known[0] if known else None


def hidden_tasks(db, now: datetime) -> frozenset[str]:
    """The tasks no participant may know of yet: in a round, and in none that reveals them (`reveals`). Once one
    of its rounds has opened a task stays known (its board, practice after the close)."""
    shown, held = set(), set()
    for rnd in db.scalars(select(Round)):
        held.update(rnd.tasks)
        if reveals(rnd, now):
            shown.update(rnd.tasks)
    return frozenset(held - shown)


def team_of(db, contest: Contest, user: User) -> Team | None:
    member = db.scalar(select(TeamMember).where(TeamMember.contest_id == contest.id, TeamMember.user_id == user.id))
    return db.get(Team, member.team_id) if member else None


def gate(h: Harness, db, user: User, task_name: str, action: str, practice: bool = False) -> Gate | None:
    """Check that USER may start ACTION ('a session', 'a submit') on a task; None for tasks in no round. PRACTICE
    (a session, a dry run) stays open on the task of a closed round to the teams that were in it, within their
    GPU quota as before: nothing of it reaches a board (a dry run has no round; a real submit is refused)."""
    rounds = rounds_of_task(db, task_name)
    if not rounds:
        return None
    now = clock.now(h.settings)
    rnd = governing(rounds, now)
    state = status(rnd, now)
    where = f"{task_name} is in round {rnd.label}"
    if state is RoundStatus.PENDING and not reveals(rnd, now):  # (reached from a session of the task from before
        #                                                          it joined the round: which round is not told)
        raise UserError(f"{task_name} is in a contest round that has not opened yet; {action} is not possible yet")
    if state is RoundStatus.PENDING:
        when = rnd.starts_at.isoformat(timespec="seconds") if rnd.opened_at else "when the round before it closes"
        raise UserError(f"{where}, which has not opened yet (opens {when}); {action} is not possible yet")
    if state is RoundStatus.ENDED:
        raise UserError(f"{where}, which ended at {rnd.ends_at.isoformat(timespec='seconds')} UTC; "
                        f"{action} is no longer possible")
    if state is RoundStatus.CLOSED and not practice:
        raise UserError(f"{where}, which is closed; {action} is no longer possible (its teams may still practise: "
                        f"sessions and submit -t)")
    team = team_of(db, rnd.contest, user)
    if team is None:
        raise UserError(f"{where}: user {user.name!r} is in no team of contest {rnd.contest.name} "
                        f"(organizers add teams in contest.toml or with 'contest team add')")
    if not entered(db, rnd, team):
        raise UserError(f"{where}: team {team.name!r} did not qualify for it")
    return Gate(rnd.contest, rnd, team)


def team_gpus_held(db, team_id: int) -> int:
    """GPUs the team's queued and running runs ask for (what `gpu_policy = refuse` checks against)."""
    return sum(db.scalars(select(Run.gpus).where(Run.team_id == team_id,
                                                 Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))))


def check_gpu_request(db, g: Gate | None, gpus: int) -> None:
    """A request the team's quota can never hold is refused; with gpu_policy = refuse, so is one over it now."""
    if g is None or g.gpu_quota is None or gpus == 0:
        return
    quota = g.gpu_quota
    if gpus > quota:
        raise UserError(f"-g/--gpus: {gpus} GPU(s) requested, over team {g.team.name}'s quota of {quota} "
                        f"in round {g.round.label}")
    if g.round.gpu_policy is GpuPolicy.REFUSE:
        held = team_gpus_held(db, g.team.id)
        if held + gpus > quota:
            raise UserError(f"-g/--gpus: team {g.team.name} already holds {held} of its {quota} GPU(s) in round "
                            f"{g.round.label}; {gpus} more would go over (gpu_policy = refuse)")
