"""Per-task leaderboard: each user's best valid score, ordered by the task's direction."""
from __future__ import annotations

from sqlalchemy import func, select

from . import listing, permissions
from .context import Harness
from .db.quick import sa_rows
from .db.models import Round, Run, Submission
from .enums import Direction, FailureReason, RunStatus
from .errors import UserError


def valid_score(column, db):
    """A real score: not NULL and, on PostgreSQL, not NaN (SQLite stores NaN as NULL). NaN never ranks."""
    cond = column.is_not(None)
    if db.get_bind().dialect.name == "postgresql":
        cond = cond & (column != float("nan"))
    return cond


def best_first(column, direction: Direction):
    return column.desc() if direction is Direction.HIGHER else column.asc()


def counted_clause():
    """Counts against the quota and on boards: not a dry run, not failed through the harness's fault."""
    faults = [r for r in FailureReason if r.harness_fault]
    return Submission.dry_run.is_(False) & (Submission.reason.is_(None) | Submission.reason.not_in(faults))


def tally(where, key):
    """Per competitor (KEY: the user or team column) among the submissions WHERE selects: counted submits and
    the time of the last counted one, by one GROUP BY."""
    return (select(key.label("who"), func.count().label("submits"), func.max(Submission.created_at).label("last"))
            .where(where, counted_clause()).group_by(key).subquery())


def board(h: Harness, task_name: str) -> list[dict]:
    """Rank, user, score, session, checkpoint, submits, last submit. Ties share a rank; earlier first."""
    with h.tx() as db:
        return user_board(db, h.task(db, task_name))


def user_board(db, task) -> list[dict]:
    """The per-user board of a task (its submissions made outside contest rounds: rounds rank teams)."""
    return listing.board_rows(sa_rows(db), task.id, task.direction)


HISTORY_PAGE = 50


def history(h: Harness, task_name: str, user: str | None = None, page: int = 1,
            per_page: int | None = None) -> list[dict]:
    """A user's own submissions to a task, newest first (failed and dry runs included), a page at a time
    (PER_PAGE None: all); organizers also see each one's provenance (code, environment, data and evaluator
    hashes). One query: the run's spec and the round's state are joined in."""
    if page < 1:
        raise UserError(f"--page: must be 1 or more, got {page}")
    if per_page is not None and per_page < 1:
        raise UserError(f"--per-page: must be 1 or more, got {per_page}")
    with h.tx() as db:
        task = h.task(db, task_name)
        if user is not None:
            permissions.require_owner(h.settings, user, f"the history of {user}")
        me = h.user(db, user)
        query = (select(Submission, Run.spec, Round.closed_at, Round.id)
                 .join(Run, Run.id == Submission.run_id).outerjoin(Round, Round.id == Submission.round_id)
                 .where(Submission.task_id == task.id, Submission.user_id == me.id)
                 .order_by(Submission.id.desc()))
        if per_page is not None:
            query = query.limit(per_page).offset((page - 1) * per_page)
        rows = []
        for s, spec, closed_at, round_id in db.execute(query):
            row = {"id": s.id, "session": s.session_name, "checkpoint": s.checkpoint, "dry_run": s.dry_run,
                   "status": s.status.value, "reason": s.reason.value if s.reason else None, "score": s.score,
                   "message": s.message, "created": s.created_at.isoformat(timespec="seconds"),
                   "selected": s.selected, "reserved_flags": (spec or {}).get("reserved_flags")}
            if round_id is not None and (h.settings.is_organizer or closed_at is not None):
                row["private_score"] = s.private_score
            if h.settings.is_organizer:
                row["provenance"] = s.provenance
            elif s.reason is FailureReason.SCORER_ERROR and not s.dry_run:
                row["message"] = "the task's evaluator failed (not counted; organizers see why)"
            rows.append(row)
        return rows


def history_count(h: Harness, task_name: str) -> int:
    with h.tx() as db:
        task, me = h.task(db, task_name), h.user(db)
        return db.scalar(select(func.count()).select_from(Submission)
                         .where(Submission.task_id == task.id, Submission.user_id == me.id))
