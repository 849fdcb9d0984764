"""The GPU check (scripts/gpu-check.sh runs it): the harness's GPU path measured on the machine it runs on.

On a machine with an NVIDIA driver it prepares face-age in a fresh state root and
  1. times bench/gpu_session/main.py (a CNN, bf16, a fixed number of steps) bare, then as `nsml run -g 1`: the
     session must see exactly its GPU, `ps` and the inventory must show it in use; goal: session steps/s ÷ bare
     steps/s >= 0.97 (best of two each);
  2. starts a second session asking for every GPU while the first runs: it must queue and start only once the
     first has ended (no oversubscription); a `-g 0` session must see no GPU;
  3. submits the first session's checkpoint (its infer runs on the GPU): scored and ranked;
  4. reads NVML (model, memory, utilisation) through `ps` and the dashboard's GPU table while the session runs:
     the device's memory in use must rise above its idle reading.
Runs use the process runtime unconfined (a GPU machine here has no bubblewrap), and the output says so.

Without a driver ("no GPU here") it runs the same steps with a stand-in — a declared one-GPU inventory, CPU torch,
small sizes — so that the check cannot rot: allocation, queueing, CUDA_VISIBLE_DEVICES, submit and the tables are
exercised; throughput and NVML are reported, not judged.

    python bench/gpu.py [--out DIR] [--budget SECONDS]   # a table; DIR/gpu-check.json; exit 1: a check failed

Every step has its own row: a step that fails or outlasts the budget is a FAILED row, and the table and the JSON
are written all the same."""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_watch import Web, readings_of, watch

HERE = Path(__file__).resolve().parent
ENTRY = HERE / "gpu_session"
GOAL = 0.97
SIZES = {True: {"steps": 1500, "warmup": 50, "batch": 1024, "width": 64, "cpus": 4, "memory": "32G", "scale": 1.0},
         False: {"steps": 20, "warmup": 3, "batch": 64, "width": 16, "cpus": 1, "memory": "4G", "scale": 0.2}}
BUDGET = {True: 480.0, False: 300.0}  # seconds for the whole check (a device command may run 600)


