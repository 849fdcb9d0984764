"""A new Run: the options of `run`/`fork`/`submit` (-g, -c, --memory, --shm-size, --time-limit, --runtime,
--gpu-model, --esm) checked and turned into a queued Run, the per-user queue limit, the per-user disk
limit a new session must be under, and the one check a queued run passes again as it launches."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from harness.core import doorbell
from harness.core.enums import RunKind, RunStatus
from harness.core.errors import UserError
from harness.core.settings import Settings
from harness.core.sizes import machine_memory, parse_size
from harness.core.tree_usage import usage
from harness.runtime import env_store, gpus
from harness.runtime.base import RUN_GRADED
from harness.runtime.disk_limits import MAX_ENTRIES, SCAN_SECONDS
from harness.store import read_sql
from harness.store.models import Run, Session, Submission, User
from harness.store.quick import sa_rows


@dataclass
class RunOptions:
    gpus: int = 0
    cpus: float | None = None
    memory: str | None = None
    shm_size: str | None = None
    time_limit: float | None = None
    runtime: str = "process"
    gpu_model: str | None = None  # allocate only devices of this model (NSML's --gpu-model)
    esm: str | None = None  # the participant's registration number (AI Rush's --esm), recorded
    datasets: tuple[str, ...] = ()  # more tasks whose training data the session sees (NSML's `-d a,b`)


def check_queue_limit(settings: Settings, db, user_id: int) -> None:
    """A user may have at most `limits.queued_per_user` runs (sessions and submits) waiting."""
    queued = (db.scalar(select(func.count(Run.id)).join(Session, Session.run_id == Run.id)
                        .where(Run.status == RunStatus.QUEUED, Session.user_id == user_id))
              + db.scalar(select(func.count(Run.id)).join(Submission, Submission.run_id == Run.id)
                          .where(Run.status == RunStatus.QUEUED, Submission.user_id == user_id)))
    if queued >= settings.max_queued_per_user:
        raise UserError(f"queue limit reached: {queued} of your runs are waiting "
                        f"(limits.queued_per_user = {settings.max_queued_per_user}); wait or stop some")


_REFUSED: dict[tuple[str, str], tuple[float, str]] = {}  # (sessions folder, user) → (until when, the refusal)
REFUSAL_SECONDS = 10.0  # a refusal stands this long unless the user removes something (storage_changed)
_ADMITTED: dict[tuple[str, str], float] = {}  # (sessions folder, user) → until when a measure under the limit stands
ADMITTED_SECONDS = 2.0  # (unless the user makes a session meanwhile: storage_changed)


def kept_bytes(db, user: str) -> int:
    """Bytes the runs of USER's sessions keep after they end, until `nsml rm` removes the session: each one's log
    (up to limits.log_bytes) and, for its dry-run submits, their graded prediction (up to
    limits.prediction_bytes). Counted with the sessions: a user who runs, dry-runs and removes over and over
    would otherwise fill the disk with files nobody is charged for. (A real submit's are bounded by its quota.)
    A stat or two per run."""
    training = select(Run).join(Session, Session.run_id == Run.id).join(User).where(User.name == user)
    dry = (select(Run).join(Submission, Submission.run_id == Run.id).join(User)
           .where(User.name == user, Submission.dry_run.is_(True), Submission.session_id.is_not(None)))
    held = 0
    for run in [*db.scalars(training), *db.scalars(dry)]:
        for kept in (Path(run.log_path), Path(run.run_dir) / RUN_GRADED) if run.run_dir else ():
            used = usage(kept, MAX_ENTRIES, SCAN_SECONDS)
            held += max(used.size, used.allocated)
    return held


def check_storage(settings: Settings, user: str, store) -> None:
    """A user whose sessions (code copies, checkpoints, what their runs keep: kept_bytes) and environments (of their
    requirements: runtime.env_store) hold `limits.user_storage_bytes` on disk starts no new session until some are
    removed; their least recently used environments go first, by themselves (env_store.evict). Sessions are
    measured as the disk watch measures (runtime.disk_limits), which holds the user's running sessions to the
    same limit. A refusal is remembered for REFUSAL_SECONDS (a walk of 200,000 entries is a second of CPU: not one
    per request of a user who keeps asking), an admission for ADMITTED_SECONDS (a flood of uploads that will be
    refused once read, each admitted first, walks once), either until `storage_changed`."""
    if settings.user_storage_bytes is None:
        return
    key = (str(settings.sessions_dir), user)
    until, said = _REFUSED.get(key, (0.0, ""))
    if time.monotonic() < until:
        raise UserError(said)
    if time.monotonic() < _ADMITTED.get(key, 0.0):
        return
    with store.tx() as db:
        logs = kept_bytes(db, user)
    used = usage(settings.sessions_dir / user, MAX_ENTRIES, SCAN_SECONDS)
    held, limit = max(used.size, used.allocated) + logs, settings.user_storage_bytes
    envs = sum(size for _, _, size in env_store.charged(settings.envs_dir, user))
    if envs and held < limit <= held + envs:  # (not when the sessions alone are over it: that would free nothing)
        envs -= env_store.evict(settings.envs_dir, user, held + envs - limit + 1)
    if held + envs < limit and (used.complete or used.retry):  # (retry: a lower bound, under it)
        _ADMITTED[key] = time.monotonic() + ADMITTED_SECONDS
        return
    said = f"{held} bytes" if held + envs >= limit else f"more than can be measured ({used.why})"
    envs_said = f" and the environments of your requirements that runs use now {envs} bytes" * bool(envs)
    said = (f"your sessions (with their runs' logs) hold {said} on disk{envs_said}, at or over "
            f"limits.user_storage_bytes = {limit}: remove sessions (nsml rm) or checkpoints (nsml model rm) first")
    _REFUSED[key] = (time.monotonic() + REFUSAL_SECONDS, said)
    raise UserError(said)


def storage_changed(settings: Settings, user: str) -> None:
    """USER removed sessions or checkpoints, or made a session: what was remembered of theirs is measured again."""
    _REFUSED.pop((str(settings.sessions_dir), user), None)
    _ADMITTED.pop((str(settings.sessions_dir), user), None)


def queue_run(settings: Settings, db, user_id: int, run: Run) -> Run:
    """The one way a run is queued (a session's or a submit's): the user's queue limit, the row, and its run
    folder ready for waiters. The caller wakes the scheduler once its transaction has committed
    (scheduler.lease.wake)."""
    check_queue_limit(settings, db, user_id)
    db.add(run)
    db.flush()
    run.run_dir = str(settings.runs_dir / str(run.id))
    doorbell.prepare_run_dir(run.run_dir)
    return run


def check_esm(esm: str | None) -> str | None:
    """--esm: a registration number, recorded as given (bounded: it is stored and shown)."""
    if esm is not None and (len(esm) > 64 or not esm.isprintable() or not esm.strip()):
        raise UserError(f"--esm: {esm[:20]!r}... is not a registration number (1-64 printable characters)")
    return esm


def time_limit(asked: float | None, allowed: float | None) -> float | None:
    """The run's wall-clock limit: the task's (or the harness's default), which a participant may lower with
    --time-limit but never raise."""
    if asked is None:
        return allowed
    if not asked > 0 or asked != asked:
        raise UserError(f"--time-limit: must be a positive number of seconds, got {asked}")
    if allowed is not None and asked > allowed:
        raise UserError(f"--time-limit: {asked:g} s is over this task's limit of {allowed:g} s "
                        f"(a run may lower its limit, never raise it)")
    return asked


DEFAULT_CPUS = 1.0  # a run's CPU cores when neither -c nor the task's [limits] cpus says


def run_memory(settings: Settings, asked: str | None, allowed: int | None) -> int | None:
    """A run's memory limit: ALLOWED (its task's `[limits] memory`), else `limits.run_memory_bytes`, else this
    machine's memory shared by `scheduler.max_concurrent_runs` runs (at least 1 GiB) — so that the runs one
    scheduler may hold at once cannot together take the machine's memory; `--memory` may lower it, never raise
    it. On a Ray cluster the nodes are not this machine: no share of it is the default there (Ray's own memory
    monitor guards each node; set `limits.run_memory_bytes` for a limit per run)."""
    allowed = allowed or settings.run_memory_bytes
    if allowed is None and settings.executor == "local":
        allowed = max(1 << 30, machine_memory() // settings.max_concurrent_runs)
    memory = parse_size(asked, "--memory")
    if memory is None or allowed is None:
        return memory if memory is not None else allowed
    if memory > allowed:
        raise UserError(f"--memory: {asked} is over this task's limit of {allowed >> 20} MiB ([limits] memory, else "
                        f"limits.run_memory_bytes; a run may lower its limit, never raise it)")
    return memory


def new_run(settings: Settings, kind: RunKind, opts: RunOptions, default_limit: float | None,
            default_cpus: float | None = None, default_memory: int | None = None) -> Run:
    """A queued run's row. Its CPU cores: -c (never over the task's), else the task's, else DEFAULT_CPUS — every
    run has a number, which sets its libraries' thread counts and its CPU share (runtime.base.thread_env, cgroups,
    docker's nano_cpus), as a container with a CPU quota would. Its memory: `run_memory`."""
    gpus.check_request(settings, opts.gpus, opts.gpu_model)
    check_esm(opts.esm)
    cpus = opts.cpus if opts.cpus is not None else (default_cpus or DEFAULT_CPUS)
    if not (0.01 <= cpus <= 4096):  # (NaN fails too)
        raise UserError(f"-c/--cpus: must be between 0.01 and 4096, got {cpus}")
    if default_cpus is not None and cpus > default_cpus:
        raise UserError(f"-c/--cpus: {cpus:g} is over this task's limit of {default_cpus:g} cores ([limits] cpus; "
                        f"a run may lower its limit, never raise it)")
    memory = run_memory(settings, opts.memory, default_memory)
    return Run(kind=kind, runtime=opts.runtime, gpus=opts.gpus, cpus=cpus, memory=memory,
               shm_size=parse_size(opts.shm_size, "--shm-size"),
               time_limit=time_limit(opts.time_limit, default_limit), status=RunStatus.QUEUED, gpu_ids=[],
               spec={k: v for k, v in (("gpu_model", opts.gpu_model), ("esm", opts.esm),
                                       ("datasets", list(opts.datasets)), ("confine", settings.must_confine)) if v})


def refused_at_launch(db, waiting: list[Run]) -> dict[int, str]:
    """Why queued runs may not start (run id → why). A run of no team was admitted while its tasks were in no
    contest round (harness.contest.gate admits round tasks only with a team); if one of them has joined a round
    since, it would start under none of the round's rules (its opening, its teams, their GPU quota), so it does not
    start. Runs that started before keep running as they were admitted. Two queries in all, none without rounds."""
    teamless = [run for run in waiting if run.team_id is None]
    held = read_sql.tasks_in_rounds(sa_rows(db)) if teamless else set()
    if not held:
        return {}
    own = read_sql.queued_teamless_tasks(sa_rows(db))
    out = {}
    for run in teamless:
        joined = [t for t in [own.get(run.id, ""), *((run.spec or {}).get("datasets") or [])] if t in held]
        if joined:
            what = "session" if run.kind is RunKind.TRAIN else "submit"
            out[run.id] = (f"not started: task {joined[0]} joined a contest round after this {what} queued, so the "
                           f"round's rules apply to it now; start it again")  # (which round: not told, it may not
            #                                                                 have revealed its tasks yet)
    return out
