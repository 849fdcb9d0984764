"""`nsml check` on every baseline in submissions/: static checks, then train to the first save and submit -t.

    .venv/bin/python bench/check_baselines.py [--scale 0.1]

Prepares each task at SCALE in a fresh state root, runs `nsml check` per baseline, and writes one row per
baseline (exit code, seconds, failed steps) to bench/results/check_baselines.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASK_OF = {"bus_eta": "bus-eta", "face_age": "face-age", "garbage_docs": "garbage-docs", "landmark": "landmark",
           "playlist": "playlist"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scale", default="0.1")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "HARNESS_HOME": root}
        harness = [sys.executable, "-m", "harness"]
        for task in sorted(set(TASK_OF.values())):
            subprocess.run(harness + ["dataset", "prepare", task, "--scale", args.scale], env=env, check=True,
                           capture_output=True)
        electra = None  # the ELECTRA+CNN baseline starts from the ELECTRA session's checkpoint (-a, as documented)
        for folder in sorted((REPO / "submissions").iterdir()):
            task = next(t for prefix, t in TASK_OF.items() if folder.name.startswith(prefix))
            extra = []
            if folder.name == "garbage_docs_electra_cnn" and electra:
                extra = ["-a", f"--load_session {electra[0]} --load_checkpoint {electra[1]} --epochs 1"]
            t0 = time.perf_counter()
            proc = subprocess.run(harness + ["--user", "checker", "check", str(folder), "-d", task, "-j", *extra],
                                  env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            try:
                steps = json.loads(proc.stdout)
            except ValueError:
                steps = [{"step": "cli", "ok": False, "evidence": proc.stderr.strip()[-300:]}]
            if folder.name == "garbage_docs_electra":
                saved = [s for s in steps if s["step"] == "training saves a checkpoint" and s["ok"]]
                if saved:  # "USER/TASK/N saved 'CKPT'"
                    words = saved[0]["evidence"].split()
                    electra = (words[0], words[-1].strip("'"))
            row = {"baseline": folder.name, "args": " ".join(extra[1:]), "task": task, "exit": proc.returncode, "seconds": round(seconds, 1),
                   "failed": [f"{s['step']}: {s['evidence']}" for s in steps if not s["ok"]]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = REPO / "bench" / "results" / "check_baselines.json"
    out.write_text(json.dumps({"scale": args.scale, "rows": rows}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
