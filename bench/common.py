"""Helpers shared by the benchmark scripts: the harness CLI as a user runs it, and a timer."""
from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SDK = REPO / "harness" / "session_sdk"

# An NSML entry whose training does WORK seconds of CPU work and saves CHECKPOINTS checkpoints (0, 1, ...), and
# whose infer is a no-op.
ENTRY = '''
import argparse, time
import nsml
p = argparse.ArgumentParser()
p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
p.add_argument("--iteration", default="0"); p.add_argument("--work", type=float, default=2.0)
p.add_argument("--checkpoints", type=int, default=1)
cfg = p.parse_args()
nsml.bind(save=lambda d: open(d + "/w", "w").write("1"), load=lambda d: None,
          infer=lambda path: [0] * (sum(1 for _ in open(path, encoding="utf-8")) - 1))
if cfg.pause:
    nsml.paused(scope=locals())
if cfg.mode == "train":
    end = time.process_time() + cfg.work
    x = 0
    while time.process_time() < end:
        x += 1
    nsml.report(summary=True, step=0, iterations=x)
    for i in range(cfg.checkpoints):
        nsml.save(i)
'''


def cli(root: Path, *args: str, user: str = "bench") -> str:
    env = dict(os.environ, HARNESS_HOME=str(root), HARNESS_USER=user)
    proc = subprocess.run([sys.executable, "-m", "harness", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_and_follow(root: Path, code: Path, *flags: str) -> str:
    """`nsml run` then `nsml logs -f`: what a user waits for. Returns the session name."""
    name = cli(root, "run", "-d", "garbage-docs", "-e", "main.py", *flags, str(code)).split()[1]
    cli(root, "logs", "-f", name)
    return name


def prepare_without_quota(root: Path) -> None:
    settings = root / "harness.toml"  # (the bench's user may pick either runtime: a top-level key, first)
    settings.write_text('runtime_choices = ["process", "docker"]\n' + (settings.read_text() if settings.exists() else ""))
    cli(root, "dataset", "prepare", "garbage-docs", "--scale", "0.1", user=getpass.getuser())  # the organizer
    manifest = root / ".harness" / "datasets" / "garbage-docs" / "task.toml"
    manifest.write_text(manifest.read_text().replace("quota = 1 ", "quota = 0 "))  # organizer: no quota
