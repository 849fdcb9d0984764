"""Contests: a contest.toml's rounds and teams (parsed, registered, listed).

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
public_board = "plain"        # or "ladder": a shown score moves only when a submit beats it beyond noise
split_seed = 7                # the public half's draw (absent: a secret random one, fixed at create)
select = 2                    # submissions a team may select for the private board
qualify = { top = 10 }        # per task; or { threshold = 0.6 } on the private score
reveal = "open"               # participants learn its tasks when it opens; "always": listed before
```

A task in no round is outside every contest: sessions and submits go on per user, as before.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from harness.core import clock, schema
from harness.core.enums import GpuPolicy, PublicBoard, Reveal
from harness.core.errors import UserError
from harness.core.names import check_name
from harness.core.settings import read_toml
from harness.state import Harness
from harness.store.models import Contest, Round, RoundEntry, Team, TeamMember
from harness.taskpacks.registry import Manifest

from .gate import entered, get_contest, reveals, rounds_of_task, status


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
        board = r.get("public_board", "plain")
        if board not in {b.value for b in PublicBoard}:
            raise UserError(f"{where}.public_board: expected 'plain' or 'ladder', got {board!r}")
        reveal = r.get("reveal", Reveal.OPEN.value)
        if reveal not in {v.value for v in Reveal}:
            raise UserError(f"{where}.reveal: expected 'open' or 'always', got {reveal!r}")
        parsed.append({
            "name": rname, "tasks": list(tasks), "start": start, "end": end,
            "submit_quota": _number(submit.get("quota", 1), f"{where}.submit.quota", int, 0),
            "submit_period": _number(submit.get("period_seconds", 3600), f"{where}.submit.period_seconds", float, 1),
            "gpu_quota": None if r.get("gpu_quota") is None else _number(r["gpu_quota"], f"{where}.gpu_quota", int),
            "gpu_quota_teams": _team_quotas(r.get("gpu_quota_teams", {}), teams, f"{where}.gpu_quota_teams"),
            "gpu_policy": GpuPolicy(policy),
            "public_fraction": _number(r.get("public_fraction", 0.3), f"{where}.public_fraction", float, 0.01, 0.99),
            "split_seed": None if r.get("split_seed") is None else _number(r["split_seed"], f"{where}.split_seed", int),
            "selection_limit": _number(r.get("select", 2), f"{where}.select", int, 1),
            "qualify": qualify, "entry": entry, "public_board": PublicBoard(board), "reveal": Reveal(reveal)})
    return {"name": name, "title": data.get("title", ""), "teams": teams, "rounds": parsed}


def create(h: Harness, path: Path, spec: dict | None = None) -> str:
    """Register a contest from its file: rounds, teams; the first round opens (at its start time)."""
    spec = spec or parse_spec(path)
    for r in spec["rounds"]:  # no split_seed: a secret draw, so that nobody can tell which test items are public
        if r["split_seed"] is None:
            r["split_seed"] = secrets.randbelow(2 ** 31)
    with h.tx() as db:
        if db.scalar(select(Contest.id).where(Contest.name == spec["name"])) is not None:
            raise UserError(f"{path}: name: contest {spec['name']!r} already exists")
        for r in spec["rounds"]:
            for t in r["tasks"]:
                task = h.task(db, t)  # each task must be prepared: NotFound says how
                if r["public_board"] is PublicBoard.LADDER:
                    check_ladder(f"{path}: rounds.{r['name']}.public_board", r["public_fraction"],
                                 r["split_seed"], task.name, task.metric, Path(task.path))
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
                         public_board=r["public_board"], reveal=r["reveal"],
                         opened_at=clock.now(h.settings) if number == 1 else None, results={}))
        db.flush()
        for team, members in spec["teams"].items():
            add_team(h, db, contest, team, members)
        return contest.name


def check_ladder(where: str, public_fraction: float, split_seed, name: str, metric_name: str, path: Path) -> None:
    """The Ladder compares per-example losses: the task's metric must be a mean of per-example values from the
    metric library, its task.toml (in PATH) must say how to read its files ([split]), and the public half must
    hold at least two test examples. At `contest create`, and when a Ladder round's task pack is replaced."""
    from harness.scoring.metric_library import metric
    from harness.scoring.splits import SplitFormat, public_indices, read_records
    from harness.taskpacks import layout
    extra = Manifest.read(path).extra
    try:
        m = metric(metric_name)
    except UserError:  # an evaluator of its own: the Ladder reads the per_example.txt it promises to write
        if "per_example" not in (extra.get("evaluator") or {}):
            raise UserError(f"{where}: 'ladder' needs per-example values; task {name!r} scores {metric_name!r} "
                            "with its own evaluator, whose task.toml does not declare [evaluator] per_example "
                            "(\"mean\" once its evaluation.py writes per_example.txt)") from None
        m = None
    if m is not None and not m.per_example:
        raise UserError(f"{where}: 'ladder' needs per-example losses; task {name!r} scores {m.name}, "
                        "which needs the whole sample")
    if "split" not in extra:
        raise UserError(f"{where}: 'ladder' needs task {name!r}'s task.toml to have a [split] table")
    fmt = SplitFormat.from_manifest(extra, f"{name}/task.toml")
    try:
        n = len(read_records(layout.label_path(path, dry_run=False), fmt.label)[0])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: task {name!r}'s test labels cannot be read by its [split]: {exc}") from None
    public = len(public_indices(n, public_fraction, split_seed, name)) if n >= 2 else n
    if public < 2:
        raise UserError(f"{where}: 'ladder' needs at least 2 public test examples; public_fraction "
                        f"{public_fraction:g} of {name!r}'s {n} gives {public}")


