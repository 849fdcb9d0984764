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
from .runtime.base import RunSpec
from .settings import Settings
from .workspace import copy_tree, submit_view, train_view


def _base_spec(settings: Settings, run: Run, sess: Session, argv: list[str], env: dict) -> RunSpec:
    run_dir = Path(run.run_dir)
    workdir = run_dir / "app"
    copy_tree(Path(sess.code_dir), workdir)
    paths = {"app": workdir, "run": run_dir, "log": run_dir / "log.txt", "events": run_dir / "events.jsonl",
             "checkpoints": Path(sess.checkpoint_dir), "sessions": settings.sessions_dir}
    env = {
        "NSML_SESSION": sess.name,
        "NSML_DATASET_NAME": sess.task.name,
        "NSML_GPU_NUM": str(len(run.gpu_ids)),
        "NSML_EVENTS": str(paths["events"]),
        "NSML_CHECKPOINT_DIR": str(paths["checkpoints"]),
        "NSML_SESSIONS_ROOT": str(settings.sessions_dir),
        **env,
    }
    return RunSpec(run_id=run.id, name=sess.name, argv=argv, workdir=workdir, paths=paths, env=env,
                   gpu_ids=list(run.gpu_ids), cpus=run.cpus, memory=run.memory, shm_size=run.shm_size,
                   time_limit=run.time_limit, max_log_bytes=settings.max_log_bytes, kill_grace=settings.kill_grace)


def training_spec(settings: Settings, run: Run, sess: Session) -> RunSpec:
    run_dir = Path(run.run_dir)
    view = train_view(Path(sess.task.path), run_dir / "data" / sess.task.name)
    argv = [sess.entry, "--mode", "train"]
    env = {"NSML_DATASET_PATH": str(view), "NSML_MODE": "train"}
    if sess.forked_from:
        argv += ["--pause", "1", "--iteration", sess.fork_checkpoint]
        env.update(NSML_MODE="fork", NSML_ITERATION=sess.fork_checkpoint, NSML_LOAD_SESSION=sess.forked_from)
    spec = _base_spec(settings, run, sess, argv + list(sess.args), env)
    spec.paths["data"] = view
    return spec


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
    env = {"NSML_DATASET_PATH": str(view), "NSML_MODE": "submit", "NSML_ITERATION": sub.checkpoint,
           "NSML_OUTPUT_FILE": str(output / "prediction"), "NSML_DATA_LOADER": str(loader_dir / "data_loader.py")}
    spec = _base_spec(settings, run, sess, argv, env)
    spec.paths.update(data=view, output=output, loader=loader_dir)
    return spec


def spec_for(settings: Settings, db: OrmSession, run: Run) -> RunSpec:
    if run.kind is RunKind.TRAIN:
        sess = db.scalar(select(Session).where(Session.run_id == run.id))
        return training_spec(settings, run, sess)
    sub = db.scalar(select(Submission).where(Submission.run_id == run.id))
    sess = db.get(Session, sub.session_id)
    return submit_spec(settings, run, sess, sub)
