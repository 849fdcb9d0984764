"""The GPU check (scripts/gpu-check.sh runs it): the harness's GPU path measured on the machine it runs on.

On a machine with an NVIDIA driver it prepares face-age in a fresh state root and
  1. times bench/gpu_session/main.py (a CNN, bf16, a fixed number of steps) bare, then as `nsml run -g 1`: the
     session must see exactly its GPU, `ps` and the inventory must show it in use; goal: session steps/s ÷ bare
     steps/s >= 0.97 (best of two each);
  2. starts a second `-g 1` session while the first runs: it must queue and start only once the first has ended
     (no oversubscription); a `-g 0` session must see no GPU;
  3. submits the first session's checkpoint (its infer runs on the GPU): scored and ranked;
  4. reads NVML (model, memory, utilisation) through `ps` and the dashboard's GPU table while the session runs.
Runs use the process runtime unconfined (a GPU machine here has no bubblewrap), and the output says so.

Without a driver ("no GPU here") it runs the same steps with a stand-in — a declared one-GPU inventory, CPU torch,
small sizes — so that the check cannot rot: allocation, queueing, CUDA_VISIBLE_DEVICES, submit and the tables are
exercised; throughput and NVML are reported, not judged.

    python bench/gpu.py [--out DIR]      # prints a table, writes DIR/gpu-check.json; exit 1 when a check fails"""
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

HERE = Path(__file__).resolve().parent
ENTRY = HERE / "gpu_session"
GOAL = 0.97
SIZES = {True: {"steps": 1500, "warmup": 50, "batch": 1024, "width": 64, "cpus": 4, "memory": "32G", "scale": 1.0},
         False: {"steps": 20, "warmup": 3, "batch": 64, "width": 16, "cpus": 1, "memory": "4G", "scale": 0.2}}


class Check:
    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env
        self.results: list[dict] = []

    def cli(self, *args, check=True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], env=self.env, capture_output=True,
                              text=True, timeout=900, cwd=self.root)  # the installed harness, not a checkout's
        if check and proc.returncode != 0:
            raise RuntimeError(f"harness {' '.join(map(str, args))} -> {proc.returncode}: {proc.stderr.strip()[-600:]}")
        return proc

    def json(self, *args):
        return json.loads(self.cli(*args, "-j").stdout)

    def judge(self, name: str, ok: bool | None, detail: str) -> None:
        """ok None: reported, not judged (a stand-in cannot show it)."""
        self.results.append({"check": name, "ok": ok, "detail": detail})


def gpu_here() -> list[str]:
    from harness.runtime import gpus
    return list(gpus._driver_models())