def check_ladder_rounds(h: Harness, name: str, metric_name: str, path: Path, where: str | None = None) -> None:
    """A pack (in PATH; WHERE names it, default PATH) about to replace task NAME: every Ladder round holding the
    task (open or closed: a rescore replays it) must still find what the Ladder needs in it."""
    with h.tx() as db:
        ladders = [(r.label, r.public_fraction, r.split_seed) for r in rounds_of_task(db, name)
                   if r.public_board is PublicBoard.LADDER]
    for label, fraction, seed in ladders:
        check_ladder(f"{where or path}: round {label} has a Ladder public board", fraction, seed, name,
                     metric_name, path)


def _jsonable(spec: dict) -> dict:
    rounds = [{**r, "start": r["start"].isoformat(), "end": r["end"].isoformat(), "gpu_policy": r["gpu_policy"].value,
               "public_board": r["public_board"].value, "reveal": r["reveal"].value}
              for r in spec["rounds"]]
    return {**spec, "rounds": rounds}


def add_team(h: Harness, db, contest: Contest, name: str, members: list[str]) -> Team:
    """Add a team (or members to it); the team enters the contest's first round if that admits everyone."""
    check_name(name, f"team {name!r}")
    for m in members:
        check_name(m, f"team {name!r}: member")
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
    if first is not None and first.entry == "all" and first.closed_at is None and not entered(db, first, team):
        db.add(RoundEntry(round_id=first.id, team_id=team.id, reason="registered"))
    db.flush()
    return team


def list_contests(h: Harness, shown_to_all: bool) -> list[dict]:
    """Each round of each contest; its tasks named only where it reveals them (gate.reveals) or SHOWN_TO_ALL."""
    now = clock.now(h.settings)
    with h.tx() as db:
        rows = []
        for c in db.scalars(select(Contest).order_by(Contest.id)):
            for r in c.rounds:
                entries = db.scalars(select(RoundEntry).where(RoundEntry.round_id == r.id)).all()
                told = shown_to_all or reveals(r, now)
                rows.append({"contest": c.name, "round": r.name, "revealed": told,
                             "tasks": ", ".join(r.tasks) if told else "(told when the round opens)",
                             "status": status(r, now).value, "start": r.starts_at.isoformat(timespec="minutes"),
                             "end": r.ends_at.isoformat(timespec="minutes"), "teams": len(entries),
                             "quota": f"{r.submit_quota}/{r.submit_period:g}s",
                             "gpu_quota": r.gpu_quota if not r.gpu_quota_teams else
                             f"{r.gpu_quota} ({', '.join(f'{t}: {n}' for t, n in r.gpu_quota_teams.items())})",
                             "qualify": r.qualify,
                             "qualifiers": sorted((r.results or {}).get("qualifiers", {})) if r.closed else None})
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
