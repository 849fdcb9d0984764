"""A scored submission's 95% bootstrap interval, computed once when it is graded (harness.scoring.grade).

The task's metric must be one of the library's (harness.scoring.metric_library) and its files laid out as its
`[split]` table says; the interval is then the percentile bootstrap over test examples (seeded: the same files
give the same interval), of the whole test set, or in a round of the public half (and of the private half, kept
hidden with the private score). The library's score must equal what the task's `evaluation.py` printed, else
the interval would be about another number: then, as for an opaque evaluator, there is none and the note says
why, in words a participant reads on the board. Whether the public interval exists depends on the public half
alone (a private mismatch only drops the private interval, which nobody sees before close).

The prediction is a participant's file: it is parsed and resampled in a child process with a memory and a CPU
cap (a crafted file with thousands of classes or huge ranked lists costs that process, never the scheduler);
any failure there is "no interval". The mean metrics' per-example values are staged beside the graded prediction
and kept only when the grade is committed (`keep_values`; a dry-run rescore keeps nothing).
"""
from __future__ import annotations

import json
import math
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.core.errors import UserError
from harness.taskpacks.registry import Manifest

from . import capped_child
from .splits import PARTS, PRIVATE, PUBLIC

LEVEL = 0.95
RESAMPLES = 1000
SEED = 0
PER_EXAMPLE = "per_example.npy"  # beside graded/prediction: the metric's per-example values (harness.scoring.board_ties)
STAGED = PER_EXAMPLE + ".new"  # this grade's values until it is committed
# A whole-sample metric's scores on the common resamples, one row per half (ties). Two submissions' draws pair
# only when both were drawn alike: the version names how (bump it whenever RESAMPLES, SEED or
# uncertainty.common_draws draw otherwise), so that draws kept by another version are never compared.
DRAWS_VERSION = 1
DRAWS = f"common_draws.v{DRAWS_VERSION}.npy"
STAGED_DRAWS = DRAWS + ".new"
PRIVATE_KEPT = {PER_EXAMPLE: "per_example.private.npy", DRAWS: f"common_draws.v{DRAWS_VERSION}.private.npy"}  # a
#   round's private half scored after its submit was reported (keep_private_half): beside, never into, what the
#   reported grade kept, which a public board's tie marks are cached by (board_ties: a rewrite would show when)
EVALUATOR_VALUES = "evaluator_per_example.txt"  # an opaque evaluator's own per_example.txt (harness.scoring.evaluator)
FINISHES = ("mean", "sqrt-mean")  # how those values make the evaluator's score
MAX_VALUES = 10_000_000
MEMORY_BYTES = 2 << 30
CPU_SECONDS = 60
WALL_SECONDS = 120
OUT_OF_MEMORY = 3  # the child's exit status when its memory cap stopped it
OVERFLOW = "no interval: the prediction's values overflow when resampled"
NOT_NUMBERS = "no interval: the evaluator's per_example.txt is not one finite number per line"


