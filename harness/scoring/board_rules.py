"""The board rules in SQLAlchemy terms, for the library's own queries (history, score history, quotas): a valid
score, counted submits (core.enums.counted), and the per-user board of a task. The boards themselves are SQL
text in store.read_sql, shared by the quick reads and the library."""
from __future__ import annotations

from harness.core.enums import HARNESS_FAULTS
from harness.store import read_sql
from harness.store.models import Submission
from harness.store.quick import sa_rows


def valid_score(column, db):
    """A real score: not NULL and, on PostgreSQL, not NaN (SQLite stores NaN as NULL). NaN never ranks."""
    cond = column.is_not(None)
    if db.get_bind().dialect.name == "postgresql":
        cond = cond & (column != float("nan"))
    return cond


def counted_clause():
    """Counts against the quota and on boards: not a dry run, not failed through the harness's fault."""
    return Submission.dry_run.is_(False) & (Submission.reason.is_(None) | Submission.reason.not_in(HARNESS_FAULTS))


def user_board(db, task) -> list[dict]:
    """The per-user board of a task (its submissions made outside contest rounds: rounds rank teams)."""
    rows_fn = sa_rows(db)
    rows = read_sql.board_rows(rows_fn, task.id, task.direction)
    from .board_ties import mark_board
    mark_board(rows, rows_fn, task.direction, "rank", "submission")
    return rows
