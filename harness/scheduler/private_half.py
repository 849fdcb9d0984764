"""A round submission's private half, scored after its submit is reported.

What a participant reads of a submit before its round closes (its status, its public score, when it ended) must
say nothing of the private half. Scored before the submit ended, the private half would still show in the time
the submit took: the organizer's evaluator may run longer, or fail sooner, for some hidden labels than for
others. So the scheduler reports a round's submit on its public half alone (scoring.grade with defer_private:
the submission is `private_due`), then scores the private half here (with the public half's values as its
evaluation kept them) and keeps the private score, its interval and the per-example values of both halves. A
submission a stopped scheduler left due is scored by the next one (each pass looks: Worker.tick); a round
closes, a rescore reads and an organizer's private board is drawn once the halves due then are scored
(harness.scheduler.waiting.wait_private). Where the operator keeps them to their round's end
(`[scheduler] private_halves_at_close`), a half is due now only once its round has ended (lease.private_due_now).
"""
from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from harness.core.enums import FailureReason, RunStatus
from harness.core.settings import Settings
from harness.scoring import score_interval
from harness.scoring.evaluator import ScoreResult
from harness.scoring.grade import Grade, grade, note_failure, prediction_path, private_half_seconds
from harness.store import Store
from harness.store.models import Round, Submission, Task
from harness.taskpacks.registry import Manifest

from .lease import private_due_now, round_graded

log = logging.getLogger("harness.scheduler.private_half")


RETRY_PAUSE = 5.0  # seconds before the private halves' thread goes on after the database failed it
PRIORITY = 10  # the niceness of the thread that scores private halves, and of the evaluators it starts


