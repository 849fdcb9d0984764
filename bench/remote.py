"""The `remote` row of bench/suite.py: the same commands locally and through `harness serve` on loopback, as a
logged-in CLI — `ps -a`, `board -j`, and `run` + `logs -f` of a 2-s session. Goal: remote adds ≤ 0.1 s per
command (the largest of the three, per command)."""
from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fixtures
from common import ENTRY, cli, prepare_without_quota

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    import httpx
    port = _free_port()
    proc = subprocess.Popen([PY, "-m", "harness", "--root", str(root), "serve", "--port", str(port), "--log-level",
                             "warning", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/api/v1/openapi.json", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("harness serve did not start")


def bench_remote(tmp: Path, repeat: int, harness_cmd, timed_cmd, row, med, work: float = 2.0) -> dict:
    root = tmp / "remote"
    root.mkdir()
    prepare_without_quota(root)
    code = fixtures.entry_folder(tmp / "remote-code", ENTRY)
    for _ in range(3):
        name = cli(root, "run", "-d", "garbage-docs", "-a", "--work 0", str(code)).split()[1]
        cli(root, "logs", "-f", name)
    token = json.loads(cli(root, "user", "add", "bench", "-j", user=getpass.getuser()))["token"]  # the organizer
    proc, url = _serve(root)
    config = Path(tempfile.mkdtemp(prefix="bench-config-"))
    local = dict(os.environ, HARNESS_HOME=str(root), HARNESS_USER="bench", HARNESS_CONFIG_DIR=str(config))
    remote = dict(os.environ, HARNESS_SERVER=url, HARNESS_TOKEN=token, HARNESS_CONFIG_DIR=str(config))
    remote.pop("HARNESS_USER", None)
    samples = {f"{k}_{m}": [] for k in ("ps", "board", "session") for m in ("local", "remote")}

    def session(env):
        start = time.perf_counter()
        _, out = timed_cmd(harness_cmd() + ["run", "-d", "garbage-docs", "-a", f"--work {work}", str(code)], env)
        timed_cmd(harness_cmd() + ["logs", "-f", out.split()[1]], env)
        return time.perf_counter() - start
    try:
        for _ in range(repeat):
            for mode, env in (("local", local), ("remote", remote)):
                samples[f"ps_{mode}"].append(timed_cmd(harness_cmd() + ["ps", "-a"], env)[0])
                samples[f"board_{mode}"].append(timed_cmd(harness_cmd() + ["board", "garbage-docs", "-j"], env)[0])
                samples[f"session_{mode}"].append(session(env))
    finally:
        proc.terminate()
        proc.wait(10)
    added = {"ps": med(samples["ps_remote"]) - med(samples["ps_local"]),
             "board_json": med(samples["board_remote"]) - med(samples["board_local"]),
             "run_logs_f_per_command": (med(samples["session_remote"]) - med(samples["session_local"])) / 2}
    worst = max(added.values())
    return row("remote", "`harness serve` on loopback, logged-in CLI: time added per command (ps -a, board -j, "
               f"run + logs -f of a {work:g}-s session) over the same command locally", "≤ 0.1 s", worst, 0.1, "s",
               extra={**{f"added_{k}_s": round(v, 3) for k, v in added.items()},
                      **{f"{k}_s": round(med(v), 3) for k, v in samples.items()}}, samples=samples)
