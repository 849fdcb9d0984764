"""`contest simulate`: a whole contest on simulated time, with synthetic teams, through the normal code path.

Every team is a few users running real baseline code (`submissions/`) with hyperparameters and seeds drawn from
the simulation's seed; some sessions carry a fault (training crashes, infer crashes, infer hangs past its
limit, infer returns too few predictions).  Time advances one submit period per step: in each step every team
may start sessions (GPU requests against its team quota) and submit its newest trained checkpoint (and now and
then try a second submit the quota must refuse); all runs of a step finish, for real, before the clock moves on.
At each round's end some teams select final submissions, the organizer closes the round, qualifiers go on.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select

from harness import resources
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
from harness.service import contests, sessions, submits
from harness.service.tasks import prepare_builtin
from harness.state import Harness
from harness.store import open_store
from harness.store.models import RoundEntry, Submission, Team

SUBMISSIONS = resources.SUBMISSIONS
ORGANIZER = "organizer"
MARKER = ".contest-sim"


def _ngram(r) -> str:
    lo = int(r.integers(1, 3))
    return (f"--ngram_min {lo} --ngram_max {lo + int(r.integers(1, 4))} --C {10 ** r.uniform(-1.5, 1.5):.3g} "
            f"--train_fraction {r.uniform(0.2, 1.0):.2f} --hash_bits {int(r.integers(14, 19))} "
            f"--seed {int(r.integers(1000))}")


def _gbm(r) -> str:
    return f"--max_iter {int(r.integers(10, 150))} --lr {r.uniform(0.02, 0.3):.3f} --seed {int(r.integers(1000))}"


# task → [(baseline folder, weight, argument sampler)]
CATALOG = {
    "garbage-docs": [("garbage_docs_ngram", 0.9, _ngram), ("garbage_docs_majority", 0.1, lambda r: "")],
    "bus-eta": [("bus_eta_gbm", 0.8, _gbm), ("bus_eta_segment_mean", 0.2, lambda r: "")],
    "playlist": [("playlist_item_knn", 0.7, lambda r: ""), ("playlist_popularity", 0.3, lambda r: "")],
}
FAULTS = ("train_crash", "infer_crash", "infer_timeout", "infer_invalid")

FAULT_WRAPPER = '''"""A simulated participant fault ({fault}) around a baseline's main.py (written by contest simulate)."""
import runpy
import sys
import time

import nsml

FAULT = "{fault}"
testing = "--mode" in sys.argv and sys.argv[sys.argv.index("--mode") + 1] == "test"
if FAULT == "train_crash" and not testing:
    raise RuntimeError("simulated bug in the training code")
if testing and FAULT == "infer_crash":
    raise RuntimeError("simulated bug in infer")
if testing and FAULT == "infer_timeout":
    time.sleep(10 ** 6)
if testing and FAULT == "infer_invalid":
    real_bind = nsml.bind

    def bind(save=None, load=None, infer=None, **kwargs):
        def short(*args, **kw):
            return list(infer(*args, **kw))[:1]  # one prediction for the whole test set
        return real_bind(save=save, load=load, infer=short, **kwargs)
    nsml.bind = bind
