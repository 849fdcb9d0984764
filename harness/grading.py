"""Grading a submission's stored prediction: the whole test set, or a round's public and private halves; and
`rescore`, which grades every stored prediction of a task again (after an evaluator fix, say)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from . import evaluator_call
from .db.models import Round, Submission, utcnow
from .progress import Progress, silent
from .enums import FailureReason, RunStatus
from .provenance import tree_hash
from .safefs import UnsafeFile, copy_out
from .scoring import evaluate
from .settings import Settings
from .splits import SplitFormat, SplitScores, evaluate_split
from .taskpack import MANIFEST, Manifest
from .workspace import label_path


@dataclass
class Grade:
    score: float | None  # the whole set; in a round, the public half
    private_score: float | None = None
    reason: FailureReason | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def prediction_path(run_dir: str) -> Path:
    """The harness's own copy of a submit run's prediction: the only file evaluators ever read."""
    return Path(run_dir) / "graded" / "prediction"


def take_prediction(settings: Settings, run_dir: str) -> Grade | None:
    """Copy the prediction the run wrote (output/prediction: a regular file it created, no link of any kind,
    at most limits.prediction_bytes) into harness-owned storage. A Grade when it cannot be taken."""
    try:
        size = copy_out(Path(run_dir), "output/prediction", prediction_path(run_dir), settings.prediction_bytes)
    except FileNotFoundError:
        return Grade(None, None, FailureReason.MISSING_OUTPUT, "feed_infer wrote no prediction file")
    except UnsafeFile as exc:
        return Grade(None, None, FailureReason.INVALID_PREDICTION,
                     f"invalid prediction: only a regular file the run wrote itself is scored: {exc}")
    if size == 0:
        return Grade(None, None, FailureReason.MISSING_OUTPUT, "the prediction file is empty")
    return None


def grade(settings: Settings, dataset: Path, prediction: Path, dry_run: bool, rnd: Round | None,
          runtime: str | None = None) -> Grade:
    """RUNTIME: the submit run's; a 2019 fixed-path evaluator of a docker run is scored in a container, of a
    process run under bubblewrap (harness.evaluator_call; `evaluator_isolation` in settings overrides)."""
    manifest = Manifest.read(dataset)
    limit = manifest.scorer_seconds or settings.scorer_time_limit
    labels = label_path(dataset, dry_run)
    evaluator = dataset / "evaluation.py"
    call = evaluator_call.with_environment(evaluator_call.detect(dataset, manifest), dataset, manifest,
                                           settings.state_dir / "envs")
    call.image = settings.docker_image
    call.prefer = settings.evaluator_isolation or ("docker" if runtime == "docker" else "bwrap")
    if call.env_dir is not None:
        call.prefer = "bwrap"  # its own requirements live in a host environment, which a container does not have
    if rnd is None or dry_run:
        result = evaluate(evaluator, prediction, labels, limit, settings.scorer_memory_bytes, call)
        return Grade(result.score, None, result.reason, result.message)
    fmt = SplitFormat.from_manifest(manifest.extra, str(dataset / MANIFEST))
    result = evaluate_split(evaluator, prediction, labels, fmt, rnd.public_fraction, rnd.split_seed, manifest.name,
                            limit, settings.scorer_memory_bytes, call)
    if isinstance(result, SplitScores):
        return Grade(result.public.score, result.private.score)
    return Grade(None, None, result.reason, result.message)


def apply(sub: Submission, g: Grade) -> None:
    sub.score, sub.private_score = g.score, g.private_score
    if g.ok:
        sub.status, sub.reason, sub.message, sub.scored_at = RunStatus.SUCCEEDED, None, None, utcnow()
    else:
        sub.status, sub.reason, sub.message = RunStatus.FAILED, g.reason, g.message


RESCORABLE = (FailureReason.INVALID_PREDICTION, FailureReason.SCORER_ERROR)


def standings(db, task) -> dict[tuple[str, str], int]:
    """(board, team or user) → rank, on every board the task is on: each round's public and private boards,
    and the per-user board of submissions outside rounds."""
    from .contest import rounds_of_task
    from .leaderboard import user_board
    from .rounds import compute_board

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


def rescore(settings: Settings, db, task, progress: Progress = silent) -> tuple[list[dict], list[dict]]:
    """Grade every stored prediction of TASK again, in the caller's transaction (roll it back for a dry run).
    Returns one row per graded submission with what changed, and the rank changes on the task's boards.
    Qualifiers a closed round already admitted stay admitted."""
    ranks_before = standings(db, task)
    dataset = Path(task.path)
    evaluator_hash = tree_hash(dataset / "evaluation.py")
    data_hash = {dry: tree_hash(dataset / ("test_submit" if dry else "test")) for dry in (False, True)
                 if (dataset / ("test_submit" if dry else "test")).exists()}
    rows = []
    subs = db.scalars(select(Submission).where(Submission.task_id == task.id).order_by(Submission.id)).all()
    for i, sub in enumerate(subs):
        progress(i, len(subs), f"submission {sub.id}")
        if not (sub.status is RunStatus.SUCCEEDED or sub.reason in RESCORABLE):
            continue  # the inference never produced a prediction worth grading
        pred = prediction_path(sub.run.run_dir)
        before = (sub.status.value, sub.score, sub.private_score)
        if not pred.exists():  # graded before predictions were copied out: take it now, by the same rules
            take_prediction(settings, sub.run.run_dir)
        if not pred.exists():
            rows.append({"id": sub.id, "who": _who(sub), "before": before, "after": None, "changed": False,
                         "note": "prediction file is gone"})
            continue
        rnd = db.get(Round, sub.round_id) if sub.round_id else None
        g = grade(settings, dataset, pred, sub.dry_run, rnd, sub.run.runtime)
        after = ("succeeded" if g.ok else "failed", g.score, g.private_score)
        changed = after != before
        rows.append({"id": sub.id, "who": _who(sub), "before": before, "after": after, "changed": changed,
                     "note": "" if g.ok else f"{g.reason.value}: {g.message}"})
        if changed:
            apply(sub, g)
        sub.provenance = {**(sub.provenance or {}), "evaluator": evaluator_hash,
                          "data": data_hash[sub.dry_run],
                          "rescored_at": utcnow().isoformat(timespec="seconds")}
    db.flush()
    return rows, rank_changes(ranks_before, standings(db, task))


def _who(sub: Submission) -> str:
    return sub.team.name if sub.team is not None else sub.user.name
