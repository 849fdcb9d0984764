"""A run's events file (written by the in-session `nsml` module) → checkpoint and metric rows, in two steps:

``collect`` reads the file and measures each saved checkpoint folder — outside any database transaction, never
following a link, bounded in bytes, entries and time; ``record`` writes what was collected in the caller's
transaction.  Everything in the file is participant-controlled: a checkpoint whose name is not one safe path
component, or whose folder is a link or too large to measure, is refused with a note in the run's log, and the
run goes on.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from harness.core.safefs import UnsafeFile, append_note, checkpoint_name_problem, is_real_dir, read_from, usage
from harness.store.models import Checkpoint, Metric, Run, Session

MAX_EVENTS_PER_PASS = 10_000
MAX_EVENT_BYTES_PER_PASS = 4 << 20
MAX_CHECKPOINT_ENTRIES = 100_000
CHECKPOINT_SCAN_SECONDS = 10.0
EVENTS_REL = "nsml/events.jsonl"


def _as_float(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    return None


def _ts(event) -> datetime:
    try:
        return datetime.fromtimestamp(float(event["time"]), tz=timezone.utc).replace(tzinfo=None)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return datetime.now(timezone.utc).replace(tzinfo=None)


def events_path(run: Run) -> Path:
    """Where the in-session module appends its events (a folder of its own, so a container can mount it)."""
    return Path(run.run_dir) / EVENTS_REL


def latest_summary(db: OrmSession, session_id: int) -> dict:
    rows = db.execute(select(Metric.key, Metric.raw).where(Metric.session_id == session_id, Metric.summary)
                      .order_by(Metric.id)).all()
    return {key: raw for key, raw in rows}


@dataclass
class Collected:
    """New events of a run, read at [offset, end); checkpoint events carry their measured size."""

    events: list[dict] = field(default_factory=list)
    end: int = 0
    notes: list[str] = field(default_factory=list)


def _checkpoint(event: dict, checkpoint_dir: Path, notes: list[str]) -> dict | None:
    name = event.get("name")
    problem = checkpoint_name_problem(name)
    if problem is None and not is_real_dir(checkpoint_dir / name):
        problem = f"checkpoint {name!r} is not a folder in the session's checkpoint folder (links are refused)"
    if problem is None:
        used = usage(checkpoint_dir / name, MAX_CHECKPOINT_ENTRIES, CHECKPOINT_SCAN_SECONDS)
        if not used.complete:
            problem = f"checkpoint {name!r} has over {MAX_CHECKPOINT_ENTRIES} entries"
        else:
            return {**event, "name": name, "_size": used.size}
    notes.append(f"checkpoint refused: {problem}")
    return None


def collect(run_dir: Path, offset: int, checkpoint_dir: Path | None) -> Collected:
    """Read complete new lines of the events file from OFFSET (no links, no FIFOs, bounded per pass)."""
    out = Collected(end=offset)
    try:
        data = read_from(Path(run_dir), EVENTS_REL, offset, MAX_EVENT_BYTES_PER_PASS)
    except FileNotFoundError:
        return out
    except UnsafeFile as exc:
        out.notes.append(f"events file ignored: {exc}")
        return out
    cut = data.rfind(b"\n")
    if cut < 0:
        if len(data) >= MAX_EVENT_BYTES_PER_PASS:  # one line longer than a pass: skip it
            out.end = offset + len(data)
            out.notes.append(f"an event line over {MAX_EVENT_BYTES_PER_PASS} bytes was skipped")
        return out
    for line in data[: cut + 1].splitlines()[:MAX_EVENTS_PER_PASS]:
        out.end += len(line) + 1
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("type") == "checkpoint":
            event = _checkpoint(event, checkpoint_dir, out.notes) if checkpoint_dir else None
            if event is None:
                continue
        out.events.append(event)
    return out


def _record_checkpoint(db: OrmSession, sess: Session, event: dict) -> None:
    name = event["name"]
    ckpt = db.scalar(select(Checkpoint).where(Checkpoint.session_id == sess.id, Checkpoint.name == name))
    if ckpt is None:
        ckpt = Checkpoint(session_id=sess.id, name=name)
        db.add(ckpt)
    ckpt.size = int(event["_size"])
    ckpt.elapsed = _as_float(event.get("elapsed")) or 0.0
    ckpt.modified_at = _ts(event)
    db.flush()
    ckpt.summary = latest_summary(db, sess.id)


def _record_report(db: OrmSession, sess: Session, event: dict) -> None:
    metrics = event.get("metrics")
    if not isinstance(metrics, dict):
        return
    step = event.get("step")
    step = step if isinstance(step, int) and not isinstance(step, bool) and abs(step) < 2 ** 31 else None
    scope = event.get("scope") if isinstance(event.get("scope"), str) else None
    for key, value in list(metrics.items())[:1000]:
        db.add(Metric(session_id=sess.id, key=str(key)[:256], value=_as_float(value), raw=value, step=step,
                      scope=scope and scope[:128], summary=bool(event.get("summary")), created_at=_ts(event)))


def record(db: OrmSession, run: Run, sess: Session, got: Collected) -> int:
    """Write collected events in the caller's transaction; returns how many were recorded."""
    for event in got.events:
        if event.get("type") == "report":
            _record_report(db, sess, event)
        elif event.get("type") == "checkpoint":
            db.flush()
            _record_checkpoint(db, sess, event)
    run.events_offset = max(run.events_offset or 0, got.end)
    for note in got.notes:
        append_note(Path(run.log_path), note)
    return len(got.events)



LOADER_ERROR_EXIT = 86  # the in-session module's exit code when the task's loader failed (nsml.LOADER_ERROR_EXIT)


def loader_error(run_dir: Path) -> str | None:
    """The message of a loader_error event a submit run left, if any."""
    got = collect(Path(run_dir), 0, None)
    found = [e for e in got.events if e.get("type") == "loader_error"]
    return str(found[-1].get("message", ""))[:500] if found else None
