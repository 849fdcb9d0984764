"""What score intervals, paired tie marks and the Ladder rule cost (harness.scoring.uncertainty), as wall time and
as a ratio to bare baselines measured in the same run.

    .venv/bin/python bench/intervals.py [--n 100000] [--users 1000] [--board-n 10000] [--repeat 5]

Rows:
* per submission, at N test examples (goal: an interval <= 0.5 s for accuracy and rmse): the 95 % interval
  (1,000 resamples) against computing the metric once on the same records, and against the task's own
  evaluation.py scoring files of that size (face-age's for accuracy, bus-eta's for rmse: what the harness already
  pays per scored submission); rmse also with exact index resampling, the way the strata replace past 20 million
  drawn indices; the paired beats-probability of two submissions; the Ladder's acceptance test. f1 (a whole-sample
  metric): its interval plus its scores on the common draws that its tie marks compare (both paid at grade);
  gap the same, by the subsampled bootstrap past 2 million drawn indices, and once by exact indices.
* a board of USERS entries at BOARD_N test examples: ranking the users by their score (the bare board: scores
  computed, sorted) against the same plus an interval per entry and a tie mark per neighbour pair
  (board_uncertainty: one set of resamples for the whole board). A served board would read intervals stored
  when each submission was scored; this row is the cost of computing them all at once.

Times are the median of REPEAT runs (the evaluator's: of 3). Writes bench/results/intervals.json.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from harness.scoring.metric_library import Records, metric  # noqa: E402
from harness.scoring.resampling import common_draw_scores, within_share  # noqa: E402
from harness.scoring.uncertainty import (  # noqa: E402
    beats_probability,
    board_uncertainty,
    common_draws,  # noqa: E402
    interval,
    ladder_accepts,
)

OUT = REPO / "bench" / "results" / "intervals.json"


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def classification(rng, n, p=0.8):
    labels = rng.integers(0, 5, n)
    return Records(labels, np.where(rng.random(n) < p, labels, (labels + 1) % 5))


def regression(rng, n, sigma=40.0):
    truth = rng.uniform(30, 900, n)
    return Records(truth, np.abs(truth + rng.normal(0, sigma, n)))


def evaluator_seconds(name, records, tmp):
    """Seconds of the built-in task's evaluation.py on files holding RECORDS (the median of 3 runs)."""
    label, pred = Path(tmp) / "test_label", Path(tmp) / "pred"
    with open(label, "w", newline="") as lf, open(pred, "w", newline="") as pf:
        lw, pw = csv.writer(lf), csv.writer(pf)
        if name == "accuracy":
            lw.writerow(["file_name", "age_class"]), pw.writerow(["file_name", "age_class"])
            lw.writerows((f"{i}.jpg", v) for i, v in enumerate(records.labels))
            pw.writerows((f"{i}.jpg", v) for i, v in enumerate(records.predictions))
        else:
            lw.writerow(["id", "travel_s"]), pw.writerow(["id", "travel_s"])
            lw.writerows(enumerate(records.labels))
            pw.writerows(enumerate(records.predictions))
    task = "face-age" if name == "accuracy" else "bus-eta"
    cmd = [sys.executable, str(REPO / "tasks" / task / "evaluation.py"), "--prediction", str(pred),
           "--test_label_path", str(label)]
    return median_time(lambda: subprocess.run(cmd, check=True, capture_output=True), 3)


