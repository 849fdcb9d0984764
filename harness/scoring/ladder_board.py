"""A Ladder round's public board (`public_board = "ladder"` in a contest round): which submissions are shown.

Blum & Hardt's parameter-free Ladder (ICML 2015): a team's shown public score changes only when a new submission
beats its shown best by more than the noise, a paired test on per-example losses over the public half
(harness.scoring.uncertainty.ladder_accepts_values). So a participant learns at most "better beyond noise, and
by how much" from a submit, never the fresh public score of each attempt: an attack that reads small public-score
differences (the paper's boosting attack) gets nothing to read. Private scoring is unchanged.

Decisions are made strictly in submit order: `replay` walks a team's submissions to a task in a round, keeps the
decisions already made, decides the next scored ones, and stops at the first submission that has not ended (the
ones after it wait: a participant must not read a submission's score because an earlier, slower one was not
graded yet). It runs after every terminal transition of a team's submit (grade, failure, stop, loss: the
scheduler, in a transaction serialized per team), and again from the start after a rescore or a hide/unhide.
A submission without kept per-example values (its interval could not be computed) is never accepted: nothing
can be compared. What a participant reads of a submission is `visible_score` (the one home of that rule): in an
open Ladder round, a score only when the Ladder showed it.
"""
from __future__ import annotations

import math

from sqlalchemy import select, true

from harness.core.enums import HARNESS_FAULTS, PublicBoard, RunStatus
from harness.store.models import Round, Run, Submission, Task

from .board_ties import kept_halves, kept_path, usable
from .splits import halves
from .uncertainty import ladder_accepts_values

NOT_ACCEPTED = "not shown: it did not beat the team's shown public score by more than the noise (Ladder board)"
NO_VALUES = "not shown: it has no per-example values to compare (Ladder board)"
NOT_SHOWN = ("not shown: it did not beat the team's shown public score by more than the noise, or it had no "
             "per-example values to compare (Ladder board)")  # what a participant reads of either, before close
WAITING = "not shown yet: the Ladder decides in submit order and an earlier submission of the team is not scored yet"
SHOWN = "shown: it became the team's public score (Ladder board)"
HIDDEN = "not shown: an organizer hid it"


def is_ladder(rnd: Round | None) -> bool:
    return rnd is not None and rnd.public_board is PublicBoard.LADDER


def key(sub: Submission) -> str:
    """The serialization key of a team's Ladder on a task (store.tx(serialize=...))."""
    return f"ladder:{sub.round_id}:{sub.task_id}:{sub.team_id}"


def _ranked(sub: Submission) -> bool:
    """What the board counts: scored (a real number), shown (not hidden), counted (not a dry run or the harness's
    fault); harness.scoring.board_rules in Python."""
    return (sub.status is RunStatus.SUCCEEDED and sub.score is not None and not math.isnan(sub.score)
            and not sub.hidden and not sub.dry_run and sub.reason not in HARNESS_FAULTS)


def shown_clause(rnd: Round | None):
    """SQL: a submission a round's public board shows (a Ladder board: the ones it accepted; others: all)."""
    return Submission.ladder_accepted.is_(True) if is_ladder(rnd) else true()


def replay(db, rnd: Round, task, team_id: int, from_start: bool = False) -> None:
    """Decide the team's undecided submissions to TASK in RND in submit order (their ids: inserts are serialized
    per task; a clock may be set back), up to the first one that has not ended (FROM_START: decide every one
    again, after a rescore or a moderation change). A closed round's decisions stay as its close froze them,
    but for FROM_START (an organizer's rescore or moderation)."""
    if not is_ladder(rnd) or (rnd.closed and not from_start):
        return
    rows = db.execute(select(Submission, Run.run_dir).join(Run, Run.id == Submission.run_id).where(
        Submission.round_id == rnd.id, Submission.task_id == task.id, Submission.team_id == team_id)
        .order_by(Submission.id)).all()
    decided: dict[int, bool | None] = {}
    cut: dict[int, object] = {}  # public indices by test-set size: drawn once per replay

    def public_values(run_dir: str):
        values = kept_halves(run_dir)  # (the private half's may be NaN: the public half's alone are read)
        if values is None:
            return None
        if len(values) not in cut:
            cut[len(values)] = halves(len(values), rnd.public_fraction, rnd.split_seed, task.name)[0]
        values = usable(values[cut[len(values)]])
        return values if values is not None and len(values) >= 2 else None

    keep, waiting, best, best_dir = not from_start, False, None, None
    for sub, run_dir in rows:
        if waiting or not sub.status.terminal:
            waiting = True  # this one, and every later one, waits
            decided[sub.id] = None
            continue
        if not _ranked(sub):
            decided[sub.id] = None
            continue
        if keep and sub.ladder_accepted is not None:  # decided before, and everything before it too
            decided[sub.id] = sub.ladder_accepted
            if sub.ladder_accepted:
                best, best_dir = None, run_dir
            continue
        keep = False  # from the first undecided one on, every later decision is made again
        if best is None and best_dir is not None:
            best = public_values(best_dir)
        values = public_values(run_dir)
        if values is None or (best_dir is not None and (best is None or len(values) != len(best))):
            decided[sub.id] = False
            continue
        accepted = ladder_accepts_values(values, best, task.direction)[0]
        decided[sub.id] = accepted
        if accepted:
            best, best_dir = values, run_dir
    for sub, _ in rows:  # written last: the reads above take no write lock
        if sub.ladder_accepted is not decided[sub.id]:
            sub.ladder_accepted = decided[sub.id]
    db.flush()


