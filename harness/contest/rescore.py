"""`rescore`: grade every stored prediction of a task again (after an evaluator fix, say) and report what
changed, on each submission and on every board the task is on."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from harness.core.clock import utcnow
from harness.core.enums import FailureReason, RunStatus
from harness.core.progress import Progress, silent
from harness.core.settings import Settings
from harness.scheduler.lease import private_due_now, private_kept
from harness.scoring import ladder_board, provenance
from harness.scoring.board_rules import user_board
from harness.scoring.grade import apply, apply_intervals, grade, prediction_path, take_prediction
from harness.store.models import Round, Submission

from .gate import rounds_of_task
from .rounds import compute_board

RESCORABLE = (FailureReason.INVALID_PREDICTION, FailureReason.SCORER_ERROR)


def standings(db, task) -> dict[tuple[str, str], int]:
    """(board, team or user) → rank, on every board the task is on: each round's public and private boards,
    and the per-user board of submissions outside rounds."""
    out = {}
    for rnd in rounds_of_task(db, task.name):
        for r in compute_board(db, rnd, task):
            out[(f"{rnd.name} public", r["team"])] = r["public_rank"]
            if r["private_rank"] is not None:
                out[(f"{rnd.name} private", r["team"])] = r["private_rank"]
    for r in user_board(db, task):
        out[("users", r["user"])] = r["rank"]
    return out


def rank_changes(before: dict, after: dict) -> list[dict]:
    keys = sorted(set(before) | set(after))
    return [{"board": b, "who": who, "before": before.get((b, who)), "after": after.get((b, who))}
            for b, who in keys if before.get((b, who)) != after.get((b, who))]


def kept_private(settings: Settings, db, task_id: int) -> set[int]:
    """TASK_ID's submissions whose private half is due but kept to its round's end (lease.private_due_now): taken
    before a rescore waits for the others (a round may end meanwhile)."""
    due = select(Submission.id).where(Submission.task_id == task_id, Submission.private_due.is_(True))
    return set(db.scalars(due.where(~private_due_now(settings))))


def rescore(settings: Settings, db, task, progress: Progress = silent,
            keep_files: bool = True, kept: set[int] | None = None) -> tuple[list[dict], list[dict]]:
    """Grade every stored prediction of TASK again, in the caller's transaction (roll it back for a dry run, and
    pass KEEP_FILES False: the graded folders keep their committed per-example values). KEPT: kept_private, taken
    before the caller waited for the private halves due (those the scheduler may be scoring are left to it).
    Returns one row per graded submission with what changed, and the rank changes on the task's boards.
    Qualifiers a closed round already admitted stay admitted."""
    ranks_before = standings(db, task)
    dataset = Path(task.path)
    rows = []
    subs = db.scalars(select(Submission).where(Submission.task_id == task.id).order_by(Submission.id)).all()
    kept = kept_private(settings, db, task.id) if kept is None else kept
    for i, sub in enumerate(subs):
        progress(i, len(subs), f"submission {sub.id}")
        if not (sub.status is RunStatus.SUCCEEDED or sub.reason in RESCORABLE):
            continue  # the inference never produced a prediction worth grading
        if sub.private_due and sub.id not in kept:  # reported since the rescore began (its caller waited for those
            continue  # due before): graded by the current evaluator; its private half is the scheduler's, never
            #           graded twice at once
        pred = prediction_path(sub.run.run_dir)
        before = (sub.status.value, sub.score, sub.private_score)
        if not pred.exists():  # graded before predictions were copied out: take it now, by the same rules
            take_prediction(settings, sub.run.run_dir)
        if not pred.exists():
            rows.append({"id": sub.id, "who": _who(sub), "before": before, "after": None, "changed": False,
                         "note": "prediction file is gone"})
            continue
        rnd = db.get(Round, sub.round_id) if sub.round_id else None
        # a private half kept to its round's end stays so, and one of a round that has not ended is not graded
        # (lease.private_kept: one graded before the operator kept them is kept from now on): the public half alone
        defer = sub.private_due or (rnd is not None and private_kept(settings, db, rnd.id))
        g = grade(settings, dataset, pred, sub.dry_run, rnd, sub.run.runtime, defer_private=defer)
        after = ("succeeded" if g.ok else "failed", g.score, g.private_score)
        changed = after != before
        rows.append({"id": sub.id, "who": _who(sub), "before": before, "after": after, "changed": changed,
                     "note": f"{g.reason.value}: {g.message}" if not g.ok else
                     f"no private score: {g.private_failure.message}" if g.private_failure else ""})
        if changed:
            apply(sub, g, keep=keep_files)
        else:  # the same scores: the intervals (and kept values) are this grade's all the same
            apply_intervals(sub, g, keep=keep_files)
        sub.provenance = {**(sub.provenance or {}), **provenance.grading(dataset, sub.dry_run),
                          "rescored_at": utcnow().isoformat(timespec="seconds")}
    db.flush()
    ladder_board.replay_task(db, task)  # a Ladder board's decisions follow the new grades, in submit order
    return rows, rank_changes(ranks_before, standings(db, task))


def _who(sub: Submission) -> str:
    return sub.team.name if sub.team is not None else sub.user.name