runpy.run_path("participant_main.py", run_name="__main__")
'''


@dataclass
class SimConfig:
    contest_file: Path
    teams: int = 15
    seed: int = 7
    scale: float = 0.3
    out: Path = Path("contest-sim")
    gpus: int = 8
    workers: int = 2
    submit_time_limit: float = 15.0


@dataclass
class SimTeam:
    name: str
    members: list[str]
    fault_rate: float
    ambition: float  # chance to start another session in a step
    gpus: int
    sessions: list[str] = field(default_factory=list)
    submitted: set = field(default_factory=set)


@dataclass
class SimLog:
    quota_refusals: int = 0
    refused: list[str] = field(default_factory=list)  # other refusals (GPU quota, round closed), one line each
    faults: dict = field(default_factory=dict)
    steps: int = 0


def _make_teams(cfg: SimConfig, rng) -> list[SimTeam]:
    teams = []
    for i in range(cfg.teams):
        name = f"team-{i + 1:02d}"
        members = [f"{name}-{c}" for c in "ab"[: int(rng.integers(1, 3))]]
        flaky = rng.random() < 0.25
        teams.append(SimTeam(name, members, fault_rate=0.45 if flaky else 0.05, ambition=float(rng.uniform(0.2, 0.7)),
                             gpus=int(rng.choice([1, 2]))))
    return teams


def _code_folder(cfg: SimConfig, task: str, team: SimTeam, rng, log: SimLog) -> tuple[Path, str]:
    options = CATALOG[task]  # setup() checked every task of the contest against the catalog
    weights = np.array([w for _, w, _ in options])
    folder_name, _, sampler = options[int(rng.choice(len(options), p=weights / weights.sum()))]
    args = sampler(rng)
    fault = str(rng.choice(FAULTS)) if rng.random() < team.fault_rate else None
    dest = cfg.out / "code" / f"{team.name}-{len(team.sessions) + 1}"
    shutil.copytree(SUBMISSIONS / folder_name, dest, dirs_exist_ok=True)
    if fault:
        (dest / "main.py").rename(dest / "participant_main.py")
        (dest / "main.py").write_text(FAULT_WRAPPER.format(fault=fault))
        log.faults[fault] = log.faults.get(fault, 0) + 1
    return dest, args


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

    def as_user(self, user: str) -> Harness:
        if user not in self.harnesses:
            h = Harness(load_settings(root=self.root, db=self.db_url, user=user), store=self.store)  # one pool
            self.harnesses[user] = h
        return self.harnesses[user]

    # -- setup -------------------------------------------------------------------------------------------------
    def setup(self) -> tuple[dict, list[SimTeam]]:
        spec = parse_spec(self.cfg.contest_file)
        teams = _make_teams(self.cfg, self.rng)
        spec["teams"] = {t.name: t.members for t in teams}
        for r in spec["rounds"]:
            r["gpu_quota_teams"] = {}  # the file's teams are replaced, and their own quotas with them
        org = self.as_user(ORGANIZER)
        for task in dict.fromkeys(t for r in spec["rounds"] for t in r["tasks"]):
            if task not in CATALOG:
                raise UserError(f"{self.cfg.contest_file}: task {task!r} has no simulated baseline "
                                f"(the simulator knows {', '.join(sorted(CATALOG))})")
            self.echo(f"preparing {task} (scale {self.cfg.scale})")
            prepare_builtin(org, task, scale=self.cfg.scale, seed=self.cfg.seed)
        clock.set_clock(org.settings, spec["rounds"][0]["start"])
        create_contest(org, self.cfg.contest_file, spec)
        return spec, teams

    # -- one step of simulated time ----------------------------------------------------------------------------
    def step(self, tasks: list[str], team: SimTeam, pending: list[int]) -> None:
        rng = self.rng
        user = str(rng.choice(team.members))
        h = self.as_user(user)
        starts = 1 if not team.sessions else int(rng.random() < team.ambition) + int(rng.random() < 0.15)
        for _ in range(starts):
            task = str(rng.choice(tasks))
            folder, args = _code_folder(self.cfg, task, team, rng, self.log)
            try:
                name = sessions.start_session(h, task, str(folder), args=args,
                                              opts=RunOptions(gpus=team.gpus, cpus=self.cpus))
            except UserError as exc:
                self.log.refused.append(f"{team.name}: {exc}")
                continue
            team.sessions.append(name)
            with h.tx() as db:
                pending.append(h.session(db, name).run_id)
        ready = [s for s in reversed(team.sessions) if s not in team.submitted and self._trained(s)]
        extra = len(ready) >= 2 and rng.random() < 0.2  # now and then a second submit in the same period
        for name in ready[:2 if extra else 1]:
            h = self.as_user(parse_session_name(name)[0])  # a session's owner submits it
            try:
                _, run_id = submits.start_submit(h, name, "0", time_limit=self.cfg.submit_time_limit)
            except QuotaExceeded:
                self.log.quota_refusals += 1
                continue
            except UserError as exc:
                self.log.refused.append(f"{team.name}: {exc}")
                continue
            team.submitted.add(name)
            pending.append(run_id)

    def _trained(self, name: str) -> bool:
        info = sessions.session_info(self.as_user(ORGANIZER), name)
        return info["status"] == RunStatus.SUCCEEDED.value

    def select_finals(self, rnd_id: int, teams: list[SimTeam]) -> None:
        """Some teams pick final submissions by hand (not always their best public one)."""
        for team in teams:
            if self.rng.random() >= 0.35:
                continue
            h = self.as_user(team.members[0])
            with h.tx() as db:
                ids = list(db.scalars(select(Submission.id).join(Team, Submission.team_id == Team.id).where(
                    Submission.round_id == rnd_id, Team.name == team.name,
                    Submission.status == RunStatus.SUCCEEDED)))
            if len(ids) >= 2:
                picks = sorted(self.rng.choice(ids, size=min(2, len(ids) - 1), replace=False).tolist())
                contests.select_submissions(h, [int(i) for i in picks])

    def run(self) -> Path:
        spec, teams = self.setup()
        by_name = {t.name: t for t in teams}
        org = self.as_user(ORGANIZER)
        for r in spec["rounds"]:
            with org.tx() as db:
                rnd = get_round(db, f"{spec['name']}/{r['name']}")
                rnd_id, period, tasks = rnd.id, timedelta(seconds=rnd.submit_period), list(rnd.tasks)
                entered = [db.get(Team, e.team_id).name
                           for e in db.scalars(select(RoundEntry).where(RoundEntry.round_id == rnd.id))]
            now = r["start"]
            for team in teams:  # a new round, new tasks: last round's sessions are not submitted here
                team.sessions, team.submitted = [], set()
            self.echo(f"{r['name']}: {len(entered)} teams, tasks {', '.join(tasks)}")
            steps, step = max(1, math.ceil((r["end"] - now) / period)), 0
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
        from .report import write_report
        return write_report(org, spec["name"], self.cfg, self.log)


def simulate(cfg: SimConfig, echo=print, progress: Progress = silent) -> Path:
    sim = Simulation(cfg, echo, progress)
    try:
        return sim.run()
    finally:
        sim.store.close()
