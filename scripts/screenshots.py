"""Regenerate the dashboard screenshots of the docs (docs/screenshots/board.png, round-board.png, session.png,
submission.png).

    python scripts/screenshots.py [--out DIR] [--chromium PATH]

A fresh state root in a temporary folder: a task from `nsml dataset init`, an entry from `nsml init`, two
participants (alice: 12 epochs, bob: 3) who train and submit; a real `harness serve` on 127.0.0.1; then Debian's
headless Chromium (`bash scripts/setup-browser.sh` installs it; Playwright drives it, no browser is downloaded)
logs in as alice and saves the board, a Ladder round's team board (intervals, a tie), her session with its
graphs, and her dry run's submission page. Nothing
outside the temporary folder and DIR is touched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASK = "demo-task"
ROUND_TASK = "demo-round"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run"]


def nsml(root: Path, *args: str, user: str | None = None, cwd: Path | None = None) -> str:
    """The CLI on ROOT (local mode, in this process's environment minus any HARNESS_ setting), its stdout."""
    argv = [sys.executable, "-m", "harness", "--root", str(root), *(["--user", user] if user else []), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"nsml {' '.join(args)}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--root", str(root), "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=1) as answer:
                if answer.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"harness serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def populate(root: Path, work: Path) -> tuple[str, int]:
    """A task, alice's and bob's sessions and submits. Returns alice's session and her dry run's submission id."""
    nsml(root, "dataset", "init", TASK, cwd=work)  # its README then names the folder as a user would
    nsml(root, "dataset", "add", str(work / TASK))
    nsml(root, "init", str(work / "entry"))
    sessions = {}
    for user, epochs in (("alice", 12), ("bob", 3)):
        out = nsml(root, "run", "-d", TASK, "-a", f"--epochs {epochs}", "-m", f"{epochs} epochs", str(work / "entry"),
                   user=user)
        sessions[user] = out.split()[1]  # "Session USER/TASK/N is started"
    for user, name in sessions.items():
        nsml(root, "logs", "-f", name, user=user)
    dry = json.loads(nsml(root, "submit", "-t", sessions["alice"], "11", "-j", user="alice"))
    nsml(root, "submit", sessions["alice"], "11", user="alice")
    nsml(root, "submit", sessions["bob"], "2", user="bob")
    contest_round(root, work)
    return sessions["alice"], dry["id"]


def contest_round(root: Path, work: Path) -> None:
    """A second task in an open Ladder round: red (alice) and green (carol) train alike (a statistical tie), blue
    (bob) less; each team submits twice, so the Ladder shows some submits and not others."""
    from datetime import datetime, timedelta, timezone
    nsml(root, "dataset", "init", ROUND_TASK, cwd=work)
    nsml(root, "dataset", "add", str(work / ROUND_TASK))
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    (work / "cup.toml").write_text(
        f'name = "demo-cup"\n[teams]\nred = ["alice"]\nblue = ["bob"]\ngreen = ["carol"]\n[[rounds]]\n'
        f'name = "round1"\ntasks = ["{ROUND_TASK}"]\nstart = {(now - timedelta(hours=1)).isoformat()}\n'
        f'end = {(now + timedelta(days=1)).isoformat()}\nsubmit = {{ quota = 5, period_seconds = 3600 }}\n'
        f'public_fraction = 0.5\nsplit_seed = 0\npublic_board = "ladder"\n')
    nsml(root, "contest", "create", str(work / "cup.toml"))
    for user, runs in (("alice", (4, 12)), ("carol", (12, 12)), ("bob", (1, 2))):
        for epochs in runs:
            name = nsml(root, "run", "-d", ROUND_TASK, "-a", f"--epochs {epochs}", str(work / "entry"),
                        user=user).split()[1]
            nsml(root, "logs", "-f", name, user=user)
            nsml(root, "submit", name, str(epochs - 1), user=user)


def shoot(url: str, token: str, session: str, submission: int, out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/login")
        page.fill("#token", token)
        page.click("#login")
        page.wait_for_url(f"{url}/tasks")
        # Waits are functions, not bare expressions: the dashboard's CSP refuses eval (see tests/test_web.py).
        page.goto(f"{url}/tasks/{TASK}")
        page.wait_for_function("() => document.querySelector('#board').innerText.includes('bob')", timeout=30000)
        shots.append(_shot(page, out / "board.png"))
        page.goto(f"{url}/tasks/{ROUND_TASK}")
        page.wait_for_function("() => document.querySelector('#board').innerText.includes('green')", timeout=30000)
        shots.append(_shot(page, out / "round-board.png"))
        page.goto(f"{url}/sessions/{session}")
        page.wait_for_function(
            "() => (document.querySelector(\".chart[data-metric='train/acc']\") || {dataset: {}}).dataset.points"
            " === '12'", timeout=60000)
        shots.append(_shot(page, out / "session.png"))
        page.goto(f"{url}/submissions/{submission}")
        page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('succeeded')",
                               timeout=30000)
        shots.append(_shot(page, out / "submission.png"))
        browser.close()
    return shots


def _shot(page, path: Path) -> Path:
    page.wait_for_timeout(500)  # charts drawn, refreshed parts settled
    page.screenshot(path=str(path), full_page=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium executable (default: Debian's)")
    args = parser.parse_args()
    if not Path(args.chromium).exists():
        raise SystemExit(f"--chromium: {args.chromium} does not exist (bash scripts/setup-browser.sh installs it)")
    work = Path(tempfile.mkdtemp(prefix="nsml-screenshots-"))
    root = work / "state"
    root.mkdir()
    server = None
    try:
        token = json.loads(nsml(root, "user", "add", "alice", "-j"))["token"]
        server, url = serve(root, work / "serve.log")
        session, submission = populate(root, work)
        for path in shoot(url, token, session, submission, args.out, args.chromium):
            print(f"wrote {path}")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        from harness.client.service import stop_services  # the local service the CLI calls started

        stop_services(root / ".harness")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
