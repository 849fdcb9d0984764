"""Training sessions: run, fork, stop, rm, memo, ps and logs."""
from __future__ import annotations

import logging
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import contest, gpus, listing, notify, permissions, session_env
from .context import Harness
from .db.quick import sa_rows
from .db.models import Run, Session, Submission
from .enums import RunKind, RunStatus
from .errors import UserError
from .lease import ensure_running, wake
from .workspace import snapshot_code

log = logging.getLogger("harness.sessions")
SIZE_RE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | None, flag: str) -> int | None:
    """'24G', '512M', '1g', '1048576' → bytes."""
    if text is None or text == "":
        return None
    s = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    unit = s[-1] if s and s[-1] in SIZE_RE_UNITS else ""
    number = s[:-1] if unit else s
    try:
        value = float(number)
    except ValueError:
        raise UserError(f"{flag}: invalid size {text!r} (use e.g. 512M, 24G)") from None
    if value <= 0:
        raise UserError(f"{flag}: size must be positive, got {text!r}")
    return int(value * SIZE_RE_UNITS[unit])


def parse_args(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UserError(f"-a/--args: cannot parse {text!r}: {exc}") from None


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


def check_queue_limit(h: Harness, db, user_id: int) -> None:
    """A user may have at most `limits.queued_per_user` runs (sessions and submits) waiting."""
    queued = (db.scalar(select(func.count(Run.id)).join(Session, Session.run_id == Run.id)
                        .where(Run.status == RunStatus.QUEUED, Session.user_id == user_id))
              + db.scalar(select(func.count(Run.id)).join(Submission, Submission.run_id == Run.id)
                          .where(Run.status == RunStatus.QUEUED, Submission.user_id == user_id)))
    if queued >= h.settings.max_queued_per_user:
        raise UserError(f"queue limit reached: {queued} of your runs are waiting "
                        f"(limits.queued_per_user = {h.settings.max_queued_per_user}); wait or stop some")


def check_esm(esm: str | None) -> str | None:
    """--esm: a registration number, recorded as given (bounded: it is stored and shown)."""
    if esm is not None and (len(esm) > 64 or not esm.isprintable() or not esm.strip()):
        raise UserError(f"--esm: {esm[:20]!r}... is not a registration number (1-64 printable characters)")
    return esm


def _new_run(h: Harness, kind: RunKind, opts: RunOptions, default_limit: float | None) -> Run:
    gpus.check_request(h.settings, opts.gpus, opts.gpu_model)
    check_esm(opts.esm)
    if opts.cpus is not None and opts.cpus <= 0:
        raise UserError(f"-c/--cpus: must be positive, got {opts.cpus}")
    if opts.time_limit is not None and opts.time_limit <= 0:
        raise UserError(f"--time-limit: must be positive, got {opts.time_limit}")
    return Run(kind=kind, runtime=opts.runtime, gpus=opts.gpus, cpus=opts.cpus,
               memory=parse_size(opts.memory, "--memory"), shm_size=parse_size(opts.shm_size, "--shm-size"),
               time_limit=opts.time_limit or default_limit, status=RunStatus.QUEUED, gpu_ids=[],
               spec={k: v for k, v in (("gpu_model", opts.gpu_model), ("esm", opts.esm)) if v})


def _session_limit(h: Harness, task) -> float:
    return h.manifest(task).session_seconds or h.settings.default_session_time_limit


def _create_session(h: Harness, db, task, entry: str, args: list[str], memo: str, run: Run,
                    code_from: Path, forked_from: str | None = None, fork_ckpt: str | None = None) -> Session:
    user = h.user(db)
    admitted = contest.gate(h, db, user, task.name, "a session")
    contest.check_gpu_request(db, admitted, run.gpus)
    if admitted is not None:
        run.team_id, run.team_gpu_quota = admitted.team.id, admitted.gpu_quota
    check_queue_limit(h, db, user.id)
    base = h.settings.sessions_dir / user.name / task.name
    on_disk = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.exists() else []
    last = db.scalar(select(func.max(Session.number)).where(Session.user_id == user.id, Session.task_id == task.id))
    number = max([last or 0, *on_disk]) + 1
    name = f"{user.name}/{task.name}/{number}"
    sess_dir = base / str(number)
    sess_dir.mkdir(parents=True)  # FileExistsError: a concurrent `run` took this number; the caller retries
    try:
        (sess_dir / "checkpoints").mkdir()
        if forked_from is None:
            snapshot_code(code_from, sess_dir / "code", h.settings.code_bytes)
        else:
            shutil.copytree(code_from, sess_dir / "code", symlinks=True)
        db.add(run)
        db.flush()
        run.run_dir = str(h.settings.runs_dir / str(run.id))
        notify.prepare_run_dir(run.run_dir)
        sess = Session(name=name, number=number, user_id=user.id, task_id=task.id, run_id=run.id, entry=entry,
                       args=args, memo=memo or "", dir=str(sess_dir), forked_from=forked_from,
                       fork_checkpoint=fork_ckpt)
        db.add(sess)
        db.flush()
    except BaseException:
        shutil.rmtree(sess_dir, ignore_errors=True)
        raise
    return sess


def start_session(h: Harness, task_name: str, folder: str, entry: str = "main.py", args: str | None = None,
                  memo: str = "", opts: RunOptions | None = None, notify=None) -> str:
    """`nsml run`: snapshot the folder, queue the session, make sure a scheduler runs. Returns its name."""
    opts = opts or RunOptions()
    src = Path(folder).expanduser().resolve()
    if not src.is_dir():
        raise UserError(f"FOLDER: {folder!r} is not a folder")
    if not (src / entry).is_file():
        raise UserError(f"-e/--entry: {entry!r} not found in {src}")
    argv = parse_args(args)
    if opts.runtime == "process":  # its requirements, installed before it queues (one line on a bad one)
        with h.tx() as db:
            source_builds = h.manifest(h.task(db, task_name)).source_builds
        for note in session_env.notices(src):
            (notify or log.warning)(note)
        session_env.ensure(h.settings.state_dir / "envs", src, source_builds)

    def create(db):
        task = h.task(db, task_name)
        run = _new_run(h, RunKind.TRAIN, opts, _session_limit(h, task))
        return _create_session(h, db, task, entry, argv, memo, run, src).name
    name = _with_retry(h, create)
    wake(h.settings)
    return name


def _with_retry(h: Harness, fn, attempts: int = 5):
    """Two concurrent `run`s may pick the same session number: the loser retries with the next one."""
    for attempt in range(attempts):
        try:
            with h.tx() as db:
                return fn(db)
        except (IntegrityError, FileExistsError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def fork_session(h: Harness, parent: str, checkpoint: str, args: str | None = None, memo: str = "",
                 opts: RunOptions | None = None) -> str:
    """`nsml fork`: a new session from another's code and checkpoint; training goes on after paused()."""
    opts = opts or RunOptions()
    new_args = parse_args(args) if args is not None else None

    def create(db):
        src = h.own_session(db, parent)
        if not (Path(src.checkpoint_dir) / str(checkpoint)).is_dir():
            raise UserError(f"-c/--checkpoint: session {parent} has no checkpoint {checkpoint!r}")
        run = _new_run(h, RunKind.TRAIN, opts, _session_limit(h, src.task))
        return _create_session(h, db, src.task, src.entry, list(src.args) if new_args is None else new_args, memo,
                               run, Path(src.code_dir), forked_from=src.name, fork_ckpt=str(checkpoint)).name
    name = _with_retry(h, create)
    wake(h.settings)
    return name


def stop_sessions(h: Harness, pattern: str) -> list[str]:
    with h.tx() as db:
        stopped = []
        for sess in h.sessions_matching(db, pattern):
            if not sess.run.status.terminal:
                sess.run.stop_requested = True
                stopped.append(sess.name)
    if stopped:
        wake(h.settings)
    return stopped


def run_status(h: Harness, run_id: int) -> RunStatus:
    with h.tx() as db:
        return db.get(Run, run_id).status


def wait_run(h: Harness, run_id: int, timeout: float | None = None, recheck: float = 1.0) -> Run:
    """Until the run has ended (or TIMEOUT): woken by its end marker (harness.notify), confirmed in the
    database, and looked at every RECHECK seconds anyway (a scheduler that died is replaced meanwhile)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with h.tx() as db:
        run_dir = Path(db.get(Run, run_id).run_dir)
    watch = notify.FileWatch(run_dir, names={notify.ENDED}) if run_dir.is_dir() else None
    try:
        while True:
            with h.tx() as db:
                run = db.get(Run, run_id)
                if run.status.terminal:
                    return run
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return run
            ensure_running(h.settings)  # cheap while a scheduler holds the lease
            pause = recheck if left is None else min(recheck, left)
            if watch is not None:
                watch.wait(pause)
            else:
                time.sleep(min(pause, 0.1))
    finally:
        if watch is not None:
            watch.close()


def remove_sessions(h: Harness, pattern: str) -> list[str]:
    """`nsml rm`: stop if needed, then delete the session, its checkpoints and metrics (submissions stay)."""
    with h.tx() as db:
        targets = [(s.name, s.run_id) for s in h.sessions_matching(db, pattern)]
    for name, _ in targets:
        stop_sessions(h, name)
    removed = []
    for name, run_id in targets:
        wait_run(h, run_id, timeout=60)
        with h.tx() as db:
            sess = h.own_session(db, name)
            for sub in db.scalars(select(Submission).where(Submission.session_id == sess.id)):
                sub.session_id = None
            shutil.rmtree(sess.dir, ignore_errors=True)
            db.delete(sess)
            removed.append(name)
    return removed


def set_memo(h: Harness, name: str, text: str) -> None:
    with h.tx() as db:
        h.own_session(db, name).memo = text


def list_sessions(h: Harness, all_: bool = False, last: int | None = None, task: str | None = None,
                  user: str | None = None) -> list[dict]:
    """`nsml ps`: the user's sessions, newest first; without -a only queued and running ones."""
    with h.tx() as db:
        if user is not None:
            permissions.require_owner(h.settings, user, f"the sessions of {user}")
        me = h.user(db, user)
        task_id = h.task(db, task).id if task else None
        return listing.session_rows(sa_rows(db), me.id, task_id, all_, last)


def session_info(h: Harness, name: str) -> dict:
    with h.tx() as db:
        sess = h.own_session(db, name)
        info = listing.session_rows(sa_rows(db), session_id=sess.id, all_=True)[0]
        info["run_id"] = sess.run_id
        info["log"] = sess.run.log_path
        return info
