"""Grading a submit run's stored prediction: the whole test set, or a round's public and private halves."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.core.clock import utcnow
from harness.core.enums import FailureReason, RunStatus
from harness.core.safefs import UnsafeFile, append_note, copy_out
from harness.core.settings import Settings
from harness.runtime.base import RUN_GRADED, RUN_OUTPUT
from harness.store.models import Round, Submission
from harness.taskpacks import layout
from harness.taskpacks.registry import MANIFEST, Manifest

from . import evaluator_call, score_interval
from .evaluator import CONTAINER_START, ScoreResult, evaluate
from .splits import PARTS, PRIVATE, PUBLIC, SPLIT_WALL_SECONDS, SplitFormat, SplitScores, evaluate_split

PRIVATE_MARGIN = 60  # seconds for the rest of a private half's grade: a container's removal, merging the values
UNSAFE_PREDICTION = "invalid prediction: only a regular file the run wrote itself is scored"


@dataclass
class Grade(ScoreResult):
    """A ScoreResult whose score is the whole set's, or in a round the public half's, with the private half's."""
    private_score: float | None = field(default=None, kw_only=True)
    intervals: score_interval.Intervals | None = field(default=None, kw_only=True)
    private_failure: ScoreResult | None = field(default=None, kw_only=True)  # why there is no private score (a
    #                                       failed private half: the grade stands on the public one, said in the log)
    private_due: bool = field(default=False, kw_only=True)  # the private half is scored later (defer_private)


def prediction_path(run_dir: str) -> Path:
    """The harness's own copy of a submit run's prediction: the only file evaluators ever read."""
    return Path(run_dir) / RUN_GRADED / "prediction"


def evaluator_values(prediction: Path) -> Path:
    """Where a grade keeps the evaluator's per_example.txt (harness.scoring.evaluator), beside the prediction."""
    return prediction.parent / score_interval.EVALUATOR_VALUES


def take_prediction(settings: Settings, run_dir: str) -> Grade | None:
    """Copy the prediction the run wrote (output/prediction: a regular file it created, no link of any kind,
    at most limits.prediction_bytes) into harness-owned storage (the output folder goes when the run's end is
    recorded: runs.ending.mark). A Grade when it cannot be taken."""
    try:
        size = copy_out(Path(run_dir), f"{RUN_OUTPUT}/prediction", prediction_path(run_dir), settings.prediction_bytes)
    except FileNotFoundError:
        return Grade(None, FailureReason.MISSING_OUTPUT, "feed_infer wrote no prediction file")
    except UnsafeFile as exc:
        return Grade(None, FailureReason.INVALID_PREDICTION,
                     f"{UNSAFE_PREDICTION}: {exc}")
    if size == 0:
        return Grade(None, FailureReason.MISSING_OUTPUT, "the prediction file is empty")
    return None


def private_half_seconds(settings: Settings, dataset: Path) -> float:
    """The longest a submission's private half can take to grade (harness.scheduler.private_half): the cut of its
    files (splits.SPLIT_WALL_SECONDS), its evaluator's time limit (a container's start and end on top), its
    interval child's, and PRIVATE_MARGIN."""
    try:
        limit = Manifest.read(dataset).scorer_seconds or settings.scorer_time_limit
    except Exception:  # noqa: BLE001 - the task's folder gone or broken: its grade fails at once
        limit = settings.scorer_time_limit
    return SPLIT_WALL_SECONDS + limit + 2 * CONTAINER_START + score_interval.WALL_SECONDS + PRIVATE_MARGIN