@dataclass
class Intervals:
    low: float | None = None
    high: float | None = None
    private_low: float | None = None
    private_high: float | None = None
    note: str | None = None  # why there is none

    def finite(self) -> Intervals:
        """These intervals with a pair that is not finite dropped: the public one's with OVERFLOW as the note (a
        crafted value that overflows when resampled; a store, a board and JSON hold finite bounds only)."""
        if self.low is not None and not _finite(self.low, self.high):
            return Intervals(note=OVERFLOW)
        if self.private_low is not None and not _finite(self.private_low, self.private_high):
            return Intervals(self.low, self.high, note=self.note)
        return self


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def intervals(dataset: Path, labels: Path, prediction: Path, score: float | None, private_score: float | None = None,
              split: tuple[float, int, str] | None = None, parts: tuple[str, ...] = PARTS) -> Intervals:
    """The intervals of a graded prediction (SPLIT: a round's public fraction, seed and task name, cut as
    harness.scoring.splits cuts it), or an Intervals whose note says why there are none. Never raises for a
    participant's file: the work happens in a capped child process. PARTS, of a round's halves, those whose
    intervals to compute (harness.scoring.grade, as it evaluates them): ("public",) touches nothing of the private
    half (a submit reported before its private half is scored: its values NaN, its draws NaN); ("private",) does
    of the public half only what checks its score against the evaluator's (a private half scored later, whose
    public half's interval, values and draws were kept as the submit was reported)."""
    (prediction.parent / STAGED).unlink(missing_ok=True)
    (prediction.parent / STAGED_DRAWS).unlink(missing_ok=True)
    manifest = Manifest.read(dataset)
    from .metric_library import metric
    finish = None  # the library's metric; else how the evaluator's own per-example values make its score
    try:
        metric(manifest.metric)
    except UserError:
        finish = (manifest.extra.get("evaluator") or {}).get("per_example", "mean")
        if finish not in FINISHES:
            return Intervals(note=f"no interval: task.toml [evaluator] per_example must be one of "
                                  f"{', '.join(FINISHES)}, got {str(finish)[:40]!r}")
        if not (prediction.parent / EVALUATOR_VALUES).is_file():
            return Intervals(note=f"no interval: the task's metric {manifest.metric[:40]!r} is its own "
                                  f"evaluator's, which wrote no per-example values")
    if "split" not in manifest.extra:  # (an evaluator's own values too: the labels say how many there must be)
        return Intervals(note="no interval: the task's task.toml has no [split] to read its files by")
    job = {"dataset": str(dataset), "labels": str(labels), "prediction": str(prediction), "score": score,
           "private_score": private_score, "split": list(split) if split else None, "finish": finish,
           "parts": list(parts)}
    why = "took too long"
    try:
        proc = capped_child.run(__name__, job, WALL_SECONDS)  # (None: past its wall-clock limit)
        code = None if proc is None else proc.returncode
        if code == 0:
            return Intervals(**json.loads(proc.stdout.strip().splitlines()[-1]))
        if code == OUT_OF_MEMORY or code is not None and "MemoryError" in proc.stderr:
            why = "took too much memory"
        elif code is not None and code > 0:
            why = f"failed (exit {code})"
        elif code is not None and -code not in (signal.SIGXCPU, signal.SIGKILL):  # those two: the CPU limit
            why = f"failed (signal {-code})"
    except (OSError, ValueError, TypeError, IndexError):
        pass
    return Intervals(note=f"no interval: computing it {why}")


def compute(dataset: Path, labels: Path, prediction: Path, score, private_score, split,
            finish: str | None = None, wanted: tuple[str, ...] = PARTS) -> Intervals:
    """The child's work: parse, check against the evaluator's scores, resample; stage the per-example values."""
    if finish is not None:
        return compute_from_values(dataset, labels, prediction, score, private_score, split, finish, wanted)
    import numpy as np

    from .metric_records import task_aligned
    from .splits import halves
    from .uncertainty import interval
    try:
        m, aligned = task_aligned(dataset, labels, prediction)
        cuts = [np.arange(len(aligned))] if split is None else list(halves(len(aligned), *split))
        parts = [aligned.records(m, None if split is None else cuts[0])]  # (each half coded alone: Aligned)
        scores = [m.score(parts[0])]
    except Exception:  # noqa: BLE001 - a participant's file (nesting, sizes, odd values): no interval, never a crash
        return Intervals(note="no interval: the prediction could not be read as the task's metric reads it")
    public = split is None or PUBLIC in wanted  # (the whole set, or a round's public half: its interval's work)
    if split is not None and PRIVATE in wanted:
        try:  # the private half's failing drops its interval only: the public one depends on the public half alone
            parts.append(aligned.records(m, cuts[1]))
            scores.append(m.score(parts[1]))
        except Exception:  # noqa: BLE001
            scores.append(math.nan)
    if score is None or not _same(float(score), float(scores[0])):  # the public (or whole) half decides alone
        return Intervals(note=f"no interval: the task's evaluator scores otherwise than the library's {m.name}")
    got = _of_parts(parts, scores, private_score, lambda part: interval(m, part, LEVEL, RESAMPLES, SEED), public)
    if got.note:  # (overflow) nothing kept: no tie mark, no Ladder values
        return got
    if m.per_example:  # staged beside the graded prediction; kept when the grade is committed
        values = _by_part(len(aligned), cuts, parts, m.values)
        if values is not None:
            with open(prediction.parent / STAGED, "wb") as fh:
                np.save(fh, values, allow_pickle=False)
        return got
    from .uncertainty import common_draws  # a whole-sample metric: its scores on the common draws (ties)
    rows = [np.full(RESAMPLES, np.nan) for _ in cuts]
    for i, part in enumerate(parts):
        if i == 0 and not public:
            continue  # (kept as the submit was reported: harness.scoring.score_interval.keep_private_half)
        try:
            rows[i] = np.asarray(common_draws(m, part, RESAMPLES, SEED), dtype=np.float64)
        except Exception:  # noqa: BLE001 - (MemoryError: a crafted prediction of thousands of classes)
            if i == 0:
                return got  # its interval stands, it gets no tie mark
    if len(rows) > 1 and got.private_low is None:
        rows[1] = np.full(RESAMPLES, np.nan)  # no private interval, no private draws
    if public and not np.isfinite(rows[0]).all():
        return got
    with open(prediction.parent / STAGED_DRAWS, "wb") as fh:
        np.save(fh, np.stack(rows), allow_pickle=False)
    return got


