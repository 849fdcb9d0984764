"""Provenance of a scored submission: what code, environment, data and evaluator produced its score."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from harness.taskpacks import layout

_CACHE: dict[tuple, str] = {}
_LOCK = threading.Lock()


def tree_hash(folder: Path) -> str:
    """sha256 over every file's relative path and content, in path order (a file alone: its content)."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    signature = tuple((str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()])
    with _LOCK:
        if signature in _CACHE:
            return _CACHE[signature]
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(folder) if p != folder else p.name).encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    value = "sha256:" + digest.hexdigest()
    with _LOCK:
        _CACHE[signature] = value
    return value


def grading(dataset: Path, dry_run: bool) -> dict:
    """What graded a prediction: the split's test data and the evaluator (a rescore records these again)."""
    return {"data": tree_hash(layout.split_dir(dataset, dry_run)), "evaluator": tree_hash(layout.evaluator(dataset))}


def record(code_dir: Path, dataset: Path, dry_run: bool, environment: str | None, runtime: str) -> dict:
    """Everything that determined a score, except the prediction itself (kept in the run folder)."""
    return {"code": tree_hash(code_dir), "runtime": runtime, "environment": environment,
            **grading(dataset, dry_run)}
