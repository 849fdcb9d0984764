"""Training sessions: run, fork, stop, rm, memo, ps and logs."""
from __future__ import annotations

import logging
import shlex
import shutil
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from harness.contest.gate import check_gpu_request, gate
from harness.core.enums import RunKind
from harness.core.errors import UserError
from harness.core.names import check_memo, check_name, session_folder, session_name
from harness.core.safefs import remove_tree
from harness.runs.create import RunOptions, check_queue_limit, check_storage, new_run, queue_run, storage_changed
from harness.runs.snapshot import check_entry, snapshot_code
from harness.runtime import environments
from harness.runtime.env_builds import Bounds
from harness.scheduler.lease import ensure_running, wake  # noqa: F401 - part of the API (logs -f)
from harness.scheduler.waiting import run_status, wait_run  # noqa: F401 - part of the API
from harness.state import Harness
from harness.store import read_sql
from harness.store.models import Run, Session, Submission
from harness.store.quick import sa_rows

from . import permissions
from .checkpoints import has_checkpoint

log = logging.getLogger("harness.service.sessions")
STOP_WAIT = 60.0  # seconds `nsml rm` waits, in all, for the runs it stopped to end


def parse_args(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UserError(f"-a/--args: cannot parse {text!r}: {exc}") from None


def session_seconds(h: Harness, task, manifest=None) -> float:
    """The longest a session of TASK may run: the task's [limits] session_seconds, else the harness's. MANIFEST: the
    task's, when the caller has read it already."""
    return (manifest or h.manifest(task)).session_seconds or h.settings.default_session_time_limit


def _new_run(h: Harness, task, opts: RunOptions) -> Run:
    """A session's run of TASK: its time, CPU and memory limits the task's unless OPTS lower them."""
    manifest = h.manifest(task)
    limit = session_seconds(h, task, manifest)
    return new_run(h.settings, RunKind.TRAIN, opts, limit, manifest.cpus, manifest.memory)


MAX_DATASETS = 8  # tasks one session may read (NSML's `-d a,b`): its own and 7 more


def _in_round(admitted) -> str:
    return f"in round {admitted.round.label}" if admitted is not None else "in no round"


def _admit(h: Harness, db, task, run: Run):
    """May the caller queue RUN as a session of TASK now: its round's gate and the round's GPU rule (checked before
    an environment is built, with the queue limit, and again as it queues); the same gate for each task more whose
    training data it reads, which must be in the same round as TASK or, with TASK, in none (else a session of a
    free task would read a round task's data under no team's GPU quota). Returns the user; sets the run's team."""
    user = h.user(db)
    more = (run.spec or {}).get("datasets") or []
    if len(more) + 1 > MAX_DATASETS:
        raise UserError(f"-d/--dataset: at most {MAX_DATASETS} tasks in one session, got {len(more) + 1}")
    admitted = gate(h, db, user, task.name, "a session", practice=True)
    for name in more:
        check_name(name, "-d/--dataset")
        if name == task.name or more.count(name) > 1:
            raise UserError(f"-d/--dataset: task {name!r} is named twice")
        other = gate(h, db, user, permissions.task_of(h, db, name).name, "a session", practice=True)
        if (other and other.round.id) != (admitted and admitted.round.id):
            raise UserError(f"-d/--dataset: task {name!r} is {_in_round(other)} and {task.name!r} "
                            f"{_in_round(admitted)}: one session reads tasks of one round (or of none)")
    check_gpu_request(db, admitted, run.gpus)
    if admitted is not None:
        run.team_id, run.team_gpu_quota = admitted.team.id, admitted.gpu_quota
    return user


def _create_session(h: Harness, db, task, entry: str, args: list[str], memo: str, run: Run,
                    code_from: Path, forked_from: str | None = None, fork_ckpt: str | None = None,
                    check: bool = False) -> Session:
    user = _admit(h, db, task, run)
    queue_run(h.settings, db, user.id, run)
    base = h.settings.sessions_dir / user.name / task.name
    mine = (Session.user_id == user.id, Session.task_id == task.id)
    if check:  # nsml check's own: -1, -2, ... (USER/TASK/check-K), never a number of the participant's sequence
        number = min(0, db.scalar(select(func.min(Session.number)).where(*mine)) or 0) - 1
        while (base / session_folder(number)).exists():  # left by a check whose record is gone
            number -= 1
    else:
        on_disk = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.exists() else []
        last = db.scalar(select(func.max(Session.number)).where(*mine))
        number = max([0, last or 0, *on_disk]) + 1  # (check sessions are negative)
    name = session_name(user.name, task.name, number)
    sess_dir = base / session_folder(number)
    sess_dir.mkdir(parents=True)  # FileExistsError: a concurrent `run` took this number; the caller retries
    try:
        (sess_dir / "checkpoints").mkdir()
        if forked_from is None:
            snapshot_code(code_from, sess_dir / "code", h.settings.code_bytes)
        else:
            shutil.copytree(code_from, sess_dir / "code", symlinks=True)
        sess = Session(name=name, number=number, user_id=user.id, task_id=task.id, run_id=run.id, entry=entry,
                       args=args, memo=memo or "", dir=str(sess_dir), forked_from=forked_from,
                       fork_checkpoint=fork_ckpt)
        db.add(sess)
        db.flush()
    except BaseException:
        shutil.rmtree(sess_dir, ignore_errors=True)
        raise
    storage_changed(h.settings, user.name)  # (its code copy: the next admission measures again)
    return sess


def admit_session(h: Harness, task_name: str, memo: str, opts: RunOptions) -> tuple[bool, str | None]:
    """Whether the user may start a session of TASK_NAME now — the memo, the options, the round's gate, the queue
    limit, their storage — refused before anything is built (and, over HTTP, before the code is read). The task's
    source_builds and image."""
    check_memo(memo or "", "-m/--memo")

    def admit(db):
        task = permissions.task_of(h, db, task_name)
        check_queue_limit(h.settings, db, _admit(h, db, task, _new_run(h, task, opts)).id)  # (queue_run's, later)
        manifest = h.manifest(task)
        return manifest.source_builds, manifest.image
    found = _with_retry(h, admit)  # (a new user's first runs at once: one makes the user row)
    check_storage(h.settings, h.settings.user, h.store)  # (outside any transaction: it walks the user's folder)
    return found


def start_session(h: Harness, task_name: str, folder: str, entry: str = "main.py", args: str | None = None,
                  memo: str = "", opts: RunOptions | None = None, notify=None, check: bool = False) -> str:
    """`nsml run`: snapshot the folder, queue the session, make sure a scheduler runs. Returns its name. CHECK:
    a session of `nsml check` (USER/TASK/check-K, hidden from ps: core.names.parse_session_name)."""
    opts = opts or RunOptions()
    src = Path(folder).expanduser().resolve()
    if not src.is_dir():
        raise UserError(f"FOLDER: {folder!r} is not a folder")
    entry = check_entry(src, entry)  # never absolute or climbing: the scheduler reads it to plan the run
    argv = parse_args(args)
    source_builds, task_image = admit_session(h, task_name, memo, opts)
    if opts.runtime == "process":  # its requirements, installed before it queues (one line on a bad one)
        for note in environments.notices(src, h.settings.root):
            (notify or log.warning)(note)
        prepare_environment(h, src, opts.runtime, source_builds)
    elif opts.runtime == "docker":  # which image, and why (built at launch, in the scheduler)
        from harness.runtime.images import describe_base
        note = describe_base(src, h.settings, task_image)
        if note:
            (notify or log.warning)(note)

    def create(db):
        task = permissions.task_of(h, db, task_name)
        return _create_session(h, db, task, entry, argv, memo, _new_run(h, task, opts), src, check=check).name
    name = _with_retry(h, create)
    wake(h.settings)
    return name


def prepare_environment(h: Harness, code: Path, runtime: str, source_builds: bool) -> None:
    """A process-runtime run's environment, built (or reused, and charged to the user) before the run queues:
    the scheduler's loop never builds one (runtime.environments.Use). `run`, `fork` and `submit` call it, after
    their own checks; a build (not a reuse) waits for the user's storage to be under its limit."""
    if runtime == "process":
        environments.for_code(h.settings.envs_dir, code, h.settings.root, source_builds, use=environments.Use(
            Bounds.of(h.settings, h.settings.user),
            before_build=lambda: check_storage(h.settings, h.settings.user, h.store)))


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
    check_memo(memo or "", "-m/--memo")
    opts = opts or RunOptions()
    new_args = parse_args(args) if args is not None else None

    check_storage(h.settings, h.settings.user, h.store)

    def own_options(src):  # a fork reads the tasks its parent read, whatever its options say
        return replace(opts, datasets=tuple((src.run.spec or {}).get("datasets") or ()))

    def admit(db):  # refused before anything is built, as `run` is
        src = permissions.own_session(h, db, parent)
        permissions.check_confined(h.settings, opts.runtime or src.run.runtime, permissions.code_confined(src))
        if not has_checkpoint(db, src, str(checkpoint)):
            raise UserError(f"-c/--checkpoint: session {parent} has no checkpoint {checkpoint!r}")
        check_queue_limit(h.settings, db, _admit(h, db, src.task, _new_run(h, src.task, own_options(src))).id)
        return Path(src.code_dir), h.manifest(src.task).source_builds
    code, source_builds = _with_retry(h, admit)
    prepare_environment(h, code, opts.runtime, source_builds)

    def create(db):
        src = permissions.own_session(h, db, parent)
        run = _new_run(h, src.task, own_options(src))
        if permissions.code_confined(src):  # (an organizer's fork of a participant's code too)
            run.spec = {**(run.spec or {}), "confine": True}
        return _create_session(h, db, src.task, src.entry, list(src.args) if new_args is None else new_args, memo,
                               run, Path(src.code_dir), forked_from=src.name, fork_ckpt=str(checkpoint)).name
    name = _with_retry(h, create)
    wake(h.settings)
    return name


def stop_sessions(h: Harness, pattern: str) -> list[str]:
    with h.tx() as db:
        stopped = []
        for sess in permissions.sessions_matching(h, db, pattern):
            if not sess.run.status.terminal:
                sess.run.stop_requested = True
                stopped.append(sess.name)
    if stopped:
        wake(h.settings)
    return stopped


def remove_sessions(h: Harness, pattern: str) -> list[str]:
    """`nsml rm`: stop if needed, then delete the session, its checkpoints and metrics (submissions stay)."""
    with h.tx() as db:
        chosen = permissions.sessions_matching(h, db, pattern)
        targets = [(s.name, s.run_id) for s in chosen]
        dry = [sub.run_id for sub in db.scalars(select(Submission).where(  # its dry runs under way stop too
            Submission.session_id.in_([s.id for s in chosen]), Submission.dry_run.is_(True)))
            if not sub.run.status.terminal]
        for run_id in dry:
            db.get(Run, run_id).stop_requested = True
    if dry:
        wake(h.settings)
    for name, _ in targets:
        stop_sessions(h, name)
    removed, deadline = [], time.monotonic() + STOP_WAIT
    for run_id in dry + [run_id for _, run_id in targets]:  # (they stop at once, together: one wait for all)
        wait_run(h, run_id, timeout=max(0.0, deadline - time.monotonic()))
    for name, _ in targets:
        with h.tx() as db:
            sess = permissions.own_session(h, db, name)
            gone = [sess.run]  # its run's folder (its log), and its dry runs' (log, graded prediction): what
            for sub in db.scalars(select(Submission).where(Submission.session_id == sess.id)):  # runs.create.
                sub.session_id = None  # kept_bytes counted (a real submit's stay: the board's evidence)
                gone += [sub.run] if sub.dry_run else []
            remove_tree(sess.dir)  # (however deep a run made it)
            for run in gone:
                if run.status.terminal and run.run_dir:
                    remove_tree(Path(run.run_dir))
            storage_changed(h.settings, sess.user.name)
            db.delete(sess)
            removed.append(name)
    return removed


def set_memo(h: Harness, name: str, text: str) -> None:
    check_memo(text, "MEMO")
    with h.tx() as db:
        permissions.own_session(h, db, name).memo = text


def list_sessions(h: Harness, all_: bool = False, last: int | None = None, task: str | None = None,
                  user: str | None = None) -> list[dict]:
    """`nsml ps`: the user's sessions, newest first; without -a only queued and running ones."""
    with h.tx() as db:
        if user is not None:
            permissions.require_owner(h.settings, user, f"the sessions of {user}")
        me = h.user(db, user)
        task_id = permissions.task_of(h, db, task).id if task else None
        return read_sql.session_rows(sa_rows(db), me.id, task_id, all_, last)


def session_info(h: Harness, name: str) -> dict:
    with h.tx() as db:
        sess = permissions.own_session(h, db, name)
        info = read_sql.session_rows(sa_rows(db), session_id=sess.id, all_=True)[0]
        info["run_id"] = sess.run_id
        info["log"] = sess.run.log_path
        return info