def lower_priority() -> None:
    """In the private halves' thread: run it, and the processes it starts (which inherit it), at PRIORITY, so
    that a participant's next run or grade does not share the machine's time with an earlier private half."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PRIORITY)  # (Linux: this thread alone)
    except OSError:
        pass


class Worker:
    """The scheduler's private halves: those of the submits reported on their public half, and any a stopped
    scheduler left due, in the order they were submitted, on threads of their own (`threads`) at a low priority
    (PRIORITY). Those are never a run's slot nor a grade's thread: no later submit of anyone waits on one (its time
    would tell of it). A round's close waits for them all: after a flood at its end, several at once.

    Nor does the scheduler's own life tell of one: it stays busy (`busy`) until each private half's longest time
    (grade.private_half_seconds, or `[scheduler] private_hold_seconds`) has passed since it was first seen due,
    one after another as they are scored, however soon each was done. Else an otherwise idle scheduler would leave
    when the private half was scored (plus its idle time), and whether the participant's next command found it
    running (a start of about a second) would say whether the evaluator took longer on the hidden labels than a
    time they chose."""

    def __init__(self, store: Store, threads: int = 1):
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="private", initializer=lower_priority)
        self.running: dict[int, Future] = {}
        self.hold_until = 0.0  # (time.monotonic) when the last private half seen due is sure to be scored
        self.held: set[int] = set()  # the runs it counts (one taken again after a failed try is not counted twice)

    @property
    def busy(self) -> bool:
        return bool(self.running) or time.monotonic() < self.hold_until

    def tick(self, settings: Settings) -> None:
        """A scheduler pass: forget the ended ones (score never raises: no outcome to record), take the due ones."""
        for run_id, fut in list(self.running.items()):
            if fut.done():
                del self.running[run_id]
        waiting = due(self.store, settings)
        self.held &= {run_id for run_id, _ in waiting}
        for run_id, dataset in waiting:
            if run_id not in self.running:
                self.running[run_id] = self.pool.submit(score, settings, self.store, run_id)  # (no ring when it
                #   ends: an extra pass then, off the scheduler's rhythm, would tell when: review of stop 51)
            if run_id not in self.held and not settings.private_at_close:  # (a database that failed a try: the
                #   hold is not grown again for it; kept to its round's end, its selection frozen: no hold needed,
                #   and one per half after a close would hold the scheduler up for days: review of this stop)
                self.held.add(run_id)
                hold = settings.private_hold
                hold = private_half_seconds(settings, Path(dataset)) if hold is None else hold
                # as if scored one after another: on more threads, in this order, none ends later than that
                self.hold_until = max(self.hold_until, time.monotonic()) + hold

    def shutdown(self) -> None:
        """The one under way ends; those waiting stay due for the next scheduler (a stop never waits on a backlog)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def threads(settings: Settings) -> int:
    """How many private halves are scored at once: a quarter of the run slots, 1 to 4."""
    return max(1, min(4, settings.max_concurrent_runs // 4))


def due(store: Store, settings: Settings) -> list[tuple[int, str]]:
    """The runs of the submissions whose private half is to be scored now (lease.private_due_now), with their
    tasks' folders."""
    with store.tx() as db:
        return [tuple(row) for row in db.execute(
            select(Submission.run_id, Task.path).join(Task, Task.id == Submission.task_id)
            .where(private_due_now(settings)).order_by(Submission.id))]


def score(settings: Settings, store: Store, run_id: int) -> None:
    """Score the private half of RUN_ID's submission, if it is still due; never raises (a failure leaves the
    submission with no private score, said at the end of its run's log, where organizers read it)."""
    try:
        _score(settings, store, run_id)
    except OperationalError:  # a locked or unreachable database: due still, a later pass tries again
        log.error("private half of run %s: %s", run_id, traceback.format_exc())
        time.sleep(RETRY_PAUSE)  # (not at once: each try runs the evaluator again)
    except Exception as exc:  # noqa: BLE001 - what a grade never raises for (its round gone, say): no private score
        log.error("private half of run %s: %s", run_id, traceback.format_exc())
        try:
            _give_up(store, run_id, f"private half: {type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the store fails too: due still, the next pass tries again
            log.error("private half of run %s left due: %s", run_id, traceback.format_exc())


def private_interval(public_low: float | None, got: score_interval.Intervals) -> tuple:
    """The private interval a later grade keeps (GOT: its intervals) beside the public one the submit was
    reported with (PUBLIC_LOW: None, none): as one grade of both halves, none without a public one (the later
    grade does not resample the public half, so it cannot tell that its interval overflowed, say)."""
    return (got.private_low, got.private_high) if public_low is not None else (None, None)


def _give_up(store: Store, run_id: int, why: str) -> None:
    """No private score for RUN_ID's submission, and WHY in its log: never due for ever (a close waits for it, and
    each scheduler pass would try it again)."""
    with store.tx() as db:
        sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
        if sub is None or not sub.private_due:
            return
        sub.private_due, log_file = False, sub.run.log_path
    note_failure(Path(log_file), Grade(None, private_failure=ScoreResult(None, FailureReason.HARNESS_ERROR, why)))


def _score(settings: Settings, store: Store, run_id: int) -> None:
    with store.tx() as db:
        sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
        if sub is None or not sub.private_due:
            return
        if sub.status is not RunStatus.SUCCEEDED or sub.score is None:  # (not reached: a grade that succeeded)
            raise ValueError(f"the submission is {sub.status.value}, with no public score")
        rnd = db.get(Round, sub.round_id)
        db.expunge(rnd)
    if settings.private_at_close and not round_graded(settings, store, rnd.id, list(rnd.tasks)):
        return  # (a submit of its round committed after the worker's read: due still, taken once it is reported)
    with store.tx() as db:
        sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
        dataset, run_dir, log_file, runtime = Path(sub.task.path), sub.run.run_dir, sub.run.log_path, sub.run.runtime
        public = sub.score
        task = Manifest.read(dataset).name  # (the name the split is drawn with: scoring.grade)
    try:
        g = grade(settings, dataset, prediction_path(run_dir), False, rnd, runtime, public_score=public)
        failure = g.private_failure if g.ok else g  # (not ok: a cut that failed this time, unlike before)
    except Exception as exc:  # noqa: BLE001 - the task's files went away, say: no private score, and why
        g, failure = None, ScoreResult(None, FailureReason.HARNESS_ERROR,
                                       f"private half: scoring it failed: {type(exc).__name__}: {exc}")
    with store.tx() as db:
        sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
        if not sub.private_due or sub.status is not RunStatus.SUCCEEDED:  # rescored meanwhile: that grade stands
            sub.private_due = False
            score_interval.keep_values(prediction_path(run_dir), False)
            return
        sub.private_due = False
        if failure is None:
            sub.private_score = g.private_score
            got = (g.intervals or score_interval.Intervals()).finite()
            sub.private_low, sub.private_high = private_interval(sub.score_low, got)
        if g is not None and g.ok:  # (the public half's kept values and draws stay as the submit was reported)
            score_interval.keep_private_half(prediction_path(run_dir), (rnd.public_fraction, rnd.split_seed, task))
        else:
            score_interval.keep_values(prediction_path(run_dir), False)
    if failure is not None:
        note_failure(Path(log_file), Grade(None, private_failure=failure))