def bare(train: Path, size: dict, env: dict) -> dict:
    from harness.runtime.base import thread_env
    args = [sys.executable, str(ENTRY / "main.py"), "--bare", str(train)] + \
        [a for k in ("steps", "warmup", "batch", "width") for a in (f"--{k}", str(size[k]))]
    proc = subprocess.run(args, env={**env, **thread_env(size["cpus"])}, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"bare run failed: {proc.stderr.strip()[-600:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sees(check: Check, session: str) -> dict:
    found = re.search(r"gpu-check: sees (\{.*\})", check.cli("logs", session).stdout)
    return json.loads(found.group(1)) if found else {}


def session_row(check: Check, name: str) -> dict:
    return next(r for r in check.json("ps", "-a") if r["name"] == name)


def start(check: Check, size: dict, gpus: int, steps: int | None = None) -> str:
    entry_args = " ".join(f"--{k} {size[k] if k != 'steps' or steps is None else steps}"
                          for k in ("steps", "warmup", "batch", "width"))
    out = check.json("run", "-d", "face-age", "-g", gpus, "-c", size["cpus"], "--memory", size["memory"],
                     "--time-limit", 900, "-a", entry_args, ENTRY)
    return out["session"]


class Web:
    """`harness serve` of the state root, logged in as an account of its own: the sessions page's GPU tables."""

    def __init__(self, check: Check):
        import socket

        import httpx
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        token = check.json("user", "add", "gpu-check-web")["token"]
        self.log = open(check.root / "serve.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", str(port), "--log-level",
                                      "warning"], env=check.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=check.root)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.client.get("/login")
                break
            except httpx.TransportError:
                time.sleep(0.3)
        csrf = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/login").text).group(1)
        self.client.post("/login", data={"token": token, "next": "/sessions", "csrf": csrf})

    def sessions_page(self) -> str:
        return self.client.get("/sessions").text

    def close(self):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def watch(check: Check, first: str, second: str, web: Web | None) -> dict:
    """While FIRST runs: what `ps`, its inventory lines and the web page say, and SECOND's status."""
    seen = {"first_running": False, "second_queued_while_first_ran": False, "in_use_line": None, "readings": [],
            "web_in_use": False, "web_readings": False}
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        rows = {r["name"]: r for r in check.json("ps", "-a")}
        status = rows[first]["status"]
        if status == "running":
            seen["first_running"] = True
            seen["first_gpu_ids"] = rows[first]["gpu_ids"]
            if rows[second]["status"] == "queued":
                seen["second_queued_while_first_ran"] = True
            lines = check.cli("ps").stderr.splitlines()
            in_use = [line for line in lines if line.startswith("GPUs:")]
            if in_use and in_use[0].startswith("GPUs: 1 of"):
                seen["in_use_line"] = in_use[0]
            seen["readings"] += [line.strip() for line in lines if line.startswith("  gpu ")]
            if web is not None and not (seen["web_in_use"] and seen["web_readings"]):
                html = web.sessions_page()
                seen["web_in_use"] |= bool(re.search(r"<p>1 of \d+ in use", html))
                seen["web_readings"] |= 'id="gpu-readings"' in html
        elif status not in ("queued", "starting"):
            break
        time.sleep(0.5)
    return seen


def wait_end(check: Check, name: str) -> dict:
    check.cli("logs", "-f", name, check=False)
    return session_row(check, name)


def run_check(out: Path) -> int:
    models = gpu_here()
    gpu = bool(models)
    size = SIZES[gpu]
    root = Path(tempfile.mkdtemp(prefix="gpu-check."))
    settings = ("" if gpu else "gpus = 1  # the stand-in: a declared one-GPU inventory\n") + \
        '[process]\nsandbox = "none"  # as on a GPU machine here: no bubblewrap\n'
    (root / "harness.toml").write_text(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(HARNESS_HOME=str(root), PYTHONUNBUFFERED="1")
    check = Check(root, env)
    print(f"gpu-check: {'GPU: ' + ', '.join(models) if gpu else 'no GPU here: a stand-in (one declared GPU, CPU torch)'}"
          f"; state root {root}; process runtime unconfined (no bubblewrap)", flush=True)
    check.cli("dataset", "prepare", "face-age", "--scale", size["scale"])
    train = root / ".harness" / "datasets" / "face-age" / "train"
    web = Web(check)
    try:
        bare_runs = [bare(train, size, env)]
        first, second = start(check, size, 1), start(check, size, 1)
        third = start(check, size, 0, steps=0)
        watched = watch(check, first, second, web)
        rows = {name: wait_end(check, name) for name in (first, second, third)}
        bare_runs.append(bare(train, size, env))
        submit = check.json("submit", first, "final")
        board = check.json("board", "face-age")
    finally:
        web.close()
    judge(check, gpu, models, size, bare_runs, rows, (first, second, third), watched, submit, board)
    report = {"gpu": gpu, "models": models, "host": platform.node(), "python": platform.python_version(),
              "torch": bare_runs[0].get("torch"), "sizes": size, "goal": GOAL,
              "bare_steps_per_s": [b["steps_per_s"] for b in bare_runs],
              "session_steps_per_s": [rows[n]["summary"].get("steps_per_s") for n in (first, second)],
              "isolation": rows[first]["isolation"], "checks": check.results,
              "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ratio = max(report["session_steps_per_s"]) / max(report["bare_steps_per_s"])
    report["ratio"] = ratio
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1) + "\n")
    print_table(report)
    failed = [r for r in check.results if r["ok"] is False]
    if failed:
        print(f"gpu-check: {len(failed)} check(s) failed; the state root is kept: {root}")
        return 1
    shutil.rmtree(root, ignore_errors=True)  # its service leaves once its root is gone
    return 0


