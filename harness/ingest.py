"""Read a run's events file (written by the in-session `nsml` module) into checkpoints and metrics rows."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from .db.models import Checkpoint, Metric, Run, Session
from .workspace import tree_size

MAX_EVENTS_PER_PASS = 10_000


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
    return Path(run.run_dir) / "nsml" / "events.jsonl"


def latest_summary(db: OrmSession, session_id: int) -> dict:
    rows = db.execute(select(Metric.key, Metric.raw).where(Metric.session_id == session_id, Metric.summary)
                      .order_by(Metric.id)).all()
    return {key: raw for key, raw in rows}


def _record_checkpoint(db: OrmSession, sess: Session, event: dict) -> None:
    name = str(event.get("name", ""))
    folder = Path(sess.checkpoint_dir) / name
    if not name or not folder.is_dir():
        return
    ckpt = db.scalar(select(Checkpoint).where(Checkpoint.session_id == sess.id, Checkpoint.name == name))
    if ckpt is None:
        ckpt = Checkpoint(session_id=sess.id, name=name)
        db.add(ckpt)
    ckpt.size = tree_size(folder)
    ckpt.elapsed = float(event.get("elapsed") or 0.0)
    ckpt.modified_at = _ts(event)
    db.flush()
    ckpt.summary = latest_summary(db, sess.id)


def _record_report(db: OrmSession, sess: Session, event: dict) -> None:
    metrics = event.get("metrics") or {}
    step = event.get("step")
    step = step if isinstance(step, int) and not isinstance(step, bool) else None
    for key, value in metrics.items():
        db.add(Metric(session_id=sess.id, key=str(key)[:256], value=_as_float(value), raw=value, step=step,
                      scope=event.get("scope"), summary=bool(event.get("summary")), created_at=_ts(event)))


def ingest_events(db: OrmSession, run: Run, sess: Session) -> int:
    """Read new complete lines of the run's events file; returns how many events were recorded."""
    path = events_path(run)
    try:
        with open(path, "rb") as fh:
            fh.seek(run.events_offset)
            data = fh.read()
    except FileNotFoundError:
        return 0
    end = data.rfind(b"\n")
    if end < 0:
        return 0
    count = 0
    for line in data[: end + 1].splitlines()[:MAX_EVENTS_PER_PASS]:
        run.events_offset += len(line) + 1
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("type") == "report":
            _record_report(db, sess, event)
        elif event.get("type") == "checkpoint":
            db.flush()
            _record_checkpoint(db, sess, event)
        count += 1
    return count
