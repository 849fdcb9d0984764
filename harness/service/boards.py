"""A task's board (each user's best valid score, by the task's direction) and a user's submission history."""
from __future__ import annotations

from sqlalchemy import func, select

from harness.context import Harness
from harness.core.enums import FailureReason
from harness.core.errors import UserError
from harness.scoring.boards import user_board
from harness.store.models import Round, Run, Submission

from . import permissions
from .listings import title


def board_with_title(h: Harness, task_name: str) -> tuple[str, list[dict]]:
    """The board's title (task, metric, direction) and its rows."""
    with h.tx() as db:
        task = h.task(db, task_name)
        return title(task.name, task.metric, task.direction.value), user_board(db, task)


def board(h: Harness, task_name: str) -> list[dict]:
    """Rank, user, score, session, checkpoint, submits, last submit. Ties share a rank; earlier first."""
    with h.tx() as db:
        return user_board(db, h.task(db, task_name))


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
