"""Organizers moderating a board: hide or unhide a submission (it keeps its row and history, counts as a submit,
never ranks), mark a user or team as a baseline (shown marked on boards), and the audit record of every such
action — and of rescores and round closes — with who and when."""
from __future__ import annotations

from sqlalchemy import select

from harness.contest.gate import get_contest
from harness.core.clock import utcnow
from harness.core.errors import NotFound, UserError
from harness.scoring import ladder_board
from harness.state import Harness
from harness.store.models import AuditEvent, Submission, Team, User

from . import permissions

AUDIT_SHOWN = 200


def record(h: Harness, db, action: str, target: str, detail: dict | None = None) -> None:
    """An organizer's action, in the caller's transaction."""
    db.add(AuditEvent(actor=h.settings.user, action=action, target=target[:256], detail=detail or {}))


def hide_submission(h: Harness, sub_id: int, hidden: bool = True) -> dict:
    permissions.require_organizer(h.settings, "hide" if hidden else "unhide")
    with h.tx() as db:
        sub = db.get(Submission, sub_id)
        if sub is None:
            raise NotFound(f"ID: no submission {sub_id}")
        if sub.hidden == hidden:
            raise UserError(f"ID: submission {sub_id} is already {'hidden' if hidden else 'shown'}")
        sub.hidden, sub.hidden_by, sub.hidden_at = hidden, h.settings.user if hidden else None, \
            utcnow() if hidden else None
        record(h, db, "hide" if hidden else "unhide", f"submission {sub_id}",
               {"task": sub.task.name, "user": sub.user.name, "score": sub.score})
        team = {ladder_board.key(sub): (sub.round_id, sub.task_id, sub.team_id)} if sub.team_id else {}
        out = {"id": sub_id, "hidden": hidden, "task": sub.task.name, "user": sub.user.name}
    ladder_board.replay_teams(h.store, team, from_start=True)  # a Ladder board's shown scores follow, serialized
    return out


def mark_baseline(h: Harness, name: str, team: bool = False, on: bool = True) -> dict:
    """[organizer] NAME (a user; with TEAM, CONTEST/TEAM or the only contest's TEAM) is a baseline or not."""
    permissions.require_organizer(h.settings, "baseline")
    with h.tx() as db:
        if team:
            contest_name, _, team_name = name.rpartition("/")
            if not contest_name:
                names = db.scalars(select(Team.contest_id).where(Team.name == team_name).distinct()).all()
                if len(names) != 1:
                    raise UserError(f"NAME: say CONTEST/TEAM ({len(names)} contests have a team {team_name!r})")
                row = db.scalar(select(Team).where(Team.name == team_name))
            else:
                contest = get_contest(db, contest_name)
                row = db.scalar(select(Team).where(Team.contest_id == contest.id, Team.name == team_name))
            if row is None:
                raise NotFound(f"NAME: no team {name!r}")
        else:
            row = db.scalar(select(User).where(User.name == name))
            if row is None:
                raise NotFound(f"NAME: no user {name!r}")
        row.baseline = on
        record(h, db, "baseline" if on else "not baseline", f"{'team' if team else 'user'} {name}")
        return {"name": name, "team": team, "baseline": on}


def hidden_entries(h: Harness, task: str) -> list[dict]:
    """[organizer] The task's hidden submissions, with who hid them and when."""
    permissions.require_organizer(h.settings, "hidden entries")
    with h.tx() as db:
        t = h.task(db, task)
        subs = db.scalars(select(Submission).where(Submission.task_id == t.id, Submission.hidden.is_(True))
                          .order_by(Submission.id)).all()
        return [{"id": s.id, "user": s.user.name, "team": s.team.name if s.team else None, "score": s.score,
                 "session": s.session_name, "checkpoint": s.checkpoint, "hidden_by": s.hidden_by,
                 "hidden_at": s.hidden_at.isoformat(timespec="seconds") if s.hidden_at else None} for s in subs]


def audit(h: Harness, limit: int = AUDIT_SHOWN) -> list[dict]:
    """[organizer] The newest organizer actions first."""
    permissions.require_organizer(h.settings, "audit")
    with h.tx() as db:
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 10_000))))
        return [{"time": e.created_at.isoformat(timespec="seconds"), "actor": e.actor, "action": e.action,
                 "target": e.target, "detail": e.detail or {}} for e in rows]
