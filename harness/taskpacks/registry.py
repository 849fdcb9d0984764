"""Task packs: the manifest, the registry of built-in and installed packs, and building a pack's data.

A task *source* is a folder with ``task.toml``, ``data_loader.py``, ``evaluation.py`` and, for generated tasks,
a builder script.  A *prepared* task is a folder in NSML's dataset layout (train/, test/, test_submit/,
data_loader.py, evaluation.py, task.toml).  Built-in sources live in the repository's ``tasks/``; other packages
add theirs through the ``harness.tasks`` entry point group (a callable returning the source folder).
"""
from __future__ import annotations

import ast
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from harness import resources
from harness.core import schema
from harness.core.enums import Direction
from harness.core.errors import NotFound, UserError
from harness.core.settings import Settings, read_toml
from harness.core.sizes import parse_size

from . import layout

MANIFEST = "task.toml"
BUILTIN_TASKS = resources.TASKS
ENTRY_POINT_GROUP = "harness.tasks"
_READ: dict[Path, tuple[tuple, "Manifest"]] = {}
REQUIRED = layout.REQUIRED


@dataclass
class Manifest:
    name: str
    title: str = ""
    metric: str = "score"
    direction: Direction = Direction.HIGHER
    builder: str | None = None
    session_seconds: float | None = None
    submit_seconds: float | None = None
    scorer_seconds: float | None = None
    cpus: float | None = None  # [limits] cpus: a run's CPU cores when `-c` does not say (else 1)
    memory: int | None = None  # [limits] memory: a run's memory limit ("16G"), which --memory may lower
    submit_quota: int = 1
    submit_period: float = 3600.0
    image: str | None = None  # default container image for this task's sessions
    network: bool = False  # whether participant code may use the network (container runtimes)
    source_builds: bool = False  # whether session requirements may build from source (default: wheels only)
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        """The manifest of FOLDER, parsed once per version of the file in a process (a submit reads it in the
        service, the spec and the grade: one parse, while an edited file is read again)."""
        path = Path(folder) / MANIFEST
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFound(f"{path}: no task manifest") from None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = _READ.get(path)
        if cached is not None and cached[0] == key:
            return replace(cached[1])
        manifest = cls._parse(Path(folder), path)
        _READ[path] = (key, manifest)
        return replace(manifest)

    @classmethod
    def _parse(cls, folder: Path, path: Path) -> "Manifest":
        try:
            data = read_toml(path)
        except FileNotFoundError:
            raise NotFound(f"{path}: no task manifest") from None
        schema.check(data, schema.TASK, str(path))
        name = data.get("name") or folder.name
        direction = Direction.parse(data.get("direction", "higher"), str(path))
        limits, submit = data.get("limits", {}), data.get("submit", {})
        try:
            return cls(name=name, title=data.get("title", ""), metric=data.get("metric", "score"),
                       direction=direction, builder=data.get("builder"),
                       session_seconds=_opt_float(limits.get("session_seconds")),
                       submit_seconds=_opt_float(limits.get("submit_seconds")),
                       scorer_seconds=_opt_float(limits.get("scorer_seconds")),
                       cpus=_opt_float(limits.get("cpus")),
                       memory=parse_size(limits.get("memory"), f"{path}: [limits] memory"),
                       submit_quota=int(submit.get("quota", 1)),
                       submit_period=float(submit.get("period_seconds", 3600)),
                       image=data.get("image"), network=bool(data.get("network", False)),
                       source_builds=bool(data.get("source_builds", False)), extra=data)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}: invalid value: {exc}") from None


def _opt_float(value):
    return None if value is None else float(value)


def _entry_point_sources() -> dict[str, Path]:
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep  # loaded lazily in source_folder()
    return found


@lru_cache(maxsize=None)
def _builtin_sources() -> dict[str, Path]:
    if not BUILTIN_TASKS.is_dir():
        return {}
    return {p.name: p for p in sorted(BUILTIN_TASKS.iterdir()) if (p / MANIFEST).exists()}


def known_sources(settings: Settings) -> dict[str, object]:
    """Every task source by name: built-ins, folders from settings, then entry points."""
    sources: dict[str, object] = dict(_builtin_sources())
    for folder in settings.extra_task_paths:
        for p in sorted(Path(folder).glob(f"*/{MANIFEST}")):
            sources.setdefault(p.parent.name, p.parent)
    for name, ep in _entry_point_sources().items():
        sources.setdefault(name, ep)
    return sources


def source_folder(settings: Settings, name: str) -> Path:
    sources = known_sources(settings)
    if name not in sources:
        raise NotFound(unknown_task_message(name, sources))
    src = sources[name]
    if not isinstance(src, Path):  # an entry point: a callable returning the folder
        src = Path(src.load()())
    return src