def _by_part(n: int, cuts: list, parts: list, values_of):
    """The per-example values of N examples kept for ties and the Ladder, made half by half (CUTS: each half's
    indices; PARTS: each half's records; VALUES_OF: the metric's per-example values of records): None when the
    first (public, or whole) half's cannot be kept (uncertainty.summable), NaN where another half's cannot. So
    whether anything is kept, and what the public half's are, never depends on the private half (whose labels a
    participant probes through their predictions: a private value that overflows, or a record that fails,
    decided it before)."""
    import numpy as np

    from .uncertainty import summable
    out = np.full(n, np.nan)
    for i, (cut, part) in enumerate(zip(cuts, parts)):
        try:
            values = np.asarray(values_of(part), dtype=np.float64)
            ok = values.shape == (len(cut),) and summable(values)
        except Exception:  # noqa: BLE001 - a participant's odd records
            ok = False
        if not ok and i == 0:
            return None
        if ok:
            out[cut] = values
    return out


def _finite(*bounds) -> bool:
    return all(b is not None and math.isfinite(b) for b in bounds)


def _of_parts(parts: list, scores: list[float], private_score, interval_of, public: bool = True) -> Intervals:
    """The public (or whole-set) interval of PARTS[0] (PUBLIC false: not computed, a later grade's); with a
    second part (a round's private half) whose score matches PRIVATE_SCORE, its interval too; bounds that are not
    finite dropped (Intervals.finite). The private half's failing or overflowing only drops the private one
    (never told apart from a mismatch)."""
    got = Intervals()
    if public:
        first = interval_of(parts[0])
        got = Intervals(first.low, first.high)
    if len(parts) > 1:  # computed whatever the private score: the submit's time must not say whether it had one
        try:
            private = interval_of(parts[1])
        except Exception:  # noqa: BLE001 - (a MemoryError too: the child's cap) its interval only is lost
            private = None
        if private is not None and private_score is not None and _same(float(private_score), float(scores[1])):
            got.private_low, got.private_high = private.low, private.high
    return got.finite()


def _finisher(name: str):
    import numpy as np
    return np.sqrt if name == "sqrt-mean" else (lambda x: x)


def compute_from_values(dataset: Path, labels: Path, prediction: Path, score, private_score, split,
                        finish: str, wanted: tuple[str, ...] = PARTS) -> Intervals:
    """compute() for an opaque evaluator that wrote its per-example values: one finite number per line, as many
    as the label file's records (read by the task's [split]), whose mean (FINISH: or its square root) is the
    printed score of the whole set or each half. Anything else: no interval, and the note says which."""
    import numpy as np

    from .splits import SplitFormat, halves, read_records
    from .uncertainty import interval_of_values
    path = prediction.parent / EVALUATOR_VALUES
    try:
        lines = path.read_text(encoding="utf-8").split()
        if not 2 <= len(lines) <= MAX_VALUES:
            raise ValueError(len(lines))
        values = np.array([float(x) for x in lines], dtype=np.float64)
    except (OSError, ValueError, UnicodeDecodeError):
        return Intervals(note=NOT_NUMBERS)
    try:
        fmt = SplitFormat.from_manifest(Manifest.read(dataset).extra, "task.toml")
        n = len(read_records(labels, fmt.label)[0])
    except (UserError, OSError, ValueError, UnicodeDecodeError):
        return Intervals(note="no interval: the label file could not be counted")
    if n != len(values):
        return Intervals(note="no interval: the evaluator's per-example values are not one per test example")
        #                     (their count follows the prediction: a figure the run chose, never shown)
    cuts = [np.arange(n)] if split is None else list(halves(n, *split))
    if PRIVATE not in wanted and len(cuts) > 1:  # (not touched: a submit reported before its private half is scored)
        values[cuts.pop()] = np.nan
    unfit = [_unfit(values[cut], finish) for cut in cuts]
    if unfit[0]:  # the public (or whole) half decides alone; a private half's unfit values are dropped (NaN)
        return Intervals(note=unfit[0])
    for cut, why in zip(cuts[1:], unfit[1:]):
        if why:
            values[cut] = np.nan  # (its score is NaN: no private interval, as for a mismatch)
    fn = _finisher(finish)
    parts = [values[cut] for cut in cuts]
    scores = [float(fn(part.mean())) for part in parts]
    if score is None or not _same(float(score), scores[0]):
        return Intervals(note=f"no interval: the evaluator's per-example values do not make its score ({finish})")
    for i, why in enumerate(unfit[1:], start=1):  # a stand-in of its size for the interval's work, dropped after
        if why:  # (NaN resamples as one cell, far faster than real values: the time would tell the failure)
            parts[i] = np.resize(parts[0], len(parts[i]))  # (the public half's values: drawn from the same test set)
    got = _of_parts(parts, scores, private_score, lambda part: interval_of_values(part, fn, LEVEL, RESAMPLES, SEED),
                    split is None or PUBLIC in wanted)
    if got.note:
        return got
    with open(prediction.parent / STAGED, "wb") as fh:
        np.save(fh, values, allow_pickle=False)
    return got


