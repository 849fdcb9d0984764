"""The docker runtime's derived image (a session's requirements over its base): how long its build takes.

    .venv/bin/python bench/derived_image.py [--requirement six==1.16.0] [--runs 2]

Each run builds a new hash (the requirement plus a never-seen exclusion, so nothing is cached) over
nsml-harness/session:latest with the bounds a real `run` has, then removes the image. Writes
bench/results/derived_image.json. Compare commits by running it from each (the tree it lies in is the one timed).
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.runtime import env_builds, images  # noqa: E402
from harness.runtime.docker_runtime import client  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--requirement", default="six==1.16.0")
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()
    api = client()
    bounds = env_builds.Bounds(bytes=10 << 30, seconds=1200, owner="bench", confined=True)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            code = Path(tmp) / f"code{time.time_ns()}"
            code.mkdir()
            (code / "main.py").write_text("print('hi')\n")
            (code / "requirements.txt").write_text(f"{args.requirement}\nnumpy!=0.{time.time_ns()}\n")
            t0 = time.perf_counter()
            tag = images.session_image(api, code, None, "nsml-harness/session:latest", bounds=bounds)
            times.append(time.perf_counter() - t0)
            api.images.remove(tag, force=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    result = {"commit": commit, "requirement": args.requirement, "build_s": [round(t, 2) for t in times],
              "median_s": round(statistics.median(times), 2)}
    out = Path(__file__).parent / "results" / "derived_image.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
