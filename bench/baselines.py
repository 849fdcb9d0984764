"""Held-out scores and CPU training times of the garbage-docs baselines, through the real CLI.

Prepares garbage-docs (default scale, seed 0), trains each baseline with its default arguments, submits the
checkpoint with the best validation accuracy, and prints a Markdown table.

    python bench/baselines.py [--scale 1.0] [--out bench/results/baselines.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, cli  # noqa: E402

BASELINES = ["garbage_docs_majority", "garbage_docs_lstm"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "baselines.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="harness-baselines-") as tmp:
        root = Path(tmp)
        cli(root, "dataset", "prepare", "garbage-docs", "--scale", str(args.scale))
        for baseline in BASELINES:
            start = time.perf_counter()
            user = baseline.replace("_", "-")  # one user per baseline: one counted submit each
            folder = str(REPO / "submissions" / baseline)
            name = cli(root, "run", "-d", "garbage-docs", "-e", "main.py", folder, user=user).split()[1]
            cli(root, "logs", "-f", name, user=user)
            train_s = time.perf_counter() - start
            ckpts = json.loads(cli(root, "model", "ls", name, "-j", user=user))
            best = max(ckpts, key=lambda c: (c["summary"].get("valid/balanced_acc", 0), c["checkpoint"]))
            result = json.loads(cli(root, "submit", name, best["checkpoint"], "-j", user=user))
            rows.append({"baseline": baseline, "checkpoint": best["checkpoint"],
                         "valid_balanced_acc": best["summary"].get("valid/balanced_acc"), "test_accuracy": result["score"],
                         "train_seconds": round(train_s, 1)})
    out = {"command": f"python bench/baselines.py --scale {args.scale}",
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("| baseline | held-out accuracy (balanced test) | best valid balanced acc | CPU training time |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['baseline']} | {r['test_accuracy']:.4f} | {r['valid_balanced_acc']:.4f} (checkpoint {r['checkpoint']}) "
              f"| {r['train_seconds']:.0f} s |")


if __name__ == "__main__":
    main()
