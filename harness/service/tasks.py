"""Tasks: listing them (anyone), and registering, preparing, replacing and removing them (organizer commands,
every change recorded).

A registered task's evaluator and test data decide everybody's scores, so only organizers may change them,
an existing task is replaced only when asked (``--replace``), and each change is kept in ``task_changes`` with
the evaluator's and the test data's hashes before and after (``dataset changes TASK``).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from harness.contest.definition import check_ladder_rounds
from harness.core.errors import NotFound, UserError
from harness.scoring import evaluator_call
from harness.scoring.provenance import tree_hash
from harness.state import Harness
from harness.store.models import Session, Submission, Task, TaskChange
from harness.taskpacks import layout, registry, simulate_table

from . import permissions
from .pack_roots import refuse_pack_holding


def list_tasks(h: Harness) -> list[dict]:
    """Prepared tasks and, to organizers, the built-in or installed ones that can be prepared, by name."""
    rows = {}
    organizer = permissions.is_organizer(h.settings)
    for name, src in registry.known_sources(h.settings).items() if organizer else ():
        manifest = registry.Manifest.read(src) if isinstance(src, Path) else None  # built-ins: read, not prepared
        rows[name] = {"name": name, "prepared": False, "metric": manifest and manifest.metric,
                      "direction": manifest and manifest.direction.value, "submissions": 0,
                      "source": str(src) if isinstance(src, Path) else f"entry point {src.value}"}
    with h.tx() as db:
        counts = dict(db.execute(select(Submission.task_id, func.count(Submission.id))
                                 .where(Submission.dry_run.is_(False)).group_by(Submission.task_id)).all())
        for task in db.scalars(select(Task)):
            rows[task.name] = {**rows.get(task.name, {"source": task.path}), "name": task.name, "prepared": True,
                               "metric": task.metric, "direction": task.direction.value,
                               "submissions": counts.get(task.id, 0), "path": task.path}
        hidden = permissions.hidden_from(h, db)
    if not organizer:  # the server's own folders are nobody else's business
        rows = {name: {k: v for k, v in row.items() if k not in ("source", "path")} for name, row in rows.items()
                if name not in hidden}
    return sorted(rows.values(), key=lambda r: r["name"])


README_CHARS = 200_000


def task_readme(h: Harness, name: str) -> str:
    """A prepared task's README.md, as text (at most README_CHARS; empty when it has none)."""
    with h.tx() as db:
        folder = Path(permissions.task_of(h, db, name).path)
    try:
        with open(folder / "README.md", encoding="utf-8", errors="replace") as fh:
            return fh.read(README_CHARS)
    except OSError:
        return ""


def _hashes(folder: Path) -> tuple[str | None, str | None]:
    evaluator, test = layout.evaluator(folder), layout.split_dir(folder, dry_run=False)
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


def _register(h: Harness, manifest: registry.Manifest, path: Path, action: str,
              old: tuple[str | None, str | None]) -> None:
    new = _hashes(path)
    with h.tx() as db:
        h.register_task(db, manifest, path)
        db.add(TaskChange(task=manifest.name, action=action, user=h.settings.user, path=str(path),
                          old_evaluator=old[0], new_evaluator=new[0], old_data=old[1], new_data=new[1]))


def add_pack(h: Harness, folder: Path, replace: bool = False, name: str | None = None, metric: str | None = None,
             direction: str | None = None, echo=None) -> registry.Manifest:
    """`dataset add`: register a pack already in NSML layout, where it is. ECHO gets what the organizer should
    know of it (a task.toml written, an older loader fed by NSML's default)."""
    permissions.require_organizer(h.settings, "dataset add")
    refuse_pack_holding(folder, h.settings.root)
    had_manifest = (folder / registry.MANIFEST).exists()
    manifest = registry.add_existing(folder, name, metric, direction)
    call = evaluator_call.detect(folder.resolve(), manifest)
    evaluator_call.check_runnable(call, str(layout.evaluator(folder)),
                                  bool(evaluator_call.requirement_files(folder.resolve(), manifest)))
    evaluator_call.with_environment(call, folder.resolve(), manifest, h.settings.envs_dir)  # once, now
    checks = pack_checks(h, folder.resolve())
    failed = [r for r in checks if not r["ok"]]
    if failed:  # the same checks as `dataset check`: a pack that cannot score is refused, not blamed on entries
        raise UserError(f"{folder}: " + "; ".join(f"{r['check']}: {r['detail']}" for r in failed))
    existing = _registered(h, manifest.name)
    _refuse_silent_replace(existing, manifest.name, replace)
    if existing:
        check_ladder_rounds(h, manifest.name, manifest.metric, folder.resolve())
    old = _hashes(Path(existing.path)) if existing else (None, None)
    _register(h, manifest, folder.resolve(), "replace" if existing else "add", old)
    if echo:
        if not had_manifest:
            echo(f"Note: wrote {folder.resolve() / registry.MANIFEST} (from --name, --metric, --direction)")
        if any(r["check"] == "loader" and r["detail"] == registry.LEGACY_FEED for r in checks):
            echo(f"Note: {layout.LOADER} is {registry.LEGACY_FEED}")
    return manifest