def grade(settings: Settings, dataset: Path, prediction: Path, dry_run: bool, rnd: Round | None,
          runtime: str | None = None, defer_private: bool = False, public_score: float | None = None) -> Grade:
    """RUNTIME: the submit run's; a 2019 fixed-path evaluator of a docker run is scored in a container, of a
    process run under bubblewrap (harness.scoring.evaluator_call; `evaluator_isolation` in settings overrides).
    In a round, DEFER_PRIVATE: the public half only (private_due); PUBLIC_SCORE: the public half's, graded so
    before: the private half only (harness.scheduler.private_half, once the submit was reported)."""
    manifest = Manifest.read(dataset)
    limit = manifest.scorer_seconds or settings.scorer_time_limit
    labels = layout.label_path(dataset, dry_run)
    evaluator = layout.evaluator(dataset)
    call = evaluator_call.with_environment(evaluator_call.detect(dataset, manifest), dataset, manifest,
                                           settings.envs_dir)
    call.image = settings.docker_image
    call.prefer = settings.evaluator_isolation or ("docker" if runtime == "docker" else "bwrap")
    if call.env_dir is not None:
        call.prefer = "bwrap"  # its own requirements live in a host environment, which a container does not have
    values = evaluator_values(prediction)  # the evaluator's own per-example output, when it writes one
    if rnd is None or dry_run:
        result = evaluate(evaluator, prediction, labels, limit, settings.scorer_memory_bytes, call,
                          None if dry_run else values)
        got = Grade(result.score, result.reason, result.message, result.detail)
        if got.ok and not dry_run:  # a dry run is a check: its score never ranks, it needs no interval
            got.intervals = score_interval.intervals(dataset, labels, prediction, got.score)
        return got
    fmt = SplitFormat.from_manifest(manifest.extra, str(dataset / MANIFEST))
    parts = (PUBLIC,) if defer_private else (PRIVATE,) if public_score is not None else PARTS
    result = evaluate_split(evaluator, prediction, labels, fmt, rnd.public_fraction, rnd.split_seed, manifest.name,
                            limit, settings.scorer_memory_bytes, call, values, parts)
    if isinstance(result, SplitScores):
        private, public_score = result.private, public_score if result.public is None else result.public.score
        if private is None:
            got = Grade(public_score, private_due=True)
        else:
            got = Grade(public_score, private_score=private.score if private.ok else None,
                        private_failure=None if private.ok else private)
        got.intervals = score_interval.intervals(dataset, labels, prediction, got.score, got.private_score,
                                                 (rnd.public_fraction, rnd.split_seed, manifest.name), parts)
        return got
    return Grade(None, result.reason, result.message, result.detail)


def apply(sub: Submission, g: Grade, keep: bool = True) -> None:
    """G on SUB (KEEP: for good; a dry-run rescore keeps nothing). A failed evaluator's last lines go to the end of
    the submit run's log, where its readers alone see them (permissions: organizers; a participant their own dry
    runs): they may quote the labels."""
    sub.score, sub.private_score, sub.private_due = g.score, g.private_score, g.private_due
    apply_intervals(sub, g, keep)
    if g.ok:
        sub.status, sub.reason, sub.message, sub.scored_at = RunStatus.SUCCEEDED, None, None, utcnow()
    else:
        sub.status, sub.reason, sub.message = RunStatus.FAILED, g.reason, g.message
        if keep and sub.run.run_dir:
            note_failure(Path(sub.run.log_path), g)


def note_failure(log: Path, g: Grade) -> None:
    """A failed evaluator's last lines, at the end of the submit run's LOG; a failed private half's, with why the
    submission has no private score (a real submit's log is for organizers only: permissions)."""
    if g.detail:
        append_note(log, f"{g.message}; the evaluator's last lines:\n{g.detail}")
    failed = g.private_failure
    if failed is not None:
        tail = f"; the evaluator's last lines:\n{failed.detail}" if failed.detail else ""
        append_note(log, f"{failed.message} ({failed.reason.value}): this submission has no private score{tail}")


def grade_run(settings: Settings, run_dir: str, log: Path, dataset: Path, dry_run: bool, rnd: Round | None,
              runtime: str | None, defer_private: bool = False) -> Grade:
    """A finished submit run's grade: its prediction taken (take_prediction), then graded (grade); a failed
    evaluator's last lines go to its LOG."""
    g = take_prediction(settings, run_dir) or grade(settings, dataset, prediction_path(run_dir), dry_run, rnd,
                                                    runtime, defer_private)
    note_failure(log, g)
    return g


def apply_intervals(sub: Submission, g: Grade, keep: bool = True) -> None:
    """G's intervals on SUB, and its staged per-example values kept (KEEP) or dropped (a dry-run rescore)."""
    i = (g.intervals or score_interval.Intervals()).finite()  # (the child's rule, held where they are stored too)
    sub.score_low, sub.score_high, sub.private_low, sub.private_high = i.low, i.high, i.private_low, i.private_high
    sub.interval_note = i.note
    score_interval.keep_values(prediction_path(sub.run.run_dir), keep)
