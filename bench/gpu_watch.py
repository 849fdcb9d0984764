"""What the GPU check (bench/gpu.py) watches while its first session runs: `ps` (the sessions, the GPUs-in-use
line, NVML's readings) and the dashboard's sessions page of a real `harness serve`."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

READING = re.compile(r"^\s*gpu (\d+) (.*): (\d+)% busy, ([\d.]+) of ([\d.]+) GiB$")


def readings_of(ps_stderr: str) -> list[dict]:
    """`ps`'s reading lines ("  gpu 0 NVIDIA H200: 87% busy, 12.5 of 140.0 GiB") as numbers."""
    found = []
    for line in ps_stderr.splitlines():
        m = READING.match(line)
        if m:
            found.append({"index": int(m[1]), "model": m[2], "util": int(m[3]), "used": float(m[4]),
                          "total": float(m[5]), "line": line.strip()})
    return found


class Web:
    """`harness serve` of the check's state root on a free loopback port, logged in as USER (the sessions'
    owner, whose devices' readings the page may show)."""

    def __init__(self, check, user: str):
        import httpx
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        token = check.json("user", "add", user)["token"]  # the account the CLI acts as
        self.log = open(check.root / "serve.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", str(port), "--log-level",
                                      "warning"], env=check.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=check.root)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=10)
        while True:
            try:
                page = self.client.get("/login").text
                break
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError(f"harness serve exited ({self.proc.returncode}): see {check.root}/serve.log")
                check.left()
                time.sleep(0.3)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        if csrf is None:
            self.close()
            raise RuntimeError("the dashboard's login page has no csrf field")
        self.client.post("/login", data={"token": token, "next": "/sessions", "csrf": csrf[1]})

    def sessions_page(self) -> str:
        return self.client.get("/sessions").text

    def close(self):
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def watch(check, first: str, second: str | None, web: Web | None) -> dict:
    """While FIRST runs (polled every half second): its devices, the GPUs-in-use line and the readings `ps`
    prints, whether the dashboard shows them, and SECOND's status (queued, or — wrongly — running beside it)."""
    seen = {"first_running": False, "second_queued_while_first_ran": False, "both_ran": False, "in_use_line": None,
            "readings": [], "web_in_use": False, "web_readings": False}
    while True:
        check.left()
        rows = {r["name"]: r for r in check.json("ps", "-a")}
        status = rows[first]["status"]
        if status == "running":
            seen["first_running"] = True
            seen["first_gpu_ids"] = rows[first]["gpu_ids"]
            other = rows.get(second, {}).get("status")
            seen["second_queued_while_first_ran"] |= other == "queued"
            seen["both_ran"] |= other == "running"
            err = check.cli("ps").stderr
            line = next((x for x in err.splitlines() if x.startswith("GPUs: ")), "")
            if re.match(r"GPUs: 1 of \d+ in use", line):
                seen["in_use_line"] = line
            seen["readings"] += readings_of(err)
            if web is not None and not (seen["web_in_use"] and seen["web_readings"]):
                html = web.sessions_page()
                seen["web_in_use"] |= bool(re.search(r"<p>1 of \d+ in use", html))
                seen["web_readings"] |= 'id="gpu-readings"' in html
        elif status not in ("queued", "starting"):
            return seen
        time.sleep(0.5)
