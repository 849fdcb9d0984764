"""The fast reads of `ps` and `board`: on an SQLite store whose schema is current and where nothing needs
recovering, stdlib sqlite3 through store.quick (no SQLAlchemy is imported). Each returns None where the library
must answer instead (a run to recover, an old schema, an unknown task, a round's task); the rows are the same
either way (store.listing builds both). Only the caller's own sessions are read; boards are public."""
from __future__ import annotations

from harness.store import listing
from harness.store.quick import QuickReader


def title(task: str, metric: str, direction: str) -> str:
    return f"{task} — {metric} ({direction} is better)"


def quick_sessions(settings, all_, last, task):
    """The sessions by the quick path, or None where the library must answer (recovery, an unknown task)."""
    reader = QuickReader.open(settings)
    if reader is None:
        return None
    try:
        task_id = None
        if task:
            found = listing.task_of(reader.rows, task)
            if found is None:
                return None  # the library says why ("not prepared yet", "did you mean")
            task_id = found[0]
        uid = listing.user_id(reader.rows, settings.user)
        return [] if uid is None else listing.session_rows(reader.rows, uid, task_id, all_, last)
    finally:
        reader.close()


def quick_board(settings, task):
    """(title, rows) by the quick path, or None where the library must answer (a round's task, errors)."""
    reader = QuickReader.open(settings)
    if reader is None:
        return None
    try:
        found = listing.task_of(reader.rows, task)
        if found is None or listing.in_a_round(reader.rows, task):
            return None
        task_id, metric, direction = found
        return title(task, metric, direction.value), listing.board_rows(reader.rows, task_id, direction)
    finally:
        reader.close()
