"""Turn a queued run (a training session or the inference half of a submit) into a RunSpec.

This is where the NSML contract's reserved flags and environment are put together:
training  ``ENTRY --mode train [ARGS]``; fork ``ENTRY --mode train --pause 1 --iteration CKPT [ARGS]``;
submit    ``ENTRY [ARGS] --mode test --pause 1 --iteration CKPT`` (the reserved flags last, so they win) —
each reserved flag only where the entry declares it (harness.runtime.entry_flags; ``--checkpoint`` where an entry uses
that older name), while the environment always carries the mode and checkpoint for ``nsml.paused()``.  What was
passed is recorded on the run (``reserved_flags``, shown by ``ps -j`` and ``history -j``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from harness.core.enums import RunKind
from harness.core.safefs import is_real_dir, remove_tree
from harness.core.settings import Settings
from harness.runtime import entry_flags
from harness.runtime.base import RUN_OUTPUT, RUN_SCRATCH, Mount, RunPaths, RunSpec
from harness.runtime.disk_limits import DiskLimit
from harness.store.models import Run, Session, Submission, Task
from harness.taskpacks import layout
from harness.taskpacks.registry import Manifest

from .events import events_path
from .snapshot import copy_tree


def _data_mounts(view: Path, target: str, items: list[tuple[Path, str]]) -> list[Mount]:
    """DATASET_PATH: an empty view folder at /data/TASK holding a mount point for each of the task's own folders
    or files given to the run, bound read-only there (never a hard link or a writable copy of them)."""
    view.mkdir(parents=True, exist_ok=True)
    mounts = [Mount(view, target)]
    for src, rel in items:
        point = view / rel
        point.parent.mkdir(parents=True, exist_ok=True)
        point.mkdir() if src.is_dir() else point.touch()
        mounts.append(Mount(src, f"{target}/{rel}"))
    return mounts


def _base_spec(settings: Settings, run: Run, sess: Session, argv: list[str], env: dict,
               data: list[tuple[Path, str]], writable_checkpoints: bool,
               more: list[tuple[str, Path]] = ()) -> RunSpec:
    """Code copy, data view, checkpoints, the user's own sessions (for cross-session load) and the events file."""
    run_dir = Path(run.run_dir)
    for prepared in RUN_SCRATCH:  # a requeued run (its scheduler died before the code started): what that
        remove_tree(run_dir / prepared)  # attempt prepared goes
    workdir = run_dir / "app"
    copy_tree(Path(sess.code_dir), workdir)
    events = events_path(run)
    events.parent.mkdir(parents=True, exist_ok=True)
    (run_dir / "tmp").mkdir(exist_ok=True)
    nfs = run_dir / "nfs"  # NSML_NFS_OUTPUT: NSML's shared output folder, here the run's own (scratch, counted)
    nfs.mkdir(exist_ok=True)
    user, task = sess.user.name, sess.task.name
    checkpoints = Path(sess.checkpoint_dir)
    if not is_real_dir(checkpoints) or not is_real_dir(settings.sessions_dir / user):
        raise RuntimeError(f"{checkpoints} is not a folder of the harness (replaced by a link?)")
    own = run_dir / "sessions" / user  # nsml.load(session=...) reaches this user's sessions only
    own.parent.mkdir(parents=True, exist_ok=True)
    if not own.is_symlink():
        own.symlink_to(settings.sessions_dir / user, target_is_directory=True)
    view = run_dir / "data" / task
    paths = RunPaths(run=run_dir, log=Path(run.log_path), app=workdir, events=events, data=view,
                     checkpoints=checkpoints, sessions=own.parent)
    mounts = [Mount(workdir, "/app", read_only=False), *_data_mounts(view, f"/data/{task}", data),
              Mount(events.parent, "/nsml/run", read_only=False), Mount(nfs, "/nsml/nfs", read_only=False),
              Mount(own, f"/nsml/sessions/{user}"),
              Mount(checkpoints, "/nsml/checkpoints", read_only=not writable_checkpoints)]
    env = {
        "NSML_SESSION": sess.name,
        "NSML_DATASET_NAME": task,
        "NSML_DATASET_PATH": str(view),
        "NSML_GPU_NUM": str(len(run.gpu_ids)),
        "NSML_EVENTS": str(events),
        "NSML_CHECKPOINT_DIR": str(checkpoints),
        "NSML_SESSIONS_ROOT": str(own.parent),
        "NSML_NFS_OUTPUT": str(nfs),
        **env,
    }
    if settings.hf_cache is not None:  # a local Hugging Face cache, read-only, offline
        mounts.append(Mount(settings.hf_cache, "/opt/hf-cache"))
        env.update(HF_HOME=str(settings.hf_cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    extra_views = []
    for i, (name, train) in enumerate(more, start=1):  # NSML's `-d a,b`: each more task's training data
        extra = run_dir / "data" / name
        mounts += _data_mounts(extra, f"/data/{name}", [(train, "train")])
        extra_views.append((extra, f"/data/{name}"))
        env.update({f"NSML_DATASET_PATH_{i}": str(extra), f"NSML_DATASET_NAME_{i}": name})
    if more:
        env["NSML_DATASET_COUNT"] = str(len(more) + 1)
    scratch = [workdir, run_dir / "tmp", events.parent, nfs]
    limits = [DiskLimit(scratch, settings.scratch_bytes, "limits.scratch_bytes")]
    if writable_checkpoints:
        limits.insert(0, DiskLimit([checkpoints], settings.checkpoint_bytes, "limits.checkpoint_bytes"))
    if writable_checkpoints and settings.user_storage_bytes:  # all the user's sessions: they outlive every run
        limits.append(DiskLimit([settings.sessions_dir / user], settings.user_storage_bytes,
                                "limits.user_storage_bytes", shared_by=f"{user}'s sessions"))
    manifest = Manifest.read(Path(sess.task.path))
    return RunSpec(run_id=run.id, name=sess.name, argv=argv, workdir=workdir, paths=paths, env=env,
                   gpu_ids=list(run.gpu_ids),
                   gpu_model=(run.spec or {}).get("gpu_model"), cpus=run.cpus, memory=run.memory, shm_size=run.shm_size,
                   time_limit=run.time_limit, max_log_bytes=settings.max_log_bytes, kill_grace=settings.kill_grace,
                   mounts=mounts, image=manifest.image, network=manifest.network,
                   source_builds=manifest.source_builds,
                   labels={"nsml-harness.session": sess.name, "nsml-harness.run": str(run.id),
                           "nsml-harness.kind": run.kind.value},
                   data_view=view, data_target=f"/data/{task}", extra_views=extra_views, disk_limits=limits,
                   confine=bool((run.spec or {}).get("confine")))


def _reserved(run: Run, sess: Session, mode: str, checkpoint: str | None, entry: str | None = None) -> list[str]:
    flags = entry_flags.scan(Path(sess.code_dir), entry or sess.entry)
    reserved = flags.reserved(mode, pause=checkpoint is not None, checkpoint=checkpoint)
    run.spec = {**(run.spec or {}), "reserved_flags": reserved, "parser": flags.style}
    return reserved


def more_tasks(db: OrmSession, run: Run) -> list[tuple[str, Path]]:
    """The tasks more than its own whose training data a session's RUN reads (NSML's `-d a,b`): name and train/."""
    out = []
    for name in (run.spec or {}).get("datasets") or []:
        task = db.scalar(select(Task).where(Task.name == name))
        if task is None:
            raise RuntimeError(f"-d/--dataset: task {name!r} is no longer registered")
        out.append((task.name, Path(task.path) / layout.TRAIN))
    return out


def training_spec(settings: Settings, run: Run, sess: Session, more: list[tuple[str, Path]] = ()) -> RunSpec:
    argv = [sess.entry, *_reserved(run, sess, "train", sess.fork_checkpoint if sess.forked_from else None)]
    env = {"NSML_MODE": "train"}
    if sess.forked_from:
        env.update(NSML_MODE="fork", NSML_ITERATION=sess.fork_checkpoint, NSML_LOAD_SESSION=sess.forked_from)
    data = [(Path(sess.task.path) / layout.TRAIN, layout.TRAIN)]
    return _base_spec(settings, run, sess, argv + list(sess.args), env, data, writable_checkpoints=True, more=more)


def submit_spec(settings: Settings, run: Run, sess: Session, sub: Submission) -> RunSpec:
    run_dir = Path(run.run_dir)
    dataset = Path(sess.task.path)
    source = layout.submit_data(dataset, dry_run=sub.dry_run)
    loader_dir = run_dir / "loader"
    loader_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(layout.loader(dataset), loader_dir / layout.LOADER)
    output = run_dir / RUN_OUTPUT
    output.mkdir(parents=True, exist_ok=True)
    entry = (run.spec or {}).get("entry") or sess.entry  # submit -e: another entry of the same code
    argv = [entry, *sess.args, *_reserved(run, sess, "test", sub.checkpoint, entry)]
    env = {"NSML_MODE": "submit", "NSML_ITERATION": sub.checkpoint,
           "NSML_OUTPUT_FILE": str(output / "prediction"), "NSML_DATA_LOADER": str(loader_dir / layout.LOADER)}
    spec = _base_spec(settings, run, sess, argv, env, [(source, "test/test_data")], writable_checkpoints=False)
    spec.paths.output, spec.paths.loader = output, loader_dir
    spec.mounts += [Mount(output, "/nsml/output", read_only=False), Mount(loader_dir, "/nsml/loader")]
    spec.disk_limits[-1].paths.append(output)
    return spec


def spec_for(settings: Settings, db: OrmSession, run: Run) -> RunSpec:
    if run.kind is RunKind.TRAIN:
        sess = db.scalar(select(Session).where(Session.run_id == run.id))
        return training_spec(settings, run, sess, more_tasks(db, run))
    sub = db.scalar(select(Submission).where(Submission.run_id == run.id))
    sess = db.get(Session, sub.session_id)
    return submit_spec(settings, run, sess, sub)
