"""A board of 1,000 users with and without score intervals and tie marks (issue 26: ≤ 2× the same board
without). Both boards are read in this process through the library (harness.service.boards.board), the same
100,000 submissions; "with": every scored submission has its stored interval, and the top 50 entries have kept
per-example values (10,000 test examples each) for the tie marks: the first read computes them, later reads find
them cached (as a server reading a board every few seconds does).

    python bench/board_intervals.py [--repeat 5]   → bench/results/board_intervals.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fixtures import big_board  # noqa: E402


def _board(root: Path):
    from harness.core.settings import load_settings
    from harness.service.boards import board
    from harness.state import Harness
    h = Harness(load_settings(root=root, user="bench"))
    try:
        start = time.perf_counter()
        rows = board(h, "big")
        return time.perf_counter() - start, rows
    finally:
        h.store.close()


def _with_intervals(root: Path, examples: int) -> None:
    """Stored intervals on every scored submission; one run folder per top-50 entry with kept values."""
    import numpy as np
    from sqlalchemy import update

    from harness.core.settings import load_settings
    from harness.scoring.grade import prediction_path
    from harness.scoring.score_interval import PER_EXAMPLE
    from harness.service.boards import board
    from harness.state import Harness
    from harness.store.models import Run, Submission
    h = Harness(load_settings(root=root, user="bench"))
    rng = np.random.default_rng(5)
    try:
        with h.tx() as db:
            db.execute(update(Submission).where(Submission.score.is_not(None))
                       .values(score_low=Submission.score - 0.01, score_high=Submission.score + 0.01))
        top = board(h, "big")[:50]
        with h.tx() as db:
            for r in top:
                run = Run(kind=db.get(Run, db.get(Submission, r["submission"]).run_id).kind, runtime="process",
                          gpu_ids=[], run_dir=str(root / "runs" / str(r["submission"])))
                db.add(run)
                db.flush()
                db.get(Submission, r["submission"]).run_id = run.id
                kept = prediction_path(run.run_dir).parent / PER_EXAMPLE
                kept.parent.mkdir(parents=True)
                np.save(kept, (rng.random(examples) < r["score"]).astype(np.float64), allow_pickle=False)
    finally:
        h.store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--examples", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # (a store may still be closing)
        plain, spans = Path(tmp) / "plain", Path(tmp) / "spans"
        for root in (plain, spans):
            root.mkdir()
            big_board(root, n_subs=100_000, n_users=1000)
        _with_intervals(spans, args.examples)
        _board(plain)  # warm: imports, the schema check
        bare = [_board(plain)[0] for _ in range(args.repeat)]
        first, rows = _board(spans)
        cached = [_board(spans)[0] for _ in range(args.repeat)]
        ties = sum(1 for r in rows if r["tie"])
    result = {"command": "python bench/board_intervals.py", "cpus": os.cpu_count(), "users": 1000,
              "submissions": 100_000, "test_examples": args.examples, "tie_top": 50,
              "bare_s": round(statistics.median(bare), 4), "with_intervals_cached_s": round(statistics.median(cached), 4),
              "with_intervals_first_read_s": round(first, 4),
              "cached_over_bare": round(statistics.median(cached) / statistics.median(bare), 2),
              "first_read_over_bare": round(first / statistics.median(bare), 2), "rows_in_a_tie": ties}
    out = REPO / "bench" / "results" / "board_intervals.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
