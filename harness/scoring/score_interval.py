"""A scored submission's 95% bootstrap interval, computed once when it is graded (harness.scoring.grade).

The task's metric must be one of the library's (harness.scoring.metric_library) and its files laid out as its
`[split]` table says; the interval is then the percentile bootstrap over test examples (seeded: the same files
give the same interval), of the whole test set, or in a round of the public half (and of the private half, kept
hidden with the private score). The library's score must equal what the task's `evaluation.py` printed, else
the interval would be about another number: then, as for an opaque evaluator, there is none and the note says
why, in words a participant reads on the board.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import UserError
from harness.taskpacks.registry import Manifest

LEVEL = 0.95
RESAMPLES = 1000
SEED = 0
PER_EXAMPLE = "per_example.npy"  # beside graded/prediction: the metric's per-example values (harness.scoring.board_ties)


def _keep_values(path: Path, values) -> None:
    import numpy as np
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(values, dtype=np.float64), allow_pickle=False)
    tmp.replace(path)


@dataclass
class Intervals:
    low: float | None = None
    high: float | None = None
    private_low: float | None = None
    private_high: float | None = None
    note: str | None = None  # why there is none


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def intervals(dataset: Path, labels: Path, prediction: Path, score: float | None, private_score: float | None = None,
              split: tuple[float, int, str] | None = None) -> Intervals:
    """The intervals of a graded prediction (SPLIT: a round's public fraction, seed and task name, cut as
    harness.scoring.splits cuts it), or an Intervals whose note says why there are none. Never raises for a
    participant's file."""
    from .metric_library import metric
    from .metric_records import task_records
    from .splits import halves
    from .uncertainty import interval

    (prediction.parent / PER_EXAMPLE).unlink(missing_ok=True)  # an earlier grade's (a rescore) never outlives it
    manifest = Manifest.read(dataset)
    try:
        metric(manifest.metric)
    except UserError:
        return Intervals(note=f"no interval: the task's metric {manifest.metric[:40]!r} is its own evaluator's")
    if "split" not in manifest.extra:
        return Intervals(note="no interval: the task's task.toml has no [split] to read its files by")
    try:
        m, records = task_records(dataset, labels, prediction)
        if split is None:
            parts = [records]
        else:
            public, private = halves(len(records), *split)
            parts = [records.take(public), records.take(private)]
        scores = [m.score(part) for part in parts]
    except Exception:  # noqa: BLE001 - a participant's file (nesting, sizes, odd values): no interval, never a crash
        return Intervals(note="no interval: the prediction could not be read as the task's metric reads it")
    wanted = [score] if split is None else [score, private_score]
    if any(w is None or not _same(float(w), float(s)) for w, s in zip(wanted, scores)):
        return Intervals(note=f"no interval: the task's evaluator scores otherwise than the library's {m.name}")
    found = [interval(m, part, LEVEL, RESAMPLES, SEED) for part in parts]
    if m.per_example:  # per-example values kept beside the graded prediction: boards compare neighbours with them
        _keep_values(prediction.parent / PER_EXAMPLE, m.values(records))
    public, private = found[0], (found[1] if len(found) > 1 else None)
    return Intervals(public.low, public.high, private and private.low, private and private.high)
