"""Per-session environments (process runtime): the first build of a requirements hash vs a cached start.

    .venv/bin/python bench/session_env.py [--requirement transformers==4.46.3]

Cold: a new hash (each build downloads with a cache of its own, removed when it ends: runtime.env_store, so a
participant's downloads are never kept). New hash: the same packages plus one more, built again from nothing.
Cached: the same hash again (what every later session with these requirements pays). The bounds the harness
puts on a build (limits.env_bytes, measured every 3 s; bubblewrap) are on, as in a real `run`.
Writes bench/results/session_env.json.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.runtime import env_builds, env_store, environments  # noqa: E402

USE = environments.Use(env_builds.Bounds(bytes=10 << 30, seconds=1200, owner="bench", confined=True))


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
        envs = tmp / "envs"
        code = tmp / "code"
        code.mkdir()
        (code / "requirements.txt").write_text(f"{args.requirement}\n")
        cold = timed(lambda: environments.for_code(envs, code, None, use=USE))
        cached = min(timed(lambda: environments.for_code(envs, code, None, use=USE)) for _ in range(5))
        (code / "requirements.txt").write_text(f"{args.requirement}\nsix\n")  # a new hash
        again = timed(lambda: environments.for_code(envs, code, None, use=USE))
        charged = sum(size for _, _, size in env_store.charged(envs, "bench"))
    row = {"requirement": args.requirement, "cold_build_s": round(cold, 2), "new_hash_build_s": round(again, 2),
           "cached_start_s": round(cached, 4), "charged_bytes_both": charged}
    print(json.dumps(row))
    out = Path(__file__).resolve().parent / "results" / "session_env.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