def replay_task(db, task) -> None:
    """replay() from the start for every team with submissions to TASK in every Ladder round holding it."""
    pairs = db.execute(select(Submission.round_id, Submission.team_id).where(
        Submission.task_id == task.id, Submission.round_id.is_not(None), Submission.team_id.is_not(None))
        .distinct()).all()
    for round_id, team_id in pairs:
        replay(db, db.get(Round, round_id), task, team_id, from_start=True)


def replay_teams(store, keys: dict, from_start: bool = False) -> None:
    """replay() each (round id, task id, team id) of KEYS (key(): ids), one transaction per team serialized on
    its key: a replay sees what the one before it wrote and waits for a grade of the same team in flight, on
    SQLite and PostgreSQL alike."""
    for name, (round_id, task_id, team_id) in keys.items():
        with store.tx(serialize=name) as db:
            replay(db, db.get(Round, round_id), db.get(Task, task_id), team_id, from_start)


def task_keys(db, task) -> dict:
    """key(): ids of every team with submissions to TASK in a Ladder round (for replay_teams)."""
    return _ladder_keys(db, Submission.task_id == task.id)


def _ladder_keys(db, where) -> dict:
    rows = db.execute(select(Submission.round_id, Submission.task_id, Submission.team_id)
                      .join(Round, Round.id == Submission.round_id)
                      .where(Round.public_board == PublicBoard.LADDER, Submission.team_id.is_not(None), where)
                      .distinct()).all()
    return {f"ladder:{r}:{t}:{m}": (r, t, m) for r, t, m in rows}


def replay_after_end(store, run_ids: list[int]) -> None:
    """After the transactions that ended these submit runs committed: replay their teams in Ladder rounds."""
    with store.tx() as db:
        keys = _ladder_keys(db, Submission.run_id.in_(run_ids))
    replay_teams(store, keys)


def sweep(store, round_id: int | None = None) -> None:
    """Replay every team of an open Ladder round (ROUND_ID: of that one) that has an ended, scored submission
    still undecided: what a lost replay (a crash, a locked database) left waiting. At scheduler start and before
    a round closes."""
    where = Submission.ladder_accepted.is_(None) & (Submission.status == RunStatus.SUCCEEDED) & \
        Round.closed_at.is_(None)
    if round_id is not None:
        where = where & (Round.id == round_id)
    with store.tx() as db:
        keys = _ladder_keys(db, where)
    replay_teams(store, keys)


def visible_score(sub: Submission, rnd: Round | None, organizer: bool) -> tuple[float | None, str | None]:
    """A round submission's public score as its team may read it, and the Ladder's word on it. In an open Ladder
    round a participant reads a score only when the Ladder showed it (a submission's score is exactly the
    feedback the Ladder withholds); organizers always, everyone after close. Of a submission not shown, a
    participant reads the same words before close whether it lost to the shown one or had no usable per-example
    values: which of the two is one more bit of the public labels (an opaque evaluator's value that is infinite
    for one label) than the Ladder's one bit per submit."""
    if not is_ladder(rnd) or sub.dry_run or sub.status is not RunStatus.SUCCEEDED:
        return sub.score, None
    if sub.ladder_accepted:
        why = SHOWN
    elif sub.hidden:
        why = HIDDEN
    elif sub.ladder_accepted is None:
        why = WAITING
    elif organizer or rnd.closed:
        why = NOT_ACCEPTED if kept_path(sub.run.run_dir).exists() else NO_VALUES
    else:
        why = NOT_SHOWN
    return (sub.score if sub.ladder_accepted or organizer or rnd.closed else None), why
