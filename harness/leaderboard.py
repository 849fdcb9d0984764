"""Per-task leaderboard: each user's best valid score, ordered by the task's direction."""
from __future__ import annotations

from sqlalchemy import select

from . import clock
from .context import Harness
from .contest import status
from .db.models import Round, Submission
from .enums import Direction, RoundStatus, RunStatus


def board(h: Harness, task_name: str) -> list[dict]:
    """Rank, user, score, session, checkpoint, submits, last submit. Ties share a rank; earlier first."""
    with h.tx() as db:
        task = h.task(db, task_name)
        direction = task.direction
        subs = db.scalars(select(Submission).where(Submission.task_id == task.id, Submission.dry_run.is_(False))
                          .order_by(Submission.created_at, Submission.id)).all()
        best: dict[int, Submission] = {}
        counts: dict[int, int] = {}
        last: dict[int, Submission] = {}
        for s in subs:
            if s.counted:
                counts[s.user_id] = counts.get(s.user_id, 0) + 1
                last[s.user_id] = s
            if s.status is not RunStatus.SUCCEEDED or s.score is None or s.score != s.score:
                continue
            cur = best.get(s.user_id)
            if cur is None or direction.better(s.score, cur.score):
                best[s.user_id] = s
        sign = -1.0 if direction is Direction.HIGHER else 1.0
        ordered = sorted(best.values(), key=lambda s: (sign * s.score, s.created_at, s.id))
        rows = []
        for i, s in enumerate(ordered):
            rank = rows[-1]["rank"] if rows and rows[-1]["score"] == s.score else i + 1
            rows.append({"rank": rank, "user": s.user.name, "score": s.score, "session": s.session_name,
                         "checkpoint": s.checkpoint, "submits": counts.get(s.user_id, 0),
                         "last_submit": last[s.user_id].created_at.isoformat(timespec="seconds")
                         if s.user_id in last else None})
        return rows


def history(h: Harness, task_name: str, user: str | None = None) -> list[dict]:
    """A user's own submissions to a task, newest first (failed and dry runs included); organizers also see
    each one's provenance (code, environment, data and evaluator hashes)."""
    with h.tx() as db:
        task = h.task(db, task_name)
        me = h.user(db, user)
        subs = db.scalars(select(Submission).where(Submission.task_id == task.id, Submission.user_id == me.id)
                          .order_by(Submission.id.desc()))
        now = clock.now(h.settings)
        rows = []
        for s in subs:
            row = {"id": s.id, "session": s.session_name, "checkpoint": s.checkpoint, "dry_run": s.dry_run,
                   "status": s.status.value, "reason": s.reason.value if s.reason else None, "score": s.score,
                   "message": s.message, "created": s.created_at.isoformat(timespec="seconds"),
                   "selected": s.selected}
            rnd = db.get(Round, s.round_id) if s.round_id else None
            if rnd is not None and (h.settings.is_organizer or status(rnd, now) is RoundStatus.CLOSED):
                row["private_score"] = s.private_score
            if h.settings.is_organizer:
                row["provenance"] = s.provenance
            rows.append(row)
        return rows
