"""Overhead of the harness over bare Python, measured as medians of several runs in one process.

1. A session whose entry does 2 s of CPU work: `nsml run` + `nsml logs -f` through the harness CLI vs
   `python main.py` run bare (wall ratio and absolute overhead).
2. `nsml submit` of a no-op infer: the wall time of infer + score + rank.

    python bench/overhead.py [--repeat 5] [--out bench/results/overhead.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ENTRY, REPO, SDK, cli, prepare_without_quota, run_and_follow, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "overhead.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        root = Path(tmp) / "state"
        code = Path(tmp) / "code"
        root.mkdir()
        code.mkdir()
        (code / "main.py").write_text(ENTRY)
        prepare_without_quota(root)

        bare_env = dict(os.environ, PYTHONPATH=str(SDK))
        bare, harness, names = [], [], []
        for _ in range(args.repeat):
            bare.append(timed(lambda: subprocess.run([sys.executable, "main.py", "--work", str(args.work)],
                                                     cwd=code, env=bare_env, check=True)))

            harness.append(timed(lambda: names.append(run_and_follow(root, code, "--runtime", "process",
                                                                     "-a", f"--work {args.work}"))))
        submits = [timed(lambda: cli(root, "submit", names[-1], "0")) for _ in range(args.repeat)]
        board = json.loads(cli(root, "board", "garbage-docs", "-j"))
        assert board and board[0]["score"] == 0.5, board

    b, h, s = statistics.median(bare), statistics.median(harness), statistics.median(submits)
    result = {
        "command": f"python bench/overhead.py --repeat {args.repeat} --work {args.work}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "repeat": args.repeat,
        "bare_python_s": round(b, 3), "harness_run_logs_f_s": round(h, 3),
        "ratio": round(h / b, 3), "overhead_s": round(h - b, 3), "submit_noop_s": round(s, 3),
        "samples": {"bare": [round(x, 3) for x in bare], "harness": [round(x, 3) for x in harness],
                    "submit": [round(x, 3) for x in submits]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| measure | median |\n|---|---|\n| bare `python main.py` ({args.work:g} s CPU) | {b:.2f} s |\n"
          f"| `nsml run` + `nsml logs -f` | {h:.2f} s |\n| ratio / overhead | {h / b:.2f}x / +{h - b:.2f} s |\n"
          f"| `nsml submit` (no-op infer: infer + score + rank) | {s:.2f} s |")


if __name__ == "__main__":
    main()
