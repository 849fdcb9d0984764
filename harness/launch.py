"""Turn a queued run (a training session or the inference half of a submit) into a RunSpec.

This is where the NSML contract's reserved flags and environment are put together:
training  ``ENTRY --mode train [ARGS]``; fork ``ENTRY --mode train --pause 1 --iteration CKPT [ARGS]``;
submit    ``ENTRY [ARGS] --mode test --pause 1 --iteration CKPT`` (the reserved flags last, so they win).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from .db.models import Run, Session, Submission
from .enums import RunKind
from .ingest import events_path
from .runtime.base import Mount, RunSpec
from .settings import Settings
from .taskpack import Manifest
from .workspace import copy_tree, submit_view, train_view


def _base_spec(settings: Settings, run: Run, sess: Session, argv: list[str], env: dict, view: Path,
               writable_checkpoints: bool) -> RunSpec:
    """Code copy, data view, checkpoints, the user's own sessions (for cross-session load) and the events file."""
    run_dir = Path(run.run_dir)
    workdir = run_dir / "app"
    copy_tree(Path(sess.code_dir), workdir)
    events = events_path(run)
    events.parent.mkdir(parents=True, exist_ok=True)
    own_sessions = settings.sessions_dir / sess.user.name
    task = sess.task.name
    paths = {"app": workdir, "run": run_dir, "log": run_dir / "log.txt", "events": events, "data": view,
             "checkpoints": Path(sess.checkpoint_dir), "sessions": settings.sessions_dir}
    mounts = [Mount(workdir, "/app", read_only=False), Mount(view, f"/data/{task}"),
              Mount(events.parent, "/nsml/run", read_only=False),
              Mount(own_sessions, f"/nsml/sessions/{sess.user.name}"),
              Mount(Path(sess.checkpoint_dir), "/nsml/checkpoints", read_only=not writable_checkpoints)]
    env = {
        "NSML_SESSION": sess.name,
        "NSML_DATASET_NAME": task,
        "NSML_DATASET_PATH": str(view),
        "NSML_GPU_NUM": str(len(run.gpu_ids)),
        "NSML_EVENTS": str(events),
        "NSML_CHECKPOINT_DIR": str(paths["checkpoints"]),
        "NSML_SESSIONS_ROOT": str(settings.sessions_dir),
        **env,
    }
    if settings.hf_cache is not None:  # a local Hugging Face cache, read-only, offline
        mounts.append(Mount(settings.hf_cache, "/opt/hf-cache"))
        env.update(HF_HOME=str(settings.hf_cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    manifest = Manifest.read(Path(sess.task.path))
    return RunSpec(run_id=run.id, name=sess.name, argv=argv, workdir=workdir, paths=paths, env=env,
                   gpu_ids=list(run.gpu_ids), cpus=run.cpus, memory=run.memory, shm_size=run.shm_size,
                   time_limit=run.time_limit, max_log_bytes=settings.max_log_bytes, kill_grace=settings.kill_grace,
                   mounts=mounts, image=manifest.image, network=manifest.network,
                   labels={"nsml-harness.session": sess.name, "nsml-harness.run": str(run.id),
                           "nsml-harness.kind": run.kind.value})


def training_spec(settings: Settings, run: Run, sess: Session) -> RunSpec:
    run_dir = Path(run.run_dir)
    view = train_view(Path(sess.task.path), run_dir / "data" / sess.task.name)
    argv = [sess.entry, "--mode", "train"]
    env = {"NSML_MODE": "train"}
    if sess.forked_from:
        argv += ["--pause", "1", "--iteration", sess.fork_checkpoint]
        env.update(NSML_MODE="fork", NSML_ITERATION=sess.fork_checkpoint, NSML_LOAD_SESSION=sess.forked_from)
    return _base_spec(settings, run, sess, argv + list(sess.args), env, view, writable_checkpoints=True)


def submit_spec(settings: Settings, run: Run, sess: Session, sub: Submission) -> RunSpec:
    run_dir = Path(run.run_dir)
    dataset = Path(sess.task.path)
    view = submit_view(dataset, run_dir / "data" / sess.task.name, dry_run=sub.dry_run)
    loader_dir = run_dir / "loader"
    loader_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dataset / "data_loader.py", loader_dir / "data_loader.py")
    output = run_dir / "output"
    output.mkdir(parents=True, exist_ok=True)
    argv = [sess.entry, *sess.args, "--mode", "test", "--pause", "1", "--iteration", sub.checkpoint]
    env = {"NSML_MODE": "submit", "NSML_ITERATION": sub.checkpoint,
           "NSML_OUTPUT_FILE": str(output / "prediction"), "NSML_DATA_LOADER": str(loader_dir / "data_loader.py")}
    spec = _base_spec(settings, run, sess, argv, env, view, writable_checkpoints=False)
    spec.paths.update(output=output, loader=loader_dir)
    spec.mounts += [Mount(output, "/nsml/output", read_only=False), Mount(loader_dir, "/nsml/loader")]
    return spec


def spec_for(settings: Settings, db: OrmSession, run: Run) -> RunSpec:
    if run.kind is RunKind.TRAIN:
        sess = db.scalar(select(Session).where(Session.run_id == run.id))
        return training_spec(settings, run, sess)
    sub = db.scalar(select(Submission).where(Submission.run_id == run.id))
    sess = db.get(Session, sub.session_id)
    return submit_spec(settings, run, sess, sub)
