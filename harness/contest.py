"""Contests: a contest.toml's rounds and teams, and the gate every session and submit of a round task passes.

```toml
name = "ai-rush"
[teams]                       # team = its members (users); a user is in one team per contest
"team-a" = ["alice", "bob"]

[[rounds]]
name = "round1"
tasks = ["garbage-docs", "bus-eta"]
start = 2026-07-01T00:00:00   # UTC
end = 2026-07-08T00:00:00
submit = { quota = 1, period_seconds = 3600 }   # counted submits per team and task
gpu_quota = 3                 # GPUs a team's runs may hold at once (absent: no team limit)
gpu_quota_teams = { "team-a" = 6 }   # teams with a quota of their own
gpu_policy = "wait"           # wait | refuse: a session over the quota queues, or is refused
public_fraction = 0.3         # share of the test set on the public board (the rest: private)
split_seed = 7
select = 2                    # submissions a team may select for the private board
qualify = { top = 10 }        # per task; or { threshold = 0.6 } on the private score
```

A task in no round is outside every contest: sessions and submits go on per user, as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from . import clock, permissions, schema
from .context import Harness
from .db.models import Contest, Round, RoundEntry, Run, Team, TeamMember, User
from .enums import GpuPolicy, RoundStatus, RunStatus
from .errors import NotFound, UserError
from .settings import read_toml



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


def _time(value, where: str) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else \
            value.astimezone(tz=None).replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=None)
        except ValueError:
            pass
    raise UserError(f"{where}: expected a date and time like 2026-07-01T00:00:00, got {value!r}")


def _number(value, where: str, kind=int, low=0.0, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: expected a number, got {value!r}")
    if kind is int and value != int(value):
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
        raise UserError(f"{where}: must be {bounds}, got {value!r}")
    return kind(value)


def _team_quotas(value, teams: dict, where: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a table of team = GPUs")
    for team, n in value.items():
        if team not in teams:
            raise UserError(f"{where}.{team}: no such team in [teams]")
        _number(n, f"{where}.{team}", int)
    return {team: int(n) for team, n in value.items()}


def parse_spec(path: Path) -> dict:
    """Read and check a contest.toml; every error names the file and the field."""
    try:
        data = read_toml(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    schema.check(data, schema.CONTEST, str(path))
    name = data.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.strip() != name:
        raise UserError(f"{path}: name: expected a contest name without '/', got {name!r}")
    teams = data.get("teams", {})
    if not isinstance(teams, dict):
        raise UserError(f"{path}: teams: expected a table of team = [members]")
    seen: dict[str, str] = {}
    for team, members in teams.items():
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            raise UserError(f"{path}: teams.{team}: expected a non-empty list of user names")
        for m in members:
            if m in seen:
                raise UserError(f"{path}: teams.{team}: user {m!r} is already in team {seen[m]!r}")
            seen[m] = team
    rounds = data.get("rounds")
    if not isinstance(rounds, list) or not rounds:
        raise UserError(f"{path}: rounds: expected at least one [[rounds]] table")
    parsed, names, previous_end = [], set(), None
    for i, r in enumerate(rounds, start=1):
        where = f"{path}: rounds[{i}]"
        if not isinstance(r, dict):
            raise UserError(f"{where}: expected a [[rounds]] table, got {r!r}")
        schema.check(r, schema.ROUND, where)
        rname = r.get("name", f"round{i}")
        if not isinstance(rname, str) or "/" in rname or rname in names:
            raise UserError(f"{where}.name: expected a unique round name without '/', got {rname!r}")
        names.add(rname)
        tasks = r.get("tasks")
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
            raise UserError(f"{where}.tasks: expected a non-empty list of task names")
        start, end = _time(r.get("start"), f"{where}.start"), _time(r.get("end"), f"{where}.end")
        if end <= start:
            raise UserError(f"{where}.end: must be after start ({start.isoformat()})")
        if previous_end is not None and start < previous_end:
            raise UserError(f"{where}.start: must not be before the previous round's end ({previous_end.isoformat()})")
        previous_end = end
        submit = r.get("submit", {})
        if not isinstance(submit, dict):
            raise UserError(f"{where}.submit: expected a table like {{ quota = 1, period_seconds = 3600 }}")
        policy = r.get("gpu_policy", "wait")
        if policy not in {p.value for p in GpuPolicy}:
            raise UserError(f"{where}.gpu_policy: expected 'wait' or 'refuse', got {policy!r}")
        qualify = r.get("qualify", {})
        if not isinstance(qualify, dict) or len(qualify) > 1 or (qualify and set(qualify) - {"top", "threshold"}):
            raise UserError(f"{where}.qualify: expected {{ top = K }} or {{ threshold = SCORE }}")
        if "top" in qualify:
            qualify = {"top": _number(qualify["top"], f"{where}.qualify.top", int, 1)}
        elif "threshold" in qualify:
            qualify = {"threshold": _number(qualify["threshold"], f"{where}.qualify.threshold", float, -1e300)}
        entry = r.get("entry", "all" if i == 1 else "qualified")
        if entry not in ("all", "qualified") or (i == 1 and entry == "qualified"):
            raise UserError(f"{where}.entry: expected 'all'{'' if i == 1 else ' or qualified'}, got {entry!r}")
        parsed.append({
            "name": rname, "tasks": list(tasks), "start": start, "end": end,
            "submit_quota": _number(submit.get("quota", 1), f"{where}.submit.quota", int, 0),
            "submit_period": _number(submit.get("period_seconds", 3600), f"{where}.submit.period_seconds", float, 1),
            "gpu_quota": None if r.get("gpu_quota") is None else _number(r["gpu_quota"], f"{where}.gpu_quota", int),
            "gpu_quota_teams": _team_quotas(r.get("gpu_quota_teams", {}), teams, f"{where}.gpu_quota_teams"),
            "gpu_policy": GpuPolicy(policy),
            "public_fraction": _number(r.get("public_fraction", 0.3), f"{where}.public_fraction", float, 0.01, 0.99),
            "split_seed": _number(r.get("split_seed", 0), f"{where}.split_seed", int),
            "selection_limit": _number(r.get("select", 2), f"{where}.select", int, 1),
            "qualify": qualify, "entry": entry})
    return {"name": name, "title": data.get("title", ""), "teams": teams, "rounds": parsed}


def create(h: Harness, path: Path, spec: dict | None = None) -> str:
    """Register a contest from its file: rounds, teams; the first round opens (at its start time)."""
    spec = spec or parse_spec(path)
    with h.tx() as db:
        if db.scalar(select(Contest.id).where(Contest.name == spec["name"])) is not None:
            raise UserError(f"{path}: name: contest {spec['name']!r} already exists")
        for r in spec["rounds"]:
            for t in r["tasks"]:
                h.task(db, t)  # each task must be prepared: NotFound says how
                clash = rounds_of_task(db, t)
                if clash:
                    raise UserError(f"{path}: rounds.{r['name']}.tasks: {t!r} is already in round {clash[0].label}")
        contest = Contest(name=spec["name"], source=str(path), spec=_jsonable(spec))
        db.add(contest)
        db.flush()
        for number, r in enumerate(spec["rounds"], start=1):
            db.add(Round(contest_id=contest.id, number=number, name=r["name"], tasks=r["tasks"],
                         starts_at=r["start"], ends_at=r["end"], submit_quota=r["submit_quota"],
                         submit_period=r["submit_period"], gpu_quota=r["gpu_quota"],
                         gpu_quota_teams=r["gpu_quota_teams"], gpu_policy=r["gpu_policy"],
                         public_fraction=r["public_fraction"], split_seed=r["split_seed"],
                         selection_limit=r["selection_limit"], qualify=r["qualify"], entry=r["entry"],
                         opened_at=clock.now(h.settings) if number == 1 else None, results={}))
        db.flush()
        for team, members in spec["teams"].items():
            add_team(h, db, contest, team, members)
        return contest.name


def _jsonable(spec: dict) -> dict:
    rounds = [{**r, "start": r["start"].isoformat(), "end": r["end"].isoformat(), "gpu_policy": r["gpu_policy"].value}
              for r in spec["rounds"]]
    return {**spec, "rounds": rounds}


def rounds_of_task(db, task: str) -> list[Round]:
    """The rounds that hold a task, by contest and round number."""
    return [r for r in db.scalars(select(Round).order_by(Round.contest_id, Round.number)) if task in r.tasks]


def add_team(h: Harness, db, contest: Contest, name: str, members: list[str]) -> Team:
    """Add a team (or members to it); the team enters the contest's first round if that admits everyone."""
    permissions.check_name(name, f"team {name!r}")
    for m in members:
        permissions.check_name(m, f"team {name!r}: member")
    team = db.scalar(select(Team).where(Team.contest_id == contest.id, Team.name == name))
    if team is None:
        team = Team(contest_id=contest.id, name=name)
        db.add(team)
        db.flush()
    for m in members:
        user = h.user(db, m)
        other = db.scalar(select(TeamMember).where(TeamMember.contest_id == contest.id, TeamMember.user_id == user.id))
        if other is not None and other.team_id != team.id:
            raise UserError(f"user {m!r} is already in team {db.get(Team, other.team_id).name!r} of {contest.name}")
        if other is None:
            db.add(TeamMember(contest_id=contest.id, team_id=team.id, user_id=user.id))
    first = db.scalar(select(Round).where(Round.contest_id == contest.id, Round.number == 1))
    if first is not None and first.entry == "all" and first.closed_at is None and not _entered(db, first, team):
        db.add(RoundEntry(round_id=first.id, team_id=team.id, reason="registered"))
    db.flush()
    return team


