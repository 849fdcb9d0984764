"""Overhead of the docker runtime, as medians of several runs in one process.

1. A session doing 2 s of CPU work via `nsml run --runtime docker` + `nsml logs -f`, vs a bare
   `docker run --rm --network none` of the same image and command (wall ratio and absolute overhead).
2. A session whose folder has a requirements.txt: the first run builds the derived image, the second reuses it.

Needs a Docker engine and nsml-harness/session:latest (scripts/setup-docker.sh).

    python bench/docker_overhead.py [--repeat 5] [--out bench/results/docker_overhead.json]
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ENTRY, REPO, SDK, prepare_without_quota, run_and_follow, timed  # noqa: E402

IMAGE = "nsml-harness/session:latest"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "docker_overhead.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        root, code, req = Path(tmp) / "state", Path(tmp) / "code", Path(tmp) / "req"
        for d in (root, code, req):
            d.mkdir()
        for d in (code, req):
            (d / "main.py").write_text(ENTRY)
            os.chmod(d, 0o755)
        prepare_without_quota(root)
        bare_cmd = ["docker", "run", "--rm", "--network", "none", "-v", f"{code}:/app:ro", "-v",
                    f"{SDK}:/opt/nsml-sdk:ro", "-w", "/app", "-e", "PYTHONPATH=/opt/nsml-sdk", IMAGE,
                    "python3", "main.py", "--work", str(args.work)]
        bare, harness = [], []
        for _ in range(args.repeat):
            bare.append(timed(lambda: subprocess.run(bare_cmd, check=True, capture_output=True)))
            harness.append(timed(lambda: run_and_follow(root, code, "--runtime", "docker",
                                                        "-a", f"--work {args.work}")))
        (req / "requirements.txt").write_text(f"# bench {time.time()}\nnumpy\n")  # a fresh requirements hash
        first = timed(lambda: run_and_follow(root, req, "--runtime", "docker", "-a", "--work 0"))
        cached = statistics.median(timed(lambda: run_and_follow(root, req, "--runtime", "docker", "-a", "--work 0"))
                                   for _ in range(args.repeat))
    b, h = statistics.median(bare), statistics.median(harness)
    result = {"command": f"python bench/docker_overhead.py --repeat {args.repeat} --work {args.work}",
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "bare_docker_run_s": round(b, 3), "harness_docker_s": round(h, 3), "ratio": round(h / b, 3),
              "overhead_s": round(h - b, 3), "requirements_first_run_s": round(first, 3),
              "requirements_cached_run_s": round(cached, 3),
              "samples": {"bare": [round(x, 3) for x in bare], "harness": [round(x, 3) for x in harness]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| measure | median |\n|---|---|\n| bare `docker run --rm --network none` ({args.work:g} s CPU) | {b:.2f} s |\n"
          f"| `nsml run --runtime docker` + `nsml logs -f` | {h:.2f} s |\n"
          f"| ratio / overhead | {h / b:.2f}x / +{h - b:.2f} s |\n"
          f"| session with requirements.txt, first run (builds the derived image) | {first:.2f} s |\n"
          f"| the same requirements again (cached image) | {cached:.2f} s |")


if __name__ == "__main__":
    main()