def per_submission(n, repeat):
    rng = np.random.default_rng(0)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("accuracy", classification), ("rmse", regression)):
            m = metric(name)
            a, b = make(rng, n), make(rng, n)
            once = median_time(lambda: m.score(a), repeat)
            iv = median_time(lambda: interval(m, a), repeat)
            ev = evaluator_seconds(name, a, tmp)
            row = {"metric_once_s": round(once, 5), "interval_s": round(iv, 4),
                   "interval_over_metric_once": round(iv / once, 1), "evaluator_py_s": round(ev, 3),
                   "interval_over_evaluator_py": round(iv / ev, 3),
                   "beats_probability_s": round(median_time(lambda: beats_probability(m, a, b), repeat), 4),
                   "ladder_accepts_s": round(median_time(lambda: ladder_accepts(m, a, b), repeat), 5),
                   "interval": list(interval(m, a)), "score": m.score(a)}
            if name == "rmse":
                row["interval_exact_indices_s"] = round(median_time(lambda: interval(m, a, exact=True), 1), 3)
                row["interval_exact_indices"] = list(interval(m, a, exact=True))
                row["within_stratum_variance_share"] = within_share(m.values(a))
            rows[name] = row
        m, a = metric("f1"), classification(rng, n)  # a whole-sample metric: its grade also keeps common draws
        once, iv = median_time(lambda: m.score(a), repeat), median_time(lambda: interval(m, a), repeat)
        draws = median_time(lambda: common_draws(m, a, 1000, 0), repeat)
        exact_draws = median_time(lambda: common_draw_scores(m.sample(a), 1000, 0), 1)
        rows["f1"] = {"metric_once_s": round(once, 5), "interval_s": round(iv, 4), "common_draws_s": round(draws, 4),
                      "at_grade_s": round(iv + draws, 4), "interval": list(interval(m, a)), "score": m.score(a),
                      "common_draws_exact_indices_s": round(exact_draws, 3)}
        m = metric("gap")  # past SUBSAMPLE_LIMIT: the subsampled bootstrap; exact indices once, for comparison
        labels = rng.integers(0, 1000, n)
        a = Records(labels, np.where(rng.random(n) < 0.6, labels, rng.integers(0, 1000, n)), rng.random(n),
                    np.arange(n))
        once, iv = median_time(lambda: m.score(a), repeat), median_time(lambda: interval(m, a), repeat)
        draws = median_time(lambda: common_draws(m, a, 1000, 0), repeat)
        rows["gap"] = {"metric_once_s": round(once, 5), "interval_s": round(iv, 4), "common_draws_s": round(draws, 4),
                       "at_grade_s": round(iv + draws, 4), "interval": list(interval(m, a)), "score": m.score(a),
                       "interval_exact_indices_s": round(median_time(lambda: interval(m, a, exact=True), 1), 2),
                       "interval_exact_indices": list(interval(m, a, exact=True))}
    return rows


def board(users, n, repeat):
    """A board of USERS entries on N examples: bare (score, sort) vs with intervals and tie marks."""
    rng = np.random.default_rng(1)
    out = {}
    for name in ("accuracy", "rmse"):
        m = metric(name)
        labels = rng.integers(0, 5, n) if name == "accuracy" else rng.uniform(30, 900, n)
        quality = np.sort(rng.uniform(0.5, 0.9, users)) if name == "accuracy" else rng.uniform(30, 60, users)
        if name == "accuracy":
            entries = [Records(labels, np.where(rng.random(n) < q, labels, (labels + 1) % 5)) for q in quality]
        else:
            entries = [Records(labels, np.abs(labels + rng.normal(0, q, n))) for q in quality]

        def bare():
            scores = [m.score(e) for e in entries]
            return sorted(range(users), key=lambda i: m.direction.sort_key(scores[i]))

        def full():
            order = bare()
            return board_uncertainty(m, [entries[i] for i in order])

        plain = median_time(bare, repeat)
        with_all = median_time(full, repeat)
        out[name] = {"users": users, "examples": n, "board_bare_s": round(plain, 4),
                     "board_with_intervals_and_ties_s": round(with_all, 3),
                     "ratio": round(with_all / plain, 1), "tie_groups": max(full().groups) + 1}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--board-n", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    result = {"command": " ".join(["python bench/intervals.py", *sys.argv[1:]]), "cpus": os.cpu_count(),
              "load_average_before": os.getloadavg()[0], "resamples": 1000, "level": 0.95,
              "per_submission": {"examples": args.n, **per_submission(args.n, args.repeat)},
              "board": board(args.users, args.board_n, 3)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