def _entered(db, rnd: Round, team: Team) -> bool:
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


def team_of(db, contest: Contest, user: User) -> Team | None:
    member = db.scalar(select(TeamMember).where(TeamMember.contest_id == contest.id, TeamMember.user_id == user.id))
    return db.get(Team, member.team_id) if member else None


def gate(h: Harness, db, user: User, task_name: str, action: str) -> Gate | None:
    """Check that USER may start ACTION ('a session', 'a submit') on a task; None for tasks in no round."""
    rounds = rounds_of_task(db, task_name)
    if not rounds:
        return None
    now = clock.now(h.settings)
    live = [r for r in rounds if status(r, now) is RoundStatus.OPEN]
    rnd = live[0] if live else rounds[-1]
    state = status(rnd, now)
    where = f"{task_name} is in round {rnd.label}"
    if state is RoundStatus.PENDING:
        when = rnd.starts_at.isoformat(timespec="seconds") if rnd.opened_at else "when the round before it closes"
        raise UserError(f"{where}, which has not opened yet (opens {when}); {action} is not possible yet")
    if state is RoundStatus.ENDED:
        raise UserError(f"{where}, which ended at {rnd.ends_at.isoformat(timespec='seconds')} UTC; "
                        f"{action} is no longer possible")
    if state is RoundStatus.CLOSED:
        raise UserError(f"{where}, which is closed; {action} is no longer possible")
    team = team_of(db, rnd.contest, user)
    if team is None:
        raise UserError(f"{where}: user {user.name!r} is in no team of contest {rnd.contest.name} "
                        f"(organizers add teams in contest.toml or with 'contest team add')")
    if not _entered(db, rnd, team):
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


