"""Per-task leaderboard: each user's best valid score, ordered by the task's direction."""
from __future__ import annotations

from sqlalchemy import select

from . import permissions
from .context import Harness
from .db.models import Round, Submission
from .enums import Direction, FailureReason, RunStatus


def ranked(items: list, score_of, direction: Direction) -> list[tuple[int, object]]:
    """(rank, item) best first; equal scores share a rank, the earlier submission listed first."""
    sign = -1.0 if direction is Direction.HIGHER else 1.0
    ordered = sorted(items, key=lambda it: (sign * score_of(it), it.created_at, it.id))
    out: list[tuple[int, object]] = []
    for i, it in enumerate(ordered):
        rank = out[-1][0] if out and score_of(out[-1][1]) == score_of(it) else i + 1
        out.append((rank, it))
    return out


def tally(subs: list[Submission], key) -> tuple[dict, dict, dict]:
    """Per competitor (key(s): a user or a team id): counted submits, the last counted one, and the scored ones
    (a valid score; NaN never ranks). `subs` in time order."""
    counts: dict[int, int] = {}
    last: dict[int, Submission] = {}
    scored: dict[int, list[Submission]] = {}
    for s in subs:
        if s.counted:
            counts[key(s)] = counts.get(key(s), 0) + 1
            last[key(s)] = s
        if s.status is RunStatus.SUCCEEDED and s.score is not None and s.score == s.score:
            scored.setdefault(key(s), []).append(s)
    return counts, last, scored


def board(h: Harness, task_name: str) -> list[dict]:
    """Rank, user, score, session, checkpoint, submits, last submit. Ties share a rank; earlier first."""
    with h.tx() as db:
        return user_board(db, h.task(db, task_name))


def user_board(db, task) -> list[dict]:
    """The per-user board of a task: its submissions made outside contest rounds."""
    direction = task.direction
    subs = db.scalars(select(Submission).where(Submission.task_id == task.id, Submission.dry_run.is_(False),
                                               Submission.round_id.is_(None))  # rounds rank teams, elsewhere
                      .order_by(Submission.created_at, Submission.id)).all()
    counts, last, scored = tally(subs, lambda s: s.user_id)
    best = [ranked(mine, lambda s: s.score, direction)[0][1] for mine in scored.values()]
    rows = []
    for rank, s in ranked(best, lambda s: s.score, direction):
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
        if user is not None:
            permissions.require_owner(h.settings, user, f"the history of {user}")
        me = h.user(db, user)
        subs = db.scalars(select(Submission).where(Submission.task_id == task.id, Submission.user_id == me.id)
                          .order_by(Submission.id.desc()))
        rows = []
        for s in subs:
            row = {"id": s.id, "session": s.session_name, "checkpoint": s.checkpoint, "dry_run": s.dry_run,
                   "status": s.status.value, "reason": s.reason.value if s.reason else None, "score": s.score,
                   "message": s.message, "created": s.created_at.isoformat(timespec="seconds"),
                   "selected": s.selected, "reserved_flags": (s.run.spec or {}).get("reserved_flags")}
            rnd = db.get(Round, s.round_id) if s.round_id else None
            if rnd is not None and (h.settings.is_organizer or rnd.closed):
                row["private_score"] = s.private_score
            if h.settings.is_organizer:
                row["provenance"] = s.provenance
            elif s.reason is FailureReason.SCORER_ERROR and not s.dry_run:
                row["message"] = "the task's evaluator failed (not counted; organizers see why)"
            rows.append(row)
        return rows