def judge(check, gpu, models, size, bare_runs, rows, names, watched, submit, board):
    first, second, third = names
    one, none = sees(check, first), sees(check, third)
    got = ",".join(map(str, watched.get("first_gpu_ids") or []))
    check.judge("session sees exactly its GPU", one.get("cuda_visible_devices") == got and got != "" and
                (one.get("devices") == 1 if gpu else True),
                f"allocated [{got}]; it saw CUDA_VISIBLE_DEVICES={one.get('cuda_visible_devices')!r}, "
                f"{one.get('devices')} device(s) {one.get('names') or ''}".strip())
    check.judge("ps and the inventory show it in use", watched["first_running"] and watched["in_use_line"] is not None,
                watched["in_use_line"] or "no 'GPUs: 1 of N in use' line while it ran")
    check.judge("a second -g 1 session queues", watched["second_queued_while_first_ran"] and
                rows[second]["started"] is not None and rows[second]["started"] >= rows[first]["ended"],
                f"queued while the first ran: {watched['second_queued_while_first_ran']}; first ended "
                f"{rows[first]['ended']}, second started {rows[second]['started']}")
    check.judge("a -g 0 session sees no GPU", none.get("cuda_visible_devices") == "" and none.get("devices") == 0,
                f"CUDA_VISIBLE_DEVICES={none.get('cuda_visible_devices')!r}, {none.get('devices')} device(s)")
    ours = [r for r in board if r["session"] == first]
    found = re.search(r"gpu-check: sees (\{.*\})", Path(submit["log"]).read_text(errors="replace"))
    infer = json.loads(found.group(1)) if found else {}  # the infer run prints what it sees too
    check.judge("submit on the GPU: scored and ranked", submit.get("score") is not None and bool(ours) and
                infer.get("cuda_visible_devices") not in (None, "") and (infer.get("devices") == 1 if gpu else True),
                f"score {submit.get('score')}, rank {ours[0]['rank'] if ours else None}; its infer saw "
                f"CUDA_VISIBLE_DEVICES={infer.get('cuda_visible_devices')!r}, {infer.get('devices')} device(s)")
    readings = sorted(set(watched["readings"]))
    check.judge("NVML readings in ps while it runs", bool(readings) and any(m in readings[0] for m in models)
                if gpu else None, "; ".join(readings[-3:]) or "none (no driver here)")
    check.judge("the dashboard's GPU table", (watched["web_in_use"] and watched["web_readings"]) if gpu else
                watched["web_in_use"] or False,
                f"in use shown: {watched['web_in_use']}, NVML table shown: {watched['web_readings']}")
    for name in (first, second, third):
        if rows[name]["status"] != "succeeded":
            check.judge(f"session {name} succeeded", False, f"{rows[name]['status']} {rows[name]['reason'] or ''}")
    bare_best = max(b["steps_per_s"] for b in bare_runs)
    sessions = [rows[n]["summary"].get("steps_per_s") or 0.0 for n in (first, second)]
    ratio = max(sessions) / bare_best
    check.judge(f"throughput in a session ÷ bare >= {GOAL}", ratio >= GOAL if gpu else None,
                f"{ratio:.3f} (session {max(sessions):.1f} steps/s, bare {bare_best:.1f})"
                + ("" if gpu else " — CPU stand-in, not a GPU figure"))


def print_table(report: dict) -> None:
    width = max(len(r["check"]) for r in report["checks"])
    print(f"{'check':<{width}}  result  detail")
    for r in report["checks"]:
        mark = {True: "ok", False: "FAILED", None: "n/a"}[r["ok"]]
        print(f"{r['check']:<{width}}  {mark:<6}  {r['detail']}")
    where = ", ".join(report["models"]) if report["gpu"] else "no GPU here (stand-in)"
    print(f"gpu-check: {where}; isolation {report['isolation']} (process runtime, no bubblewrap); "
          f"ratio {report['ratio']:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"))
    args = parser.parse_args(argv)
    return run_check(args.out)


if __name__ == "__main__":
    sys.exit(main())
