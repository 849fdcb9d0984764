"""A Ladder round's public board (`public_board = "ladder"` in a contest round): which submissions are shown.

Blum & Hardt's parameter-free Ladder (ICML 2015): a team's shown public score changes only when a new submission
beats its shown best by more than the noise, a paired test on per-example losses over the public half
(harness.scoring.uncertainty.ladder_accepts_values). So a participant learns at most "better beyond noise, and
by how much" from a submit, never the fresh public score of each attempt: an attack that reads small public-score
differences (the paper's boosting attack) gets nothing to read. Private scoring is unchanged.

`replay` walks a team's scored submissions in submit order and sets each one's `ladder_accepted`; it runs after
every grade, rescore and moderation change of the team's submissions, so the decisions never depend on the order
in which the scheduler happened to grade them. A submission without kept per-example values (its interval could
not be computed) is never accepted: nothing can be compared. What a participant reads of a submission that was
not accepted is `visible_score` (the one home of that rule).
"""
from __future__ import annotations

from sqlalchemy import select

from harness.core.enums import PublicBoard, RunStatus
from harness.store.models import Round, Submission

from .board_rules import counted_clause, valid_score
from .board_ties import kept_path, kept_values
from .splits import halves
from .uncertainty import ladder_accepts_values

NOT_ACCEPTED = "not shown: it did not beat the team's shown public score by more than the noise (Ladder board)"
NO_VALUES = "not shown: it has no per-example values to compare (Ladder board)"


def is_ladder(rnd: Round | None) -> bool:
    return rnd is not None and rnd.public_board is PublicBoard.LADDER


def replay(db, rnd: Round, task, team_id: int) -> None:
    """Set `ladder_accepted` on the team's submissions to TASK in RND (None on those the board does not count)."""
    if not is_ladder(rnd):
        return
    subs = db.scalars(select(Submission).where(
        Submission.round_id == rnd.id, Submission.task_id == task.id, Submission.team_id == team_id)
        .order_by(Submission.created_at, Submission.id)).all()
    ranked = set(db.scalars(select(Submission.id).where(
        Submission.round_id == rnd.id, Submission.task_id == task.id, Submission.team_id == team_id,
        Submission.status == RunStatus.SUCCEEDED, valid_score(Submission.score, db), Submission.hidden.is_(False),
        counted_clause())))
    best = None
    for sub in subs:
        if sub.id not in ranked:
            sub.ladder_accepted = None
            continue
        values = _public_values(sub, rnd, task.name)
        if values is None or (best is not None and len(values) != len(best)):
            sub.ladder_accepted = False
            continue
        accepted, _ = ladder_accepts_values(values, best, task.direction)
        sub.ladder_accepted = accepted
        if accepted:
            best = values
    db.flush()


def replay_task(db, task) -> None:
    """replay() for every team with submissions to TASK in every Ladder round holding it (after a rescore)."""
    pairs = db.execute(select(Submission.round_id, Submission.team_id).where(
        Submission.task_id == task.id, Submission.round_id.is_not(None), Submission.team_id.is_not(None))
        .distinct()).all()
    for round_id, team_id in pairs:
        replay(db, db.get(Round, round_id), task, team_id)


def _public_values(sub: Submission, rnd: Round, task_name: str):
    values = kept_values(sub.run.run_dir)
    if values is None or len(values) < 2:
        return None
    public, _ = halves(len(values), rnd.public_fraction, rnd.split_seed, task_name)
    return values[public]


def visible_score(sub: Submission, rnd: Round | None, organizer: bool) -> tuple[float | None, str | None]:
    """A round submission's public score as its team may read it, and the Ladder's word on it: a submission the
    Ladder did not show keeps its score hidden from participants until the round closes (its score is exactly
    the feedback the Ladder withholds)."""
    if not is_ladder(rnd) or sub.ladder_accepted is None:
        return sub.score, None
    if sub.ladder_accepted:
        return sub.score, "shown: it became the team's public score (Ladder board)"
    why = NOT_ACCEPTED if kept_path(sub.run.run_dir).exists() else NO_VALUES
    return (sub.score if organizer or rnd.closed else None), why
