"""`contest simulate`: a whole contest on simulated time, with synthetic teams, through the normal code path.

Every team is a few users running real baseline code (the task's baselines: harness.sim.baselines) with
arguments drawn from the simulation's seed, and a behaviour (steady, improving, overfitting the public board,
crashing, timing out) that decides which baseline it runs, how often it submits, which faults its code carries
and how it picks its finals.  Time advances one submit period per step: in each step every team may start
sessions (GPU requests against its team quota) and submit its newest trained checkpoint (and now and then try
a second submit the quota must refuse); all runs of a step finish, for real, before the clock moves on.  At
each round's end some teams select final submissions, the organizer closes the round, qualifiers go on.
Honest submits (code without a planted fault) get the task's submit time limit; when most of them fail, the
simulation says why, counted, and fails (SimulationFailed) after writing its report.
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select

from harness.contest.definition import create as create_contest
from harness.contest.definition import parse_spec
from harness.contest.gate import get_round
from harness.core import clock
from harness.core.enums import RunStatus
from harness.core.errors import QuotaExceeded, UserError
from harness.core.names import parse_session_name
from harness.core.progress import Progress, silent
from harness.core.settings import SETTINGS_FILE, load_settings
from harness.runs.create import RunOptions
from harness.scheduler.waiting import wait_run
from harness.scoring.ladder_board import shown_clause
from harness.service import contests, sessions, submits
from harness.service.tasks import add_pack, prepare_builtin
from harness.state import Harness
from harness.store import open_store
from harness.store.models import Checkpoint, Round, RoundEntry, Session, Submission, Team
from harness.taskpacks import registry

from .baselines import (
    BASE_FAULT_RATE,
    BEHAVIOUR_WEIGHTS,
    FAULT_RATE,
    FAULTS,
    FAULTS_OF,
    Baseline,
    Behaviour,
    code_folder,
    draw_args,
    for_task,
)

ORGANIZER = "organizer"
MARKER = ".contest-sim"
PLANTED_TIMEOUT_LIMIT = 10.0  # seconds: a planted hang times out this fast, whatever the task's limit
HONEST_FAILURE_SHARE = 0.5  # more honest submits failed than this: the simulation fails


class SimulationFailed(UserError):
    """Most honest submits failed: the report is written, the reasons are counted, the exit is not zero."""


@dataclass
class SimConfig:
    contest_file: Path
    teams: int = 15
    seed: int = 7
    scale: float = 0.3
    out: Path = Path("contest-sim")
    gpus: int = 8
    workers: int = 2
    submit_time_limit: float | None = None  # None: the task's [limits] submit_seconds (else the settings')
    baselines: dict = field(default_factory=dict)  # task → [Baseline] from --baseline TASK=FOLDER
    registered: Callable[[], dict] = dict  # () → {task: folder} of the packs registered in the caller's state root


@dataclass
class SimTeam:
    name: str
    members: list[str]
    behaviour: Behaviour
    ambition: float  # chance to start another session in a step
    gpus: int
    sessions: list[str] = field(default_factory=list)
    submitted: set = field(default_factory=set)
    planted: set = field(default_factory=set)  # its sessions whose code carries a fault


@dataclass
class SimLog:
    quota_refusals: int = 0
    refused: list[str] = field(default_factory=list)  # other refusals (GPU quota, round closed), one line each
    faults: dict = field(default_factory=dict)
    steps: int = 0
    honest_runs: list = field(default_factory=list)  # run ids of submits of code without a planted fault
    honest_outcomes: dict = field(default_factory=dict)  # filled at the end: "succeeded" or a failure reason → n
    teams: list = field(default_factory=list)  # the SimTeams, for the report


def _make_teams(cfg: SimConfig, rng) -> list[SimTeam]:
    kinds, weights = list(BEHAVIOUR_WEIGHTS), np.array(list(BEHAVIOUR_WEIGHTS.values()))
    teams = []
    for i in range(cfg.teams):
        name = f"team-{i + 1:02d}"
        members = [f"{name}-{c}" for c in "ab"[: int(rng.integers(1, 3))]]
        behaviour = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        teams.append(SimTeam(name, members, behaviour, ambition=float(rng.uniform(0.2, 0.7)),
                             gpus=int(rng.choice([1, 2]))))
    return teams


def _pick(options: list[Baseline], team: SimTeam, rng) -> Baseline:
    if team.behaviour is Behaviour.IMPROVING:  # from the last listed (weakest) up to the first (strongest)
        return options[max(0, len(options) - 1 - len(team.sessions))]
    weights = np.array([b.weight for b in options])
    return options[int(rng.choice(len(options), p=weights / weights.sum()))]


def _fault(team: SimTeam, rng) -> str | None:
    if rng.random() >= FAULT_RATE.get(team.behaviour, BASE_FAULT_RATE):
        return None
    return str(rng.choice(FAULTS_OF.get(team.behaviour, FAULTS)))


class Simulation:
    def __init__(self, cfg: SimConfig, echo=print, progress: Progress = silent):
        self.progress = progress
        self.cfg, self.echo = cfg, echo
        self.rng = np.random.default_rng(cfg.seed)
        self.log = SimLog()
        root = cfg.out / "state"
        if cfg.out.exists():
            if any(cfg.out.iterdir()) and not (cfg.out / MARKER).exists():
                raise UserError(f"--out: {cfg.out} exists and is not a contest simulation folder")
            shutil.rmtree(cfg.out)
        root.mkdir(parents=True)
        (cfg.out / MARKER).write_text("made by harness contest simulate\n")
        (root / SETTINGS_FILE).write_text(
            f'organizers = ["{ORGANIZER}"]\ngpus = {cfg.gpus}\n[scheduler]\nmax_concurrent_runs = {cfg.workers}\n')
        self.root = root
        self.db_url = f"sqlite:///{root / 'leaderboard.db'}"  # its own store, whatever HARNESS_DB says
        self.store = open_store(load_settings(root=root, db=self.db_url, user=ORGANIZER).db_url)
        self.harnesses: dict[str, Harness] = {}
        # each run gets its share of the cores: thread pools (OpenMP, BLAS) sized to the machine, times the
        # runs at once, spin and thrash (seen: a 2 s GBM fit taking minutes beside another one on 2 cores)
        self.cpus = float(max(1, (os.cpu_count() or 1) // max(1, cfg.workers)))
        self._task_cpus: dict[str, float | None] = {}
        self.gpu_cap = cfg.gpus  # the most GPUs a team's session asks for: the inventory, or the round's GPU quota

    def as_user(self, user: str) -> Harness:
        if user not in self.harnesses:
            h = Harness(load_settings(root=self.root, db=self.db_url, user=user), store=self.store)  # one pool
            self.harnesses[user] = h
        return self.harnesses[user]

    # -- setup -------------------------------------------------------------------------------------------------
    def setup(self) -> tuple[dict, list[SimTeam]]:
        spec = parse_spec(self.cfg.contest_file)
        teams = _make_teams(self.cfg, self.rng)
        self.log.teams = teams
        spec["teams"] = {t.name: t.members for t in teams}
        for r in spec["rounds"]:
            r["gpu_quota_teams"] = {}  # the file's teams are replaced, and their own quotas with them
            if r["split_seed"] is None:  # a rehearsal is reproducible: its draw is fixed, not secret
                r["split_seed"] = self.cfg.seed
        org = self.as_user(ORGANIZER)
        self.baselines: dict[str, list[Baseline]] = {}
        for task in dict.fromkeys(t for r in spec["rounds"] for t in r["tasks"]):
            self.baselines[task] = self.prepare(org, task)
        clock.set_clock(org.settings, spec["rounds"][0]["start"])
        create_contest(org, self.cfg.contest_file, spec)
        return spec, teams

    def prepare(self, org: Harness, task: str) -> list[Baseline]:
        """TASK in the simulation's root: a built-in or installed task is built at --scale; a pack registered in
        the caller's state root is registered here too, where it is. Returns its baselines."""
        where = str(self.cfg.contest_file)
        sources = registry.known_sources(org.settings)
        if task in sources:
            self.echo(f"preparing {task} (scale {self.cfg.scale})")
            prepare_builtin(org, task, scale=self.cfg.scale, seed=self.cfg.seed)
            folder = registry.source_folder(org.settings, task)
        elif task in (registered := self.cfg.registered()):
            folder = Path(registered[task])
            if not folder.is_dir():
                raise UserError(f"{where}: task {task!r} is registered at {folder}, which is not a folder here")
            self.echo(f"registering {task} ({folder})")
            add_pack(org, folder)
        else:
            raise UserError(f"{where}: task {task!r} is neither built in nor registered in this state root "
                            f"('nsml dataset add FOLDER' registers a pack)")
        manifest = registry.Manifest.read(folder)
        return for_task(task, self.cfg.baselines, manifest.extra, folder, str(folder / registry.MANIFEST))

    def _code(self, task: str, team: SimTeam) -> tuple[Path, str, str | None]:
        baseline = _pick(self.baselines[task], team, self.rng)
        args = draw_args(baseline.args, self.rng, f"{baseline.folder}: args")
        fault = _fault(team, self.rng)
        dest = self.cfg.out / "code" / f"{team.name}-{len(team.sessions) + 1}"
        return code_folder(baseline, dest, fault), args, fault

    def _cpus_for(self, h, task: str) -> float:
        """The simulation's share of the cores, within the task's [limits] cpus when it declares one."""
        if task not in self._task_cpus:
            with h.tx() as db:
                self._task_cpus[task] = h.manifest(h.task(db, task)).cpus
        declared = self._task_cpus[task]
        return min(self.cpus, declared) if declared else self.cpus

    # -- one step of simulated time ----------------------------------------------------------------------------
    def step(self, tasks: list[str], team: SimTeam, pending: list[int]) -> None:
        rng = self.rng
        user = str(rng.choice(team.members))
        h = self.as_user(user)
        starts = 1 if not team.sessions else int(rng.random() < team.ambition) + int(rng.random() < 0.15)
        for _ in range(starts):
            task = str(rng.choice(tasks))
            folder, args, fault = self._code(task, team)
            try:
                name = sessions.start_session(h, task, str(folder), args=args,
                                              opts=RunOptions(gpus=min(team.gpus, self.gpu_cap),
                                                              cpus=self._cpus_for(h, task)))
            except UserError as exc:
                self.log.refused.append(f"{team.name}: {exc}")
                continue
            team.sessions.append(name)
            if fault:  # counted where it is planted: a refused session plants nothing
                team.planted.add(name)
                self.log.faults[fault] = self.log.faults.get(fault, 0) + 1
            with h.tx() as db:
                pending.append(h.session(db, name).run_id)
        ready = [s for s in reversed(team.sessions) if s not in team.submitted and self._trained(s)]
        eager = team.behaviour is Behaviour.OVERFITTING  # it submits all it may, every period
        extra = len(ready) >= 2 and (eager or rng.random() < 0.2)  # now and then a second submit in one period
        for name in ready[:2 if extra else 1]:
            h = self.as_user(parse_session_name(name)[0])  # a session's owner submits it
            honest = name not in team.planted
            limit = self.cfg.submit_time_limit if honest else min(self.cfg.submit_time_limit or PLANTED_TIMEOUT_LIMIT,
                                                                  PLANTED_TIMEOUT_LIMIT)
            try:
                _, run_id = submits.start_submit(h, name, self._newest_checkpoint(name), time_limit=limit)
            except QuotaExceeded:
                self.log.quota_refusals += 1
                continue
            except UserError as exc:
                self.log.refused.append(f"{team.name}: {exc}")
                continue
            team.submitted.add(name)
            pending.append(run_id)
            if honest:
                self.log.honest_runs.append(run_id)

    def _newest_checkpoint(self, name: str) -> str:
        h = self.as_user(ORGANIZER)
        with h.tx() as db:
            newest = db.scalar(select(Checkpoint.name).join(Session, Checkpoint.session_id == Session.id)
                               .where(Session.name == name).order_by(Checkpoint.id.desc()).limit(1))
        return newest or "0"

    def _trained(self, name: str) -> bool:
        info = sessions.session_info(self.as_user(ORGANIZER), name)
        return info["status"] == RunStatus.SUCCEEDED.value

    def select_finals(self, rnd_id: int, teams: list[SimTeam]) -> None:
        """Some teams pick final submissions by hand (not always their best public one); teams overfitting the
        public board pick their best public ones."""
        for team in teams:
            eager = team.behaviour is Behaviour.OVERFITTING
            if not eager and self.rng.random() >= 0.35:
                continue
            h = self.as_user(team.members[0])
            by_task: dict = {}
            with h.tx() as db:
                for sub in db.scalars(select(Submission).join(Team, Submission.team_id == Team.id).where(
                        Submission.round_id == rnd_id, Team.name == team.name,
                        Submission.status == RunStatus.SUCCEEDED,  # what its board showed it (a Ladder hides some)
                        shown_clause(db.get(Round, rnd_id))).order_by(Submission.id)):
                    by_task.setdefault(sub.task_id, (sub.task.direction, []))[1].append((sub.id, sub.score))
            for direction, rows in by_task.values():
                if eager:
                    picks = [i for i, _ in sorted(rows, key=lambda r: direction.sort_key(r[1]))[:2]]
                elif len(rows) >= 2:
                    ids = [i for i, _ in rows]
                    picks = self.rng.choice(ids, size=min(2, len(ids) - 1), replace=False).tolist()
                else:
                    continue
                contests.select_submissions(h, sorted(int(i) for i in picks))

    def run(self) -> Path:
        spec, teams = self.setup()
        by_name = {t.name: t for t in teams}
        org = self.as_user(ORGANIZER)
        with org.tx() as db:  # every round's steps, so that progress counts the whole simulation
            periods = [timedelta(seconds=get_round(db, f"{spec['name']}/{r['name']}").submit_period)
                       for r in spec["rounds"]]
        steps, step = sum(max(1, math.ceil((r["end"] - r["start"]) / p)) for r, p in zip(spec["rounds"], periods)), 0
        for r in spec["rounds"]:
            with org.tx() as db:
                rnd = get_round(db, f"{spec['name']}/{r['name']}")
                rnd_id, period, tasks = rnd.id, timedelta(seconds=rnd.submit_period), list(rnd.tasks)
                entered = [db.get(Team, e.team_id).name
                           for e in db.scalars(select(RoundEntry).where(RoundEntry.round_id == rnd.id))]
                quota = self.cfg.gpus if rnd.gpu_quota is None else rnd.gpu_quota
                self.gpu_cap = min(self.cfg.gpus, quota)  # what a team asks for stays within its quota
            now = r["start"]
            for team in teams:  # a new round, new tasks: last round's sessions are not submitted here
                team.sessions, team.submitted = [], set()
            self.echo(f"{r['name']}: {len(entered)} teams, tasks {', '.join(tasks)}")
            while now < r["end"]:
                clock.set_clock(org.settings, now)
                pending: list[int] = []
                for name in self.rng.permutation(sorted(entered)):
                    self.step(tasks, by_name[str(name)], pending)
                for run_id in pending:  # the step's runs finish for real before simulated time moves on
                    wait_run(org, run_id)
                self.log.steps += 1
                step += 1
                self.progress(step, steps, f"{r['name']} {now.isoformat(timespec='minutes')}")
                self.echo(f"  {now.isoformat(timespec='minutes')}: {len(pending)} runs")
                now += period
            clock.set_clock(org.settings, r["end"] - timedelta(seconds=1))
            self.select_finals(rnd_id, [by_name[n] for n in entered])
            clock.set_clock(org.settings, r["end"])
            result = contests.close(org, f"{spec['name']}/{r['name']}")
            self.echo(f"{r['name']} closed: " + (f"{len(result['qualifiers'])} qualified for {result['next_round']}"
                                                 if result["next_round"] else "final boards revealed"))
        self.log.honest_outcomes = self._honest_outcomes(org)
        from .report import write_report
        written = write_report(org, spec["name"], self.cfg, self.log)
        outcomes = self.log.honest_outcomes
        total, failed = sum(outcomes.values()), sum(n for k, n in outcomes.items() if k != "succeeded")
        if not total or failed > HONEST_FAILURE_SHARE * total:
            reasons = ", ".join(f"{why}: {n}" for why, n in sorted(outcomes.items()) if why != "succeeded")
            if not total and self.log.refused:  # nothing ran: the refusals say why (the first one, in full)
                reasons = f"none were made; {len(self.log.refused)} refusals, e.g. {self.log.refused[0]}"
            raise SimulationFailed(f"{failed} of {total} honest submits failed ({reasons or 'none were made'}); "
                                   f"the boards say little (report: {written})")
        return written

    def _honest_outcomes(self, org: Harness) -> dict[str, int]:
        """How the submits of code without a planted fault ended: "succeeded", or their failure reason → count."""
        counts: dict[str, int] = {}
        with org.tx() as db:
            for sub in db.scalars(select(Submission).where(Submission.run_id.in_(self.log.honest_runs))):
                key = "succeeded" if sub.status is RunStatus.SUCCEEDED else (
                    sub.reason.value if sub.reason else sub.status.value)
                counts[key] = counts.get(key, 0) + 1
        return counts


def simulate(cfg: SimConfig, echo=print, progress: Progress = silent) -> Path:
    sim = Simulation(cfg, echo, progress)
    try:
        return sim.run()
    finally:
        sim.store.close()
