"""`RemoteApi`: every operation of `service.api.Api` done by a `harness serve` over HTTP (httpx), for the
account whose token the CLI logged in with. The CLI prints its results exactly as it prints local ones.

Folders go up as tar streams after the snapshot rules are applied here (.nsmlignore, no links out, no special
files, the size cap); the server checks everything again. Server errors come back as the same one-line
UserError (exit code 2) the local library raises; an unreachable server is one line too.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, unquote

import httpx

from harness.core import archives
from harness.core.enums import RunStatus
from harness.core.errors import NotFound, PermissionDenied, QuotaExceeded, UserError
from harness.service.api import Api

API = "/api/v1"
ERRORS = {401: UserError, 403: PermissionDenied, 404: NotFound, 429: QuotaExceeded}
RECONNECT_SECONDS = 300.0  # how long a waiting submit keeps trying to reach a restarting server
WAIT_SLICE = 25.0


def _session_path(name: str) -> str:
    parts = name.strip().split("/")
    if len(parts) != 3 or not all(parts) or not parts[2].isdigit():
        raise UserError(f"SESSION: {name!r} is not a session name (USER/TASK/N)")
    return "/sessions/" + "/".join(quote(p, safe="") for p in parts)


class RemoteApi(Api):
    remote = True

    def __init__(self, url: str, token: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        plain = self.url.startswith("http://")  # no TLS to verify: skip loading the CA bundle (~30 ms a command)
        self.http = httpx.Client(base_url=self.url + API, timeout=httpx.Timeout(timeout, connect=10.0),
                                 headers={"Authorization": f"Bearer {token}"}, follow_redirects=False,
                                 verify=False if plain else True)

    def close(self) -> None:
        self.http.close()

    # -- plumbing -------------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise UserError(f"server {self.url}: cannot reach it ({type(exc).__name__}: {exc})") from None
        self._raise_for(response)
        return response

    def _raise_for(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text.strip()[:300] or response.reason_phrase
        raise ERRORS.get(response.status_code, UserError)(message)

    def _json(self, method: str, path: str, **kw):
        return self._send(method, path, **kw).json()

    def _stream(self, path: str, params: dict) -> Iterator[bytes]:
        try:
            with self.http.stream("GET", path, params=params, timeout=httpx.Timeout(None, connect=10.0)) as r:
                if r.status_code >= 400:
                    r.read()
                    self._raise_for(r)
                yield from r.iter_raw()
        except httpx.TransportError as exc:
            raise UserError(f"server {self.url}: the stream broke ({type(exc).__name__}: {exc})") from None

    # -- identity and accounts ------------------------------------------------------------------------------
    def whoami(self):
        return {**self._json("GET", "/whoami"), "server": self.url}

    def add_user(self, name, organizer=False, team=None):
        return self._json("POST", "/users", json={"name": name, "organizer": organizer, "team": team})["token"]

    def list_users(self):
        return self._json("GET", "/users", params={"limit": 1000})

    def disable_user(self, name):
        self._send("POST", f"/users/{quote(name, safe='')}/disable")

    def reset_token(self, name):
        return self._json("POST", f"/users/{quote(name, safe='')}/token")["token"]

    # -- sessions -------------------------------------------------------------------------------------------
    def start_session(self, task, folder, entry, args, memo, opts, note):
        src = Path(folder).expanduser().resolve()
        if not src.is_dir():
            raise UserError(f"FOLDER: {folder!r} is not a folder")
        if not (src / entry).is_file():
            raise UserError(f"-e/--entry: {entry!r} not found in {src}")
        from harness.runs.snapshot import snapshot_code  # the same rules as a local run, applied before upload
        with tempfile.TemporaryDirectory(prefix="nsml-upload-") as tmp:
            snapshot_code(src, Path(tmp) / "code")
            with open(Path(tmp) / "code.tar", "wb") as fh:
                archives.pack(Path(tmp) / "code", fh)
            with open(Path(tmp) / "code.tar", "rb") as fh:
                got = self._json("POST", "/sessions", content=fh, headers={"Content-Type": "application/x-tar"},
                                 params={"task": task, "entry": entry, "memo": memo, "options": json.dumps(opts),
                                         **({"args": args} if args is not None else {})})
        for line in got["notes"]:
            note(line)
        return got["session"]

    def fork_session(self, session, checkpoint, args, memo, opts, note):
        got = self._json("POST", _session_path(session) + "/fork",
                         json={"checkpoint": checkpoint, "args": args, "memo": memo, "options": opts})
        for line in got["notes"]:
            note(line)
        return got["session"]

    def list_sessions(self, all_, last, task):
        params = {"all": all_, **({"last": last} if last else {}), **({"task": task} if task else {})}
        return self._json("GET", "/sessions", params=params)

    def inventory(self):
        return self._json("GET", "/inventory")

    def session_info(self, name):
        return self._json("GET", _session_path(name))

    def session_log(self, name, follow):
        return self._stream(_session_path(name) + "/log", {"follow": follow})

    def session_metrics(self, name, x="step", keys=None):
        return self._json("GET", _session_path(name) + "/metrics", params={"x": x, "keys": keys or []})

    def stop_sessions(self, pattern):
        return self._json("POST", "/sessions/stop", json={"pattern": pattern})

    def remove_sessions(self, pattern):
        return self._json("POST", "/sessions/remove", json={"pattern": pattern})

    def set_memo(self, name, text):
        self._send("PUT", _session_path(name) + "/memo", json={"text": text})

    # -- checkpoints ----------------------------------------------------------------------------------------
    def list_checkpoints(self, session):
        return self._json("GET", _session_path(session) + "/checkpoints")

    def remove_checkpoints(self, session, pattern):
        return self._json("DELETE", _session_path(session) + f"/checkpoints/{quote(pattern, safe='')}")

    def pull_checkpoint(self, session, checkpoint, dest):
        target = Path(dest).expanduser()
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UserError(f"PATH: {dest} exists and is not an empty folder")
        path = _session_path(session) + f"/checkpoints/{quote(checkpoint, safe='')}/archive"
        with tempfile.TemporaryDirectory(prefix="nsml-pull-") as tmp:
            spooled = Path(tmp) / "c.tar"
            try:
                with self.http.stream("GET", path, timeout=httpx.Timeout(None, connect=10.0)) as r:
                    if r.status_code >= 400:
                        r.read()
                        self._raise_for(r)
                    skipped = [s for s in unquote(r.headers.get("x-skipped", "")).split("\n") if s]
                    with open(spooled, "wb") as fh:
                        for chunk in r.iter_raw():
                            fh.write(chunk)
            except httpx.TransportError as exc:
                raise UserError(f"server {self.url}: the download broke ({exc})") from None
            if target.exists():
                target.rmdir()
            archives.unpack(spooled, target, max_bytes=1 << 40, what="checkpoint")
        return str(target), skipped

    # -- submissions ----------------------------------------------------------------------------------------
    def start_submit(self, session, checkpoint, dry_run, time_limit, runtime, entry, esm, verbose, note):
        got = self._json("POST", "/submissions", json={
            "session": session, "checkpoint": checkpoint, "dry_run": dry_run, "time_limit": time_limit,
            "runtime": runtime, "entry": entry, "esm": esm, "verbose": verbose})
        for line in got["notes"]:
            note(line)
        return got["id"]

    def infer_log(self, sub_id, follow):
        info = self._json("GET", f"/submissions/{sub_id}")
        try:
            if follow:
                return info, self._stream(f"/submissions/{sub_id}/log", {"follow": True})
            return info, iter([self._send("GET", f"/submissions/{sub_id}/log").content])
        except PermissionDenied:
            return info, None

    def wait_submission(self, sub_id):
        """Until the submission has ended; a server that restarts meanwhile is asked again (RECONNECT_SECONDS)."""
        broke = None
        while True:
            try:
                response = self.http.get(f"/submissions/{sub_id}", params={"wait": WAIT_SLICE},
                                         timeout=httpx.Timeout(WAIT_SLICE + 30, connect=10.0))
            except httpx.TransportError as exc:
                broke = broke or time.monotonic()
                if time.monotonic() - broke > RECONNECT_SECONDS:
                    raise UserError(f"server {self.url}: lost for {RECONNECT_SECONDS:.0f} s while waiting for "
                                    f"submission {sub_id} ({exc}); see 'history' for its result") from None
                if self.progress:
                    self.progress(0, None, "reconnecting")
                time.sleep(1.0)
                continue
            if response.status_code >= 500:
                broke = broke or time.monotonic()
                time.sleep(1.0)
                continue
            self._raise_for(response)
            info, broke = response.json(), None
            if RunStatus(info["status"]).terminal:
                return info
            if self.progress:
                self.progress(0, None, info["status"])

    def select_submissions(self, ids):
        return self._json("POST", "/submissions/select", json={"ids": ids})

    def history(self, task, page, per_page):
        got = self._json("GET", f"/tasks/{quote(task, safe='')}/history", params={"page": page, "per_page": per_page})
        return got["rows"], got["total"]

    # -- boards and tasks -----------------------------------------------------------------------------------
    def board(self, task):
        rows, offset = [], 0
        while True:  # every row, a page at a time
            got = self._json("GET", f"/tasks/{quote(task, safe='')}/board", params={"limit": 1000, "offset": offset})
            if got["kind"] == "round":
                return got
            rows += got["rows"]
            offset += len(got["rows"])
            if not got["rows"] or offset >= got["total"]:
                return {"kind": "users", "title": got["title"], "rows": rows}

    def round_board(self, task, round_ref, private):
        params = {"private": private, **({"round": round_ref} if round_ref else {})}
        return self._json("GET", f"/tasks/{quote(task, safe='')}/round-board", params=params)

    def score_history(self, task, top=10):
        return self._json("GET", f"/tasks/{quote(task, safe='')}/score-history", params={"top": top})

    def list_tasks(self):
        return self._json("GET", "/tasks")

    def prepare_task(self, task, scale, seed, corpus, replace):
        if corpus:
            raise UserError("--corpus: a path on this machine; on a server, prepare with its own corpus "
                            "(run 'dataset prepare' on the server host)")
        return self._json("POST", f"/tasks/{quote(task, safe='')}/prepare",
                          json={"scale": scale, "seed": seed, "replace": replace}, timeout=None)

    def add_task(self, folder, replace, name, metric, direction):
        src = Path(folder)
        with tempfile.TemporaryDirectory(prefix="nsml-pack-") as tmp:
            with open(Path(tmp) / "pack.tar", "wb") as fh:
                archives.pack(src, fh)
            with open(Path(tmp) / "pack.tar", "rb") as fh:
                params = {"replace": replace, **{k: v for k, v in (("name", name), ("metric", metric),
                                                                    ("direction", direction)) if v}}
                return self._json("POST", "/tasks", content=fh, params=params, timeout=None,
                                  headers={"Content-Type": "application/x-tar"})["task"]

    def check_task(self, task):
        return self._json("GET", f"/tasks/{quote(task, safe='')}/check", timeout=None)

    def remove_task(self, task):
        self._send("DELETE", f"/tasks/{quote(task, safe='')}")

    def task_changes(self, task):
        return self._json("GET", f"/tasks/{quote(task, safe='')}/changes")

    # -- moderation -----------------------------------------------------------------------------------------
    def hide_submission(self, sub_id, hidden=True):
        return self._json("POST", f"/submissions/{sub_id}/hide", json={"hidden": hidden})

    def mark_baseline(self, name, team=False, on=True):
        return self._json("POST", "/baselines", json={"name": name, "team": team, "baseline": on})

    def hidden_entries(self, task):
        return self._json("GET", f"/tasks/{quote(task, safe='')}/hidden")

    def audit(self, limit=200):
        return self._json("GET", "/audit", params={"limit": limit})

    # -- contests -------------------------------------------------------------------------------------------
    def create_contest(self, file, prepare, scale, note):
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise UserError(f"FILE: {file}: {exc.strerror}") from None
        got = self._json("POST", "/contests", json={"toml": text, "filename": str(file), "prepare": prepare, "scale": scale}, timeout=None)
        for line in got.pop("notes"):
            note(line)
        return got

    def list_contests(self):
        return self._json("GET", "/contests")

    def show_teams(self, contest):
        return self._json("GET", f"/contests/{quote(contest, safe='')}/teams")

    def add_team(self, contest, team, users):
        self._send("POST", f"/contests/{quote(contest, safe='')}/teams", json={"team": team, "users": users})

    def close_round(self, round_ref):
        return self._json("POST", "/rounds/close", json={"round": round_ref}, timeout=None)

    def clock(self, when=None, real=False):
        if when or real:
            return self._json("PUT", "/clock", json={"when": when, "real": real})
        return self._json("GET", "/clock")

    def rescore(self, task, dry_run):
        return self._json("POST", f"/tasks/{quote(task, safe='')}/rescore", json={"dry_run": dry_run}, timeout=None)

