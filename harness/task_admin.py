"""Registering, preparing, replacing and removing tasks: organizer commands, every change recorded.

A registered task's evaluator and test data decide everybody's scores, so only organizers may change them,
an existing task is replaced only when asked (``--replace``), and each change is kept in ``task_changes`` with
the evaluator's and the test data's hashes before and after (``dataset changes TASK``).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from . import permissions, taskpack
from .context import Harness
from .db.models import Session, Submission, Task, TaskChange
from .errors import NotFound, UserError
from .provenance import tree_hash


def _hashes(folder: Path) -> tuple[str | None, str | None]:
    evaluator, test = folder / "evaluation.py", folder / "test"
    return (tree_hash(evaluator) if evaluator.is_file() else None,
            tree_hash(test) if test.exists() else None)


def _registered(h: Harness, name: str) -> Task | None:
    with h.tx() as db:
        task = db.scalar(select(Task).where(Task.name == name))
        if task is not None:
            db.expunge(task)
        return task


def _refuse_silent_replace(task: Task | None, name: str, replace: bool) -> None:
    if task is not None and not replace:
        raise UserError(f"task {name!r} is already registered (at {task.path}); its scores were made with its "
                        f"evaluator and test data: add --replace to replace them (the change is recorded)")


def _register(h: Harness, manifest: taskpack.Manifest, path: Path, action: str,
              old: tuple[str | None, str | None]) -> None:
    new = _hashes(path)
    with h.tx() as db:
        h.register_task(db, manifest, path)
        db.add(TaskChange(task=manifest.name, action=action, user=h.settings.user, path=str(path),
                          old_evaluator=old[0], new_evaluator=new[0], old_data=old[1], new_data=new[1]))


def add_pack(h: Harness, folder: Path, replace: bool = False, name: str | None = None, metric: str | None = None,
             direction: str | None = None) -> taskpack.Manifest:
    """`dataset add`: register a pack already in NSML layout, where it is."""
    permissions.require_organizer(h.settings, "dataset add")
    manifest = taskpack.add_existing(folder, name, metric, direction)
    existing = _registered(h, manifest.name)
    _refuse_silent_replace(existing, manifest.name, replace)
    old = _hashes(Path(existing.path)) if existing else (None, None)
    _register(h, manifest, folder.resolve(), "replace" if existing else "add", old)
    return manifest


def prepare_builtin(h: Harness, name: str, scale: float = 1.0, seed: int = 0, corpus: list[str] | None = None,
                    replace: bool = False) -> tuple[taskpack.Manifest, Path]:
    """`dataset prepare`: build a built-in task's data and register it."""
    permissions.require_organizer(h.settings, "dataset prepare")
    existing = _registered(h, name)
    _refuse_silent_replace(existing, name, replace)
    old = _hashes(Path(existing.path)) if existing else (None, None)
    manifest, path = taskpack.prepare(h.settings, name, scale=scale, seed=seed, corpus=corpus)
    _register(h, manifest, path, "replace" if existing else "prepare", old)
    return manifest, path


def remove(h: Harness, name: str) -> None:
    """`dataset rm`: unregister a task nobody has used (its sessions and submissions would lose their task)."""
    permissions.require_organizer(h.settings, "dataset rm")
    with h.tx() as db:
        task = db.scalar(select(Task).where(Task.name == name))
        if task is None:
            raise NotFound(f"TASK: {name!r} is not registered")
        sessions = db.scalar(select(func.count(Session.id)).where(Session.task_id == task.id))
        subs = db.scalar(select(func.count(Submission.id)).where(Submission.task_id == task.id))
        if sessions or subs:
            raise UserError(f"TASK: {name} has {sessions} session(s) and {subs} submission(s); remove the "
                            f"sessions first (submissions stay ranked, so a task with any is kept)")
        old = _hashes(Path(task.path))
        db.add(TaskChange(task=name, action="remove", user=h.settings.user, path=task.path,
                          old_evaluator=old[0], old_data=old[1]))
        db.delete(task)


def changes(h: Harness, name: str) -> list[dict]:
    """`dataset changes`: the record of a task's registrations, replacements and removal (organizers)."""
    permissions.require_organizer(h.settings, "dataset changes")
    with h.tx() as db:
        rows = db.scalars(select(TaskChange).where(TaskChange.task == name).order_by(TaskChange.id))
        return [{"time": c.created_at.isoformat(timespec="seconds"), "action": c.action, "user": c.user,
                 "path": c.path, "old_evaluator": c.old_evaluator, "new_evaluator": c.new_evaluator,
                 "old_data": c.old_data, "new_data": c.new_data} for c in rows]