def _unfit(values, finish: str) -> str | None:
    """Why an opaque evaluator's per-example VALUES of one half can have no interval (a note), or None."""
    import numpy as np

    from .uncertainty import summable
    if not np.isfinite(values).all():
        return NOT_NUMBERS
    if not summable(values):
        return OVERFLOW
    if finish == "sqrt-mean" and (values < 0).any():
        return "no interval: the evaluator's per_example.txt has negative values under sqrt-mean"
    return None


def keep_values(prediction: Path, keep: bool) -> None:
    """Commit (KEEP) or drop this grade's staged per-example values (or common-draw scores); an earlier grade's
    never outlive it (nor a private half kept after it: keep_private_half)."""
    for name in (PER_EXAMPLE, DRAWS):
        staged, kept = prediction.parent / (name + ".new"), prediction.parent / name
        if keep:
            (prediction.parent / PRIVATE_KEPT[name]).unlink(missing_ok=True)
        if keep and staged.exists():
            staged.replace(kept)
            continue
        staged.unlink(missing_ok=True)
        if keep:
            kept.unlink(missing_ok=True)


def keep_private_half(prediction: Path, split: tuple[float, int, str]) -> None:
    """Commit a later grade's private half only (harness.scheduler.private_half): its per-example values and its
    row of common-draw scores, in files of their own (PRIVATE_KEPT: the private board reads them), shaped as the
    reported grade's and NaN but for the private half. What the reported grade kept stays as it was, to the byte
    and to its inode: a public board's tie marks are cached by those files, and a rewrite would make its next read
    slower at the moment the private half was kept (review of stop 51). Kept nothing then (that grade's child may
    fail, or run out of memory, where the reported one did not: it does more), nothing is written. The staged
    files go either way."""
    import numpy as np

    from .splits import halves
    for name in (PER_EXAMPLE, DRAWS):
        staged, kept = prediction.parent / (name + ".new"), prediction.parent / name
        try:
            old, new = np.load(kept, allow_pickle=False), np.load(staged, allow_pickle=False)
            if old.shape != new.shape or old.ndim != (1 if name == PER_EXAMPLE else 2):
                continue
            out = np.full(old.shape, np.nan)
            if name == PER_EXAMPLE:
                private = halves(len(old), *split)[1]
                out[private] = new[private]
            elif len(old) == 2:
                out[1] = new[1]
            else:
                continue
            with open(staged, "wb") as fh:
                np.save(fh, out, allow_pickle=False)
            staged.replace(prediction.parent / PRIVATE_KEPT[name])
        except (OSError, ValueError, UserError):  # none kept, none staged: nothing to write
            pass
        finally:
            staged.unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    capped_child.cap(MEMORY_BYTES, CPU_SECONDS)
    job = json.loads(argv[0])
    try:
        got = compute(Path(job["dataset"]), Path(job["labels"]), Path(job["prediction"]), job["score"],
                      job["private_score"], tuple(job["split"]) if job["split"] else None, job.get("finish"),
                      tuple(job.get("parts", PARTS)))
    except MemoryError:
        raise SystemExit(OUT_OF_MEMORY) from None
    print(json.dumps(asdict(got)))


if __name__ == "__main__":
    main(sys.argv[1:])