def list_contests(h: Harness) -> list[dict]:
    now = clock.now(h.settings)
    with h.tx() as db:
        rows = []
        for c in db.scalars(select(Contest).order_by(Contest.id)):
            for r in c.rounds:
                entries = db.scalars(select(RoundEntry).where(RoundEntry.round_id == r.id)).all()
                rows.append({"contest": c.name, "round": r.name, "tasks": ", ".join(r.tasks),
                             "status": status(r, now).value, "start": r.starts_at.isoformat(timespec="minutes"),
                             "end": r.ends_at.isoformat(timespec="minutes"), "teams": len(entries),
                             "quota": f"{r.submit_quota}/{r.submit_period:g}s",
                             "gpu_quota": r.gpu_quota if not r.gpu_quota_teams else
                             f"{r.gpu_quota} ({', '.join(f'{t}: {n}' for t, n in r.gpu_quota_teams.items())})",
                             "qualify": r.qualify})
        return rows


def show_teams(h: Harness, contest_name: str) -> list[dict]:
    with h.tx() as db:
        contest = get_contest(db, contest_name)
        rows = []
        for t in contest.teams:
            rounds = [db.get(Round, e.round_id).name
                      for e in db.scalars(select(RoundEntry).where(RoundEntry.team_id == t.id))]
            rows.append({"team": t.name, "members": ", ".join(sorted(m.user.name for m in t.members)),
                         "rounds": ", ".join(rounds)})
        return rows


def require_organizer(h: Harness, command: str) -> None:
    permissions.require_organizer(h.settings, command)
