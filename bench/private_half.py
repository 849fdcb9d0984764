"""What a round's submit waits for, now that its private half is scored after it is reported
(harness.scheduler.private_half), against grading both halves before the report (the path until stop 50).

    .venv/bin/python bench/private_half.py [--scale 1.0] [--repeat 5]

On bus-eta (its own evaluation.py, rmse, a csv keyed by id) built at SCALE, with a prediction off by a little on
every record, each row is the median of REPEAT grades of the same file at public_fraction 0.3:
* both: grade() of both halves at once, the submit's wait before (the evaluator twice, one interval child);
* reported: grade(defer_private=True), the submit's wait now (the evaluator on the public half, one child);
* later: grade(public_score=...), the private half's grade after the report (the evaluator on the private half,
  one child), which nobody waits for;
plus the ratios reported ÷ both (the wait) and (reported + later) ÷ both (the scoring machine's work).
Writes bench/results/private_half.json.
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
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from harness.core.settings import load_settings  # noqa: E402
from harness.scoring.grade import grade  # noqa: E402


def _median(fn, repeat: int) -> tuple[float, object]:
    times, got = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-private-") as tmp:
        tmp = Path(tmp)
        dataset = tmp / "bus-eta"
        subprocess.run([sys.executable, str(REPO / "tasks" / "bus-eta" / "build.py"), "--out", str(dataset),
                        "--scale", str(args.scale)], check=True, capture_output=True)
        for name in ("evaluation.py", "task.toml"):
            (dataset / name).write_bytes((REPO / "tasks" / "bus-eta" / name).read_bytes())
        with open(dataset / "test" / "test_label", newline="") as f:
            rows = list(csv.DictReader(f))
        prediction = tmp / "run" / "graded" / "prediction"
        prediction.parent.mkdir(parents=True)
        with open(prediction, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["id", "travel_s"])
            out.writerows([r["id"], float(r["travel_s"]) + (i % 7) * 3.0] for i, r in enumerate(rows))
        settings = load_settings(root=tmp / "root", user="bench")
        rnd = SimpleNamespace(public_fraction=0.3, split_seed=7)

        def run(**kw):
            return grade(settings, dataset, prediction, False, rnd, "process", **kw)
        both, full = _median(run, args.repeat)
        reported, first = _median(lambda: run(defer_private=True), args.repeat)
        later, second = _median(lambda: run(public_score=first.score), args.repeat)
    assert full.ok and first.private_due and second.private_score == full.private_score, (full, first, second)
    result = {"command": f"python bench/private_half.py --scale {args.scale} --repeat {args.repeat}",
              "cpus": len(os.sched_getaffinity(0)), "load_average_before": load,
              "task": "bus-eta", "examples": len(rows), "public_fraction": 0.3,
              "both_s": round(both, 3), "reported_s": round(reported, 3), "later_s": round(later, 3),
              "wait_ratio_reported_over_both": round(reported / both, 3),
              "work_ratio_reported_plus_later_over_both": round((reported + later) / both, 3)}
    out = REPO / "bench" / "results" / "private_half.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