def prepare_builtin(h: Harness, name: str, scale: float = 1.0, seed: int = 0, corpus: list[str] | None = None,
                    replace: bool = False) -> tuple[registry.Manifest, Path]:
    """`dataset prepare`: build a built-in task's data and register it."""
    permissions.require_organizer(h.settings, "dataset prepare")
    existing = _registered(h, name)
    _refuse_silent_replace(existing, name, replace)
    old = _hashes(Path(existing.path)) if existing else (None, None)
    check = (lambda built: check_ladder_rounds(h, name, registry.Manifest.read(built).metric, built,
                                               f"dataset prepare {name}")) if existing else None
    manifest, path = registry.prepare(h.settings, name, scale=scale, seed=seed, corpus=corpus, check=check)
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


def check_pack(h: Harness, ref: str) -> list[dict]:
    """`dataset check TASK|FOLDER`: each check of a pack as a row (check, ok, detail). An organizer command: it
    runs the pack's evaluator on this machine."""
    permissions.require_organizer(h.settings, "dataset check")
    folder = Path(ref)
    if not folder.is_dir():
        with h.tx() as db:
            folder = Path(h.task(db, ref).path)
    return pack_checks(h, folder.resolve())


def pack_checks(h: Harness, folder: Path) -> list[dict]:
    """Layout, loader, manifest, evaluator convention, test_submit; and the evaluator run on test_submit with its
    own labels as the prediction where [split] says labels and predictions share a format."""
    rows = []

    def step(name, fn):
        try:
            detail = fn()
            rows.append({"check": name, "ok": True, "detail": detail or ""})
            return True
        except (UserError, NotFound) as exc:
            rows.append({"check": name, "ok": False, "detail": str(exc)})
            return False

    if not step("layout", lambda: registry.check_layout(folder)):
        return rows
    step("loader", lambda: registry.check_loader(folder))
    manifest = None

    def read_manifest():
        nonlocal manifest
        manifest = registry.Manifest.read(folder)
        return f"{manifest.name}: {manifest.metric}, {manifest.direction.value} is better"
    if not step("manifest", read_manifest):
        return rows
    call = None

    def convention():
        nonlocal call
        call = evaluator_call.detect(folder, manifest)
        evaluator_call.check_runnable(call, str(layout.evaluator(folder)))
        return f"{call.convention}: {layout.EVALUATOR} {' '.join(call.args)}"
    step("evaluator convention", convention)
    def test_submit():
        if not (layout.has_split(folder, dry_run=True) and layout.label_path(folder, dry_run=True).exists()):
            raise UserError("no test_submit/test_data and test_label: `submit -t` cannot run")
    step("test_submit", test_submit)
    if isinstance(manifest.extra, dict) and manifest.extra.get("simulate"):
        step("simulate", lambda: f"{len(simulate_table.from_manifest(manifest.extra, folder, registry.MANIFEST))} "
                                 f"baseline(s) for contest simulate")
    split = manifest.extra.get("split") if isinstance(manifest.extra, dict) else None
    label = layout.label_path(folder, dry_run=True)
    if call is not None and label.is_file() and isinstance(split, dict) \
            and split.get("label") == split.get("prediction", split.get("label")):
        def reference():
            from harness.scoring.evaluator import evaluate
            result = evaluate(layout.evaluator(folder), label, label, h.settings.scorer_time_limit,
                              h.settings.scorer_memory_bytes, call)
            if result.ok:
                return f"scores test_submit's own labels as a prediction: {result.score:g}"
            raise UserError(f"on test_submit's own labels as a prediction: {result.reason.value}: {result.message}")
        step("evaluator on test_submit", reference)
    else:
        rows.append({"check": "evaluator on test_submit", "ok": True,
                     "detail": "skipped: [split] does not say labels and predictions share a format"})
    return rows
