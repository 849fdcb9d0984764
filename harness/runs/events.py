"""A run's events file (written by the in-session `nsml` module) → checkpoint and metric rows, in two steps:

``collect`` reads the file and measures each saved checkpoint folder — outside any database transaction, never
following a link, bounded in bytes, lines and time — passing every line through the one gate
(``runs.event_gate``: typed, bounded reports and checkpoints, nothing else); ``record`` writes what was
collected in the caller's transaction, inside a savepoint, so one run's data can never fail a scheduler pass.
Everything in the file is participant-controlled: a refused line is a note in the run's log (at most
MAX_NOTES_PER_PASS a pass), and the run goes on. A session holds at most MAX_METRIC_ROWS metric values and
MAX_CHECKPOINTS checkpoints, each keeping a copy of at most MAX_SUMMARY_KEYS summary values (the summary is read
once per pass and kept up to date in memory, so a flood of checkpoints never re-reads 100,000 metric rows each).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session as OrmSession

from harness.core.safefs import UnsafeFile, append_note, is_real_dir, read_from
from harness.core.tree_usage import TOO_SLOW, usage
from harness.store.models import Checkpoint, Metric, Run, Session

from . import event_gate

MAX_EVENTS_PER_PASS = 2_000  # per run and scheduler pass: one run's flood never holds a pass for long
MAX_EVENTS_AT_END = 20_000  # the last read, after the run ended
MAX_EVENT_BYTES_PER_PASS = 4 << 20
MAX_METRIC_ROWS = 100_000  # per session: reports past it are refused (one note)
MAX_NOTES_PER_PASS = 10
MAX_CHECKPOINT_ENTRIES = 100_000
MAX_SUMMARY_KEYS = 200  # the summary kept with each checkpoint: the keys reported last
MAX_CHECKPOINTS = 10_000  # per session: checkpoints past it are refused (one note)
CHECKPOINT_SCAN_SECONDS = 10.0
MAX_CHECKPOINTS_PER_PASS = 20  # distinct checkpoints measured in one read; the rest wait for the next pass
SCAN_BUDGET_SECONDS = 0.5  # measuring checkpoints of one run in one read; past it the rest wait
FIRST_SCAN_SECONDS = 1.5  # the first of a read (100,000 entries walk in 0.35 s here; past it: _measure)
SLOW_AGAIN_SECONDS = 30.0  # a checkpoint slow to walk, or moving, while its run runs: not walked again before
MAX_SLOW = 10_000
_SLOW: dict[tuple[str, str], tuple[float, int | str]] = {}  # (run folder, name) → (until when, what it found)
END_SCAN_SECONDS = 20.0  # all the reads after a run ended together (one scheduler pass; its lease is 60 s)
EVENTS_REL = "nsml/events.jsonl"


def events_path(run: Run) -> Path:
    """Where the in-session module appends its events (a folder of its own, so a container can mount it)."""
    return Path(run.run_dir) / EVENTS_REL


def latest_summary(db: OrmSession, session_id: int) -> dict:
    """The session's summary now: each summary key's latest value, the MAX_SUMMARY_KEYS keys reported last."""
    latest = select(func.max(Metric.id)).where(Metric.session_id == session_id, Metric.summary) \
        .group_by(Metric.key).scalar_subquery()
    rows = db.execute(select(Metric.key, Metric.value).where(Metric.id.in_(latest)).order_by(Metric.id.desc())
                      .limit(MAX_SUMMARY_KEYS)).all()
    return {key: value for key, value in reversed(rows)}


def _fold(summary: dict, reports: list) -> None:
    """SUMMARY as it stands after REPORTS (recorded ones), within MAX_SUMMARY_KEYS (the keys reported last)."""
    for report in reports:
        if report.summary:
            for key, value in report.metrics.items():
                summary.pop(key, None)
                summary[key] = value
    while len(summary) > MAX_SUMMARY_KEYS:
        summary.pop(next(iter(summary)))


@dataclass
class Collected:
    """New events of a run, read at [offset, end); a checkpoint comes with its measured size."""

    events: list = field(default_factory=list)  # event_gate.Report | (event_gate.Checkpoint, size)
    end: int = 0
    notes: list[str] = field(default_factory=list)
    refused: int = 0

    def refuse(self, why: str) -> None:
        self.refused += 1
        if self.refused <= MAX_NOTES_PER_PASS:
            self.notes.append(why)


def _measure(ckpt: event_gate.Checkpoint, checkpoint_dir: Path, out: Collected, seconds: float,
             sizes: dict[str, int | str], run_key: str | None) -> None:
    """Record CKPT with its size, measured within SECONDS, or refuse it. SIZES: each name's size or refusal so
    far (across the reads of a run that has ended: never walked twice). While the run runs (RUN_KEY: its folder),
    a walk that ran out of time, or that found it moving, records the checkpoint at what it found (a lower bound),
    and that name is not walked again for SLOW_AGAIN_SECONDS: what it found stands (a run saving such a
    checkpoint pass after pass never holds the passes up for everyone, and an honest save is never lost)."""
    name = ckpt.name
    until, found = _SLOW.get((run_key, name), (0.0, 0)) if run_key else (0.0, 0)
    if name not in sizes and time.monotonic() < until:
        sizes[name] = found
    elif name not in sizes:
        used = usage(checkpoint_dir / name, MAX_CHECKPOINT_ENTRIES, seconds) \
            if is_real_dir(checkpoint_dir / name) else None
        slow = run_key is not None and used is not None and not used.complete and (used.why == TOO_SLOW or used.moved)
        sizes[name] = f"{name!r} is not a folder of the session (links are refused)" if used is None else \
            used.size if used.complete or slow else f"{name!r} cannot be measured: {used.why}"
        if slow:
            if len(_SLOW) >= MAX_SLOW:
                _SLOW.clear()
            _SLOW[(run_key, name)] = (time.monotonic() + SLOW_AGAIN_SECONDS, sizes[name])
    if isinstance(sizes[name], str):
        out.refuse(f"checkpoint refused: {sizes[name]}")
    else:
        out.events.append((ckpt, sizes[name]))


def collect(run_dir: Path, offset: int, checkpoint_dir: Path | None, max_events: int = MAX_EVENTS_PER_PASS,
            ended: dict[str, int | str] | None = None) -> Collected:
    """Read complete new lines of the events file from OFFSET (no links, no FIFOs, bounded per pass). While the
    run runs, its checkpoints are measured within SCAN_BUDGET_SECONDS a read (the first within FIRST_SCAN_SECONDS:
    _measure); ENDED (what was measured so far, collect_all) when it has ended: each name within
    CHECKPOINT_SCAN_SECONDS, once."""
    out = Collected(end=offset)
    try:
        data = read_from(Path(run_dir), EVENTS_REL, offset, MAX_EVENT_BYTES_PER_PASS)
    except FileNotFoundError:
        return out
    except UnsafeFile as exc:
        out.notes.append(f"events file ignored: {exc}")
        return out
    except OSError as exc:  # whatever a run's file does, one run's events never fail the scheduler's pass
        out.notes.append(f"events file not read now: {exc.strerror or type(exc).__name__}")
        return out
    cut = data.rfind(b"\n")
    if cut < 0:
        if len(data) >= MAX_EVENT_BYTES_PER_PASS:  # one line longer than a pass: skip it
            out.end = offset + len(data)
            out.refuse(f"event refused: a line over {MAX_EVENT_BYTES_PER_PASS} bytes")
        return out
    measured: set[str] = set()  # a name saved again in the same read is measured once
    sizes = {} if ended is None else ended
    started = time.monotonic()
    for line in data[:cut].split(b"\n")[:max_events]:
        out.end += len(line) + 1
        if not line.strip():
            continue
        try:
            event = event_gate.parse(line)
        except event_gate.Refused as exc:
            out.refuse(str(exc))
            continue
        if isinstance(event, event_gate.Checkpoint):
            if checkpoint_dir is not None and event.name not in measured:
                left = CHECKPOINT_SCAN_SECONDS if ended is not None else FIRST_SCAN_SECONDS if not measured \
                    else SCAN_BUDGET_SECONDS - (time.monotonic() - started)
                if len(measured) >= MAX_CHECKPOINTS_PER_PASS or left <= 0:
                    out.end -= len(line) + 1  # this line and the rest wait for the next pass
                    break
                _measure(event, checkpoint_dir, out, left, sizes, None if ended is not None else str(run_dir))
                measured.add(event.name)
            continue
        out.events.append(event)
    if out.refused > MAX_NOTES_PER_PASS:
        out.notes.append(f"... and {out.refused - MAX_NOTES_PER_PASS} more events refused in this pass")
    return out


def collect_all(run_dir: Path, offset: int, checkpoint_dir: Path | None, max_reads: int = 50,
                beat=lambda: None) -> Collected:
    """Everything left in the events file of a run that has ended, read after read (each bounded as above), so
    that nothing it reported last is lost; MAX_READS and END_SCAN_SECONDS (all reads together) bound a file that
    a flood filled or checkpoints that take long to measure: past them the rest is dropped with a note. BEAT is
    called between reads (the scheduler renews its runs' heartbeats there)."""
    deadline = time.monotonic() + END_SCAN_SECONDS
    sizes: dict[str, int | str] = {}  # (the run has ended: a name is walked once, however often it was saved)
    for key in [key for key in _SLOW if key[0] == str(run_dir)]:  # (what was slow while it ran: walked whole now)
        _SLOW.pop(key, None)
    out = collect(run_dir, offset, checkpoint_dir, MAX_EVENTS_AT_END, sizes)
    for _ in range(max_reads - 1):
        beat()
        if time.monotonic() > deadline:
            out.notes.append(f"events after this point were not recorded: measuring the run's checkpoints took "
                             f"over {END_SCAN_SECONDS:g} s")
            break
        more = collect(run_dir, out.end, checkpoint_dir, MAX_EVENTS_AT_END, sizes)
        if more.end == out.end:
            out.notes += [n for n in more.notes if n not in out.notes]
            break
        out.events += more.events
        out.notes += more.notes
        out.refused += more.refused
        out.end = more.end
    return out


def _record_checkpoint(db: OrmSession, sess: Session, ckpt: event_gate.Checkpoint, size: int, summary: dict,
                       room: list[int], notes: list[str]) -> None:
    """One checkpoint's row, with a copy of SUMMARY; a new name takes one of ROOM[0] (MAX_CHECKPOINTS)."""
    row = db.scalar(select(Checkpoint).where(Checkpoint.session_id == sess.id, Checkpoint.name == ckpt.name))
    if row is None:
        if room[0] <= 0:
            if room[0] == 0:
                notes.append(f"checkpoint refused: the session holds {MAX_CHECKPOINTS} checkpoints, its limit")
                room[0] -= 1
            return
        room[0] -= 1
        row = Checkpoint(session_id=sess.id, name=ckpt.name)
        db.add(row)
    row.size, row.elapsed, row.modified_at = size, ckpt.elapsed, ckpt.at
    row.summary = dict(summary)


def _record_reports(db: OrmSession, sess: Session, reports: list, notes: list[str]) -> list:
    """Record REPORTS within MAX_METRIC_ROWS; returns the ones recorded."""
    if not reports:
        return []
    have = db.scalar(select(func.count()).select_from(Metric).where(Metric.session_id == sess.id)) or 0
    room, rows, taken = MAX_METRIC_ROWS - have, [], []
    for report in reports:
        if len(report.metrics) > room:
            notes.append(f"reports refused: the session holds {MAX_METRIC_ROWS} metric values, its limit")
            break
        room -= len(report.metrics)
        taken.append(report)
        rows += [{"session_id": sess.id, "key": key, "value": value, "raw": value, "step": report.step,
                  "scope": report.scope, "summary": report.summary, "created_at": report.at}
                 for key, value in report.metrics.items()]
    if rows:
        db.execute(insert(Metric), rows)
    return taken


def record(db: OrmSession, run: Run, sess: Session | None, got: Collected) -> int:
    """Write collected events in the caller's transaction, inside a savepoint: events the store refuses anyway
    are dropped with a note and never fail the caller's pass. Returns how many were recorded."""
    notes = list(got.notes)
    if sess is None:  # its session was removed (`rm`) while the run was still stopping: nothing to record into
        run.events_offset = max(run.events_offset or 0, got.end)
        return 0
    try:
        with db.begin_nested():
            pending: list = []
            summary: dict | None = None  # read once, then kept up to date with the reports recorded after
            room: list[int] = []
            for event in got.events:
                if isinstance(event, event_gate.Report):
                    pending.append(event)
                    continue
                taken = _record_reports(db, sess, pending, notes)
                pending = []
                if summary is None:
                    db.flush()
                    summary = latest_summary(db, sess.id)
                    room.append(MAX_CHECKPOINTS - (db.scalar(select(func.count()).select_from(Checkpoint)
                                                             .where(Checkpoint.session_id == sess.id)) or 0))
                else:
                    _fold(summary, taken)
                _record_checkpoint(db, sess, *event, summary, room, notes)
            _record_reports(db, sess, pending, notes)
            db.flush()
        recorded = len(got.events)
    except (DataError, IntegrityError) as exc:  # the data itself; a locked or lost database fails the pass (retried)
        notes.append(f"events of this pass were not recorded: the store refused them ({type(exc).__name__})")
        recorded = 0
    run.events_offset = max(run.events_offset or 0, got.end)
    for note in notes:
        append_note(Path(run.log_path), note)
    return recorded
