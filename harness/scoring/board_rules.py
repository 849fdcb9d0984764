"""What counts on a board, in SQL: a valid score, the best first by the task's direction, counted submits
(not a dry run, not failed through the harness's fault), and the per-user board of a task (its SQL text in
store.listing, shared with the quick reads)."""
from __future__ import annotations

from sqlalchemy import func, select

from harness.core.enums import HARNESS_FAULTS, Direction
from harness.store import read_sql
from harness.store.models import Submission
from harness.store.quick import sa_rows


def valid_score(column, db):
    """A real score: not NULL and, on PostgreSQL, not NaN (SQLite stores NaN as NULL). NaN never ranks."""
    cond = column.is_not(None)
    if db.get_bind().dialect.name == "postgresql":
        cond = cond & (column != float("nan"))
    return cond


def best_first(column, direction: Direction):
    return column.desc() if direction.sql_order == "DESC" else column.asc()


def counted_clause():
    """Counts against the quota and on boards: not a dry run, not failed through the harness's fault."""
    return Submission.dry_run.is_(False) & (Submission.reason.is_(None) | Submission.reason.not_in(HARNESS_FAULTS))


def tally(where, key):
    """Per competitor (KEY: the user or team column) among the submissions WHERE selects: counted submits and
    the time of the last counted one, by one GROUP BY."""
    return (select(key.label("who"), func.count().label("submits"), func.max(Submission.created_at).label("last"))
            .where(where, counted_clause()).group_by(key).subquery())


def user_board(db, task) -> list[dict]:
    """The per-user board of a task (its submissions made outside contest rounds: rounds rank teams)."""
    return read_sql.board_rows(sa_rows(db), task.id, task.direction)
