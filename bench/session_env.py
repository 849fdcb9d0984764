"""Per-session environments (process runtime): the first build of a requirements hash vs a cached start.

    .venv/bin/python bench/environments.py [--requirement transformers==4.46.3]

Cold: an empty uv download cache (UV_CACHE_DIR in a temp folder) and a new hash. Warm: the wheels are cached,
a new hash. Cached: the same hash again (what every later session with these requirements pays).
Writes bench/results/environments.json.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.runtime import environments  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--requirement", default="transformers==4.46.3")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["UV_CACHE_DIR"] = str(tmp / "uv-cache")
        envs = tmp / "envs"
        code = tmp / "code"
        code.mkdir()
        (code / "requirements.txt").write_text(f"{args.requirement}\n")
        cold = timed(lambda: environments.for_code(envs, code, None))
        cached = min(timed(lambda: environments.for_code(envs, code, None)) for _ in range(5))
        (code / "requirements.txt").write_text(f"{args.requirement}\nsix\n")  # a new hash, wheels cached
        warm = timed(lambda: environments.for_code(envs, code, None))
    row = {"requirement": args.requirement, "cold_build_s": round(cold, 2), "warm_build_s": round(warm, 2),
           "cached_start_s": round(cached, 4)}
    print(json.dumps(row))
    out = Path(__file__).resolve().parent / "results" / "environments.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