class Check:
    """The state root, the harness's CLI on it, the rows of the table, and the time left."""

    def __init__(self, root: Path, env: dict, budget: float):
        self.root, self.env = root, env
        self.until = time.monotonic() + budget
        self.results: list[dict] = []

    def left(self) -> float:
        left = self.until - time.monotonic()
        if left <= 0:
            raise TimeoutError("the check's time budget is spent")
        return left

    def cli(self, *args, check=True) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], env=self.env, text=True,
                                  capture_output=True, timeout=self.left(), cwd=self.root)  # the installed harness
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"harness {args[0]} outlasted the check's time budget") from None
        if check and proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise RuntimeError(f"harness {' '.join(map(str, args[:2]))}: {last[:300]}")
        return proc

    def json(self, *args):
        return json.loads(self.cli(*args, "-j").stdout)

    def judge(self, name: str, ok: bool | None, detail: str) -> None:
        """ok None: reported, not judged (a stand-in cannot show it)."""
        self.results.append({"check": name, "ok": ok, "detail": detail})

    def step(self, name: str, fn, *args):
        """FN(*ARGS), or None with a FAILED row naming the step when it raises or runs out of time."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - each step's failure is a row of the table, not a traceback
            self.judge(f"step: {name}", False, f"{type(exc).__name__}: {str(exc)[:300]}")
            return None


def driver_models() -> tuple[bool, list[str]]:
    """(an NVIDIA driver is loaded, the models NVML reads)."""
    from harness.runtime import gpus
    return any(os.path.exists(p) for p in gpus.DRIVER_PATHS), list(gpus._driver_models())


def bare(check: Check, train: Path, size: dict) -> dict:
    from harness.runtime.base import thread_env
    args = [sys.executable, str(ENTRY / "main.py"), "--bare", str(train)] + \
        [a for k in ("steps", "warmup", "batch", "width") for a in (f"--{k}", str(size[k]))]
    proc = subprocess.run(args, env={**check.env, **thread_env(size["cpus"])}, capture_output=True, text=True,
                          timeout=check.left())
    if proc.returncode != 0:
        raise RuntimeError(f"bare run: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def logged(log: str, what: str) -> dict:
    found = re.search(rf"gpu-check: {what} (\{{.*\}})", log)
    return json.loads(found.group(1)) if found else {}


def start(check: Check, size: dict, gpus: int, steps: int | None = None) -> str:
    entry_args = " ".join(f"--{k} {size[k] if k != 'steps' or steps is None else steps}"
                          for k in ("steps", "warmup", "batch", "width"))
    return check.json("run", "-d", "face-age", "-g", gpus, "-c", size["cpus"], "--memory", size["memory"],
                      "--time-limit", int(check.left()), "-a", entry_args, ENTRY)["session"]


def wait_end(check: Check, name: str) -> dict:
    check.cli("logs", "-f", name, check=False)
    return next(r for r in check.json("ps", "-a") if r["name"] == name)


def run_check(out: Path, budget: float | None) -> int:
    driver, models = driver_models()
    if driver and not models:
        line = ("an NVIDIA driver is loaded but NVML reads no device (nvidia-ml-py cannot talk to it): not a GPU "
                "check, and not a machine without a GPU either")
        print(f"gpu-check: {line}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu-check.json").write_text(json.dumps({"gpu": None, "checks": [
            {"check": "step: read the GPUs", "ok": False, "detail": line}]}, indent=1) + "\n")
        return 1
    gpu = bool(models)
    size = SIZES[gpu]
    root = Path(tempfile.mkdtemp(prefix="gpu-check."))
    (root / "harness.toml").write_text(("" if gpu else "gpus = 1  # the stand-in: a declared one-GPU inventory\n") +
                                       '[process]\nsandbox = "none"  # as on a GPU machine here: no bubblewrap\n'
                                       f'[limits]\nrun_memory_bytes = {int(size["memory"][:-1]) << 30}  # what the '
                                       f'session asks (--memory {size["memory"]}), whatever share of this machine\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(HARNESS_HOME=str(root), PYTHONUNBUFFERED="1")
    check = Check(root, env, budget or BUDGET[gpu])
    where = f"GPU: {', '.join(models)}" if gpu else "no GPU here: a stand-in (one declared GPU, CPU torch)"
    print(f"gpu-check: {where}; state root {root}; process runtime unconfined (no bubblewrap)", flush=True)
    report = {"gpu": gpu, "models": models, "host": platform.node(), "python": platform.python_version(),
              "sizes": size, "goal": GOAL, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        measure(check, gpu, models, size, report)
    finally:
        report["checks"] = check.results
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu-check.json").write_text(json.dumps(report, indent=1) + "\n")
        print_table(report)
    failed = [r for r in check.results if r["ok"] is False]
    if failed:
        print(f"gpu-check: {len(failed)} check(s) failed; the state root is kept: {root}")
        return 1
    shutil.rmtree(root, ignore_errors=True)  # its service leaves once its root is gone
    return 0


def measure(check: Check, gpu: bool, models: list[str], size: dict, report: dict) -> None:
    if check.step("prepare face-age", check.cli, "dataset", "prepare", "face-age", "--scale", size["scale"]) is None:
        return
    train = check.root / ".harness" / "datasets" / "face-age" / "train"
    me = (check.step("whoami", check.json, "whoami") or {}).get("user")
    web = check.step("start harness serve", Web, check, me) if me else None
    names: list[str] = []
    try:
        idle = check.step("read ps before the sessions", lambda: readings_of(check.cli("ps").stderr)) or []
        bare_runs = [check.step("bare run 1", bare, check, train, size)]
        report["torch"] = (bare_runs[0] or {}).get("torch")
        first = check.step("run -g 1", start, check, size, 1)
        if first is None:
            return
        every = max(1, len(models))  # more than are free while the first runs
        second = check.step(f"run -g {every}", start, check, size, every)
        third = check.step("run -g 0", start, check, size, 0, 0)
        names += [n for n in (first, second, third) if n]
        watched = check.step("watch the first session", watch, check, first, second, web) or {}
        rows = {n: check.step(f"wait for {n}", wait_end, check, n) or {} for n in names}
        bare_runs.append(check.step("bare run 2", bare, check, train, size))
        submit = check.step("submit", check.json, "submit", first, "final") or {}
        board = check.step("board", check.json, "board", "face-age") or []
    finally:
        if web is not None:
            web.close()
        for name in names:  # whatever failed: no session keeps a GPU past the check
            if time.monotonic() < check.until:
                check.cli("stop", name, check=False)
    logs = {n: check.step(f"log of {n}", lambda n=n: check.cli("logs", n).stdout) or "" for n in names}
    report.update(isolation=rows.get(first, {}).get("isolation"), idle=idle, watched=watched,
                  bare_steps_per_s=[b["steps_per_s"] for b in bare_runs if b],
                  session_steps_per_s=[(rows.get(n) or {}).get("summary", {}).get("steps_per_s") for n in (first,
                                                                                                           second)])
    judge(check, gpu, models, (first, second, third), rows, logs, watched, idle, submit, board, report)


def judge(check, gpu, models, names, rows, logs, watched, idle, submit, board, report) -> None:
    first, second, third = names
    one, none = logged(logs.get(first, ""), "sees"), logged(logs.get(third, ""), "sees")
    got = ",".join(map(str, watched.get("first_gpu_ids") or []))
    check.judge("session sees exactly its GPU", got != "" and one.get("cuda_visible_devices") == got and
                (one.get("devices") == 1 if gpu else True),
                f"allocated [{got}]; it saw CUDA_VISIBLE_DEVICES={one.get('cuda_visible_devices')!r}, "
                f"{one.get('devices')} device(s) {one.get('names') or ''}".strip())
    check.judge("ps and the inventory show it in use", bool(watched.get("in_use_line")),
                watched.get("in_use_line") or "no 'GPUs: 1 of N in use' line while it ran")
    ended = logged(logs.get(first, ""), "done").get("ended")
    began = logged(logs.get(second, ""), "sees").get("started")
    check.judge("a session asking for every GPU queues", bool(watched.get("second_queued_while_first_ran")) and
                not watched.get("both_ran") and ended is not None and began is not None and began > ended,
                f"queued while the first ran: {watched.get('second_queued_while_first_ran')}; both seen running: "
                f"{watched.get('both_ran')}; it started {None if None in (began, ended) else round(began - ended, 2)}"
                " s after the first ended")
    check.judge("a -g 0 session sees no GPU", none.get("cuda_visible_devices") == "" and none.get("devices") == 0,
                f"CUDA_VISIBLE_DEVICES={none.get('cuda_visible_devices')!r}, {none.get('devices')} device(s)")
    ours = [r for r in board if r.get("session") == first]
    try:
        infer = logged(Path(submit["log"]).read_text(errors="replace"), "sees")
    except (KeyError, OSError, TypeError):
        infer = {}
    check.judge("submit on the GPU: scored and ranked", submit.get("score") is not None and bool(ours) and
                infer.get("cuda_visible_devices") not in (None, "") and (infer.get("devices") == 1 if gpu else True),
                f"score {submit.get('score')}, rank {ours[0].get('rank') if ours else None}; its infer saw "
                f"CUDA_VISIBLE_DEVICES={infer.get('cuda_visible_devices')!r}, {infer.get('devices')} device(s)")
    device = (watched.get("first_gpu_ids") or [None])[0]  # the first session's device: idle against busy
    busy = [d for d in watched.get("readings") or [] if d["index"] == device]
    idle_used = next((d["used"] for d in idle if d["index"] == device), None)
    peak = max(busy, key=lambda d: (d["used"], d["util"]), default=None)
    check.judge("NVML readings in ps while it runs", (peak is not None and idle_used is not None and
                                                      peak["used"] > idle_used and
                                                      any(m in peak["model"] for m in models)) if gpu else None,
                f"idle {idle_used} GiB used; while it ran {peak['line'] if peak else 'no readings'}"
                if gpu else "none (no driver here)")
    check.judge("the dashboard's GPU table", bool(watched.get("web_in_use") and watched.get("web_readings")) if gpu else
                bool(watched.get("web_in_use")),
                f"in use shown: {watched.get('web_in_use')}, NVML table shown: {watched.get('web_readings')}")
    for name in (first, second, third):
        if name and (rows.get(name) or {}).get("status") != "succeeded":
            check.judge(f"session {name} succeeded", False,
                        f"{(rows.get(name) or {}).get('status')} {(rows.get(name) or {}).get('reason') or ''}")
    sessions = [s or 0.0 for s in report["session_steps_per_s"]]
    bares = report["bare_steps_per_s"] or [0.0]
    ratio = max(sessions) / max(bares) if max(bares) else 0.0
    report["ratio"] = ratio
    check.judge(f"throughput in a session ÷ bare >= {GOAL}", ratio >= GOAL if gpu else None,
                f"{ratio:.3f} (session {max(sessions):.1f} steps/s, bare {max(bares):.1f})"
                + ("" if gpu else " — CPU stand-in, not a GPU figure"))


def print_table(report: dict) -> None:
    rows = report.get("checks") or []
    width = max([len(r["check"]) for r in rows] + [5])
    print(f"{'check':<{width}}  result  detail")
    for r in rows:
        mark = {True: "ok", False: "FAILED", None: "n/a"}[r["ok"]]
        print(f"{r['check']:<{width}}  {mark:<6}  {r['detail']}")
    where = ", ".join(report["models"]) if report["gpu"] else "no GPU here (stand-in)"
    print(f"gpu-check: {where}; isolation {report.get('isolation')} (process runtime, no bubblewrap); "
          f"ratio {report.get('ratio', 0.0):.3f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"))
    parser.add_argument("--budget", type=float, default=None, help="Seconds for the whole check (480 on a GPU).")
    args = parser.parse_args(argv)
    return run_check(args.out.resolve(), args.budget)


if __name__ == "__main__":
    sys.exit(main())
