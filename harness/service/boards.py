"""A task's board (each user's best valid score, by the task's direction) and a user's submission history."""
from __future__ import annotations

from datetime import timezone

from sqlalchemy import func, select

from harness.contest.rounds import round_for_task
from harness.core import clock
from harness.core.enums import RunStatus
from harness.core.errors import UserError
from harness.scoring.board_rules import counted_clause, user_board, valid_score
from harness.scoring.ladder_board import shown_clause, visible_score
from harness.state import Harness
from harness.store.models import Round, Run, Submission, Team, User

from . import permissions
from .quick_reads import title


def board_with_title(h: Harness, task_name: str) -> tuple[str, list[dict]]:
    """The board's title (task, metric, direction) and its rows."""
    with h.tx() as db:
        task = permissions.task_of(h, db, task_name)
        return title(task.name, task.metric, task.direction.value), user_board(db, task)


def board(h: Harness, task_name: str) -> list[dict]:
    """Rank, user, score, session, checkpoint, submits, last submit. Ties share a rank; earlier first."""
    with h.tx() as db:
        return user_board(db, permissions.task_of(h, db, task_name))


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
        task = permissions.task_of(h, db, task_name)
        if user is not None:
            permissions.require_owner(h.settings, user, f"the history of {user}")
        me = h.user(db, user)
        query = (select(Submission, Run.spec, Round)
                 .join(Run, Run.id == Submission.run_id).outerjoin(Round, Round.id == Submission.round_id)
                 .where(Submission.task_id == task.id, Submission.user_id == me.id)
                 .order_by(Submission.id.desc()))
        if per_page is not None:
            query = query.limit(per_page).offset((page - 1) * per_page)
        rows = []
        organizer = permissions.is_organizer(h.settings)
        for s, spec, rnd in db.execute(query):
            score, ladder = visible_score(s, rnd, organizer)
            row = {"id": s.id, "session": s.session_name, "checkpoint": s.checkpoint, "dry_run": s.dry_run,
                   "status": s.status.value, "reason": s.reason.value if s.reason else None, "score": score,
                   "message": permissions.submission_message(h.settings, s.dry_run, s.reason, s.message),
                   "created": s.created_at.isoformat(timespec="seconds"), "selected": s.selected,
                   "in_round": rnd is not None, "reserved_flags": (spec or {}).get("reserved_flags")}
            if ladder:
                row["ladder"] = ladder
            if rnd is not None and (organizer or rnd.closed):
                row["private_score"] = s.private_score
            if organizer:
                row["provenance"] = s.provenance
            rows.append(row)
        return rows


def history_count(h: Harness, task_name: str) -> int:
    with h.tx() as db:
        task, me = permissions.task_of(h, db, task_name), h.user(db)
        return db.scalar(select(func.count()).select_from(Submission)
                         .where(Submission.task_id == task.id, Submission.user_id == me.id))


def score_history(h: Harness, task_name: str, top: int = 10) -> dict:
    """Best score so far over time of the board's current top TOP (users, or teams on a round's task): the
    scored, counted, shown submissions, in submit order; times as Unix seconds, each line at most 1,000 points."""
    from .metrics import downsample
    with h.tx() as db:
        task = permissions.task_of(h, db, task_name)
        direction = task.direction
        rnd = round_for_task(db, task_name, clock.now(h.settings))  # the board's own submissions: its round's
        #                                                              (teams), or outside rounds
        board = Submission.round_id == rnd.id if rnd is not None else Submission.round_id.is_(None)
        rows = db.execute(select(Submission.user_id, Submission.team_id, Submission.score, Submission.created_at)
                          .where(Submission.task_id == task.id, board, Submission.status == RunStatus.SUCCEEDED,
                                 valid_score(Submission.score, db), Submission.hidden.is_(False), counted_clause(),
                                 shown_clause(rnd))
                          .order_by(Submission.created_at, Submission.id)).all()
        by_team = rnd is not None
        names = dict(db.execute(select(Team.id, Team.name) if by_team else select(User.id, User.name)).all())
    best: dict[str, float] = {}
    lines: dict[str, tuple[list, list]] = {}
    for user_id, team_id, score, at in rows:
        who = names.get(team_id if by_team else user_id)
        if who is None:
            continue
        if who not in best or direction.better(score, best[who]):
            best[who] = score
            xs, ys = lines.setdefault(who, ([], []))
            xs.append(at.replace(tzinfo=timezone.utc).timestamp())  # stored naive UTC
            ys.append(score)
    leaders = sorted(best, key=lambda w: direction.sort_key(best[w]))[:max(1, min(top, 50))]
    return {"task": task_name, "direction": task.direction.value,
            "series": {w: dict(zip(("x", "y"), downsample(*lines[w]))) for w in leaders}}