def unknown_task_message(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(sorted(candidates)) or "none"
    return f"unknown task {name!r}.{hint} (known: {listed})"


def check_layout(folder: Path) -> None:
    missing = [rel for rel in REQUIRED if not (folder / rel).exists()]
    if missing:
        raise UserError(f"{folder}: not a task pack in NSML layout, missing {', '.join(missing)}")


def prepare(settings: Settings, name: str, scale: float = 1.0, seed: int = 0,
            corpus: list[str] | None = None, check=None) -> tuple[Manifest, Path]:
    """Build a built-in task's data into the state root, deterministically. Returns the prepared folder. CHECK
    (the built folder → None, or a UserError) runs before the build replaces anything."""
    src = source_folder(settings, name)
    manifest = Manifest.read(src)
    dest = settings.datasets_dir / manifest.name
    settings.ensure_dirs()
    staging = Path(tempfile.mkdtemp(prefix=f".{manifest.name}.", dir=settings.datasets_dir))
    try:
        if manifest.builder:
            cmd = [sys.executable, str(src / manifest.builder), "--out", str(staging), "--scale", str(scale),
                   "--seed", str(seed)]
            for path in corpus or []:
                cmd += ["--corpus", str(Path(path).resolve())]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                lines = (proc.stderr or proc.stdout).strip().splitlines()
                raise UserError(f"{src / manifest.builder}: build failed: {lines[-1] if lines else proc.returncode}")
        elif corpus:
            raise UserError(f"--corpus: task {name!r} has no builder")
        else:
            for child in src.iterdir():
                if child.is_dir():
                    shutil.copytree(child, staging / child.name)
        for f in (MANIFEST, layout.LOADER, layout.EVALUATOR, "README.md"):
            if (src / f).exists():
                shutil.copy2(src / f, staging / f)
        check_layout(staging)
        if check is not None:
            check(staging)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest, dest


def check_loader(folder: Path) -> str:
    """data_loader.py defines feed_infer(output_file, infer_func), or — an older published loader — only
    test_data_loader(root), which submits feed through NSML's default (nsml.legacy). Returns which, in words."""
    path = layout.loader(folder)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: does not parse: {exc.msg}") from None
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def takes(node, n):
        return len(node.args.args) >= n or node.args.vararg is not None

    if "feed_infer" in functions:
        node = functions["feed_infer"]
        if not takes(node, 2):
            raise UserError(f"{path}:{node.lineno}: feed_infer must take (output_file, infer_func)")
        return "feed_infer(output_file, infer_func) is defined"
    if "test_data_loader" in functions:
        node = functions["test_data_loader"]
        if not takes(node, 1):
            raise UserError(f"{path}:{node.lineno}: test_data_loader must take (root)")
        return LEGACY_FEED
    raise UserError(f"{path}: neither feed_infer(output_file, infer_func) nor test_data_loader(root) (it defines: "
                    f"{', '.join(sorted(functions)) or 'nothing'})")


LEGACY_FEED = ("an older loader: no feed_infer, so submits get NSML's default: infer(test_data_loader("
               "DATASET_PATH)), one prediction per line (the label of a (confidence, label) pair)")


def write_manifest(folder: Path, name: str, metric: str, direction: str) -> None:
    """`dataset add PACK --name --metric --direction`: the manifest of a plain NSML pack."""
    direction = Direction.parse(direction, "--direction").value
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name):
        raise UserError(f"--name: {name!r} is not a task name (letters, digits, '_', '.', '-')")
    (folder / MANIFEST).write_text(f'name = "{name}"\nmetric = {json.dumps(metric)}\ndirection = "{direction}"\n',
                                   encoding="utf-8")


def add_existing(folder: Path, name: str | None = None, metric: str | None = None,
                 direction: str | None = None) -> Manifest:
    """Check a folder already in NSML layout so that it can be registered as-is (writing its manifest first
    when it has none and --name/--metric/--direction say what to write)."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise NotFound(f"{folder}: no such folder")
    given = any(v is not None for v in (name, metric, direction))
    if (folder / MANIFEST).exists() and given:  # the same flags again (a second add of a plain pack) agree
        have = Manifest.read(folder)
        for flag, want, got in (("--name", name, have.name), ("--metric", metric, have.metric),
                                ("--direction", direction, have.direction.value)):
            if want is not None and want != got:
                raise UserError(f"{flag}: {want!r}, but {folder / MANIFEST} says {got!r}: edit the file rather "
                                f"than pass --name/--metric/--direction")
    check_layout(folder)
    check_loader(folder)
    if not (folder / MANIFEST).exists():
        if not given:
            raise UserError(f"{folder}: no {MANIFEST}; pass --name, --metric and --direction higher|lower to "
                            f"write one")
        write_manifest(folder, name or folder.name, metric or "score", direction or "higher")
    return Manifest.read(folder)
