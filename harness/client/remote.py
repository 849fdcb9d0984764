"""`RemoteApi`: every operation declared in harness.api, done by a `harness serve` over HTTP (httpx) for the
account whose token the CLI logged in with. The CLI prints its results exactly as it prints local ones.

Each CALL and STREAM operation's method is made from its declaration (verb, path, where each argument goes,
paging); only the CUSTOM ones are written here: folders go up as tar streams after the snapshot rules are applied
here (.nsmlignore, no links out, no special files, the size cap; the server checks everything again), a
checkpoint comes down as one, and a waiting submit asks again across a server restart. Server errors come back
as the same one-line UserError (exit code 2) the local library raises; an unreachable server is one line too.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, unquote

import httpx

from harness.api import OPERATIONS, Api, Kind, Operation, Paging
from harness.api.contract import derived
from harness.core import archives
from harness.core.enums import RunStatus
from harness.core.errors import NotFound, PermissionDenied, QuotaExceeded, Unauthorized, UserError
from harness.core.names import parse_session_name, pull_target

API = "/api/v1"
ERRORS = {401: Unauthorized, 403: PermissionDenied, 404: NotFound, 429: QuotaExceeded}
RECONNECT_SECONDS = 300.0  # how long a waiting submit keeps trying to reach a restarting server
WAIT_SLICE = 25.0
PAGE = 1000  # rows a page, for paged operations


def _session_path(name: str) -> str:
    user, task, number = parse_session_name(name, "SESSION")
    return "/" + "/".join(quote(str(p), safe="") for p in (user, task, number))


def request_of(op: Operation, values: dict) -> tuple[str, dict, dict | None]:
    """OP's path, query and JSON body for the call's VALUES (by Python name): path arguments fill the path
    (a session as /USER/TASK/N), the rest go in the query (GET, DELETE) or the body; local-only ones stay."""
    path = op.path
    for name in op.path_args():
        value = values[name]
        path = path.replace("{" + name + "}", _session_path(value) if name == "session" else quote(str(value), safe=""))
    rest = {}
    for arg in op.args:
        if arg.name in op.path_args():
            continue
        value = values[arg.name]
        if arg.local_only:
            if value not in (arg.default, None, [], ()):
                raise UserError(arg.local_only)
            continue
        if value is not None:
            rest[arg.wire] = value
    if op.verb in ("GET", "DELETE"):
        return path, rest, None
    return path, {}, rest


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

    def _call(self, op: Operation, values: dict):
        """One CALL operation: its request, every page of a paged result, its notes replayed to `note` (a long
        operation's progress is not carried over HTTP: `progress` waits for the answer)."""
        values.pop("progress", None)
        path, query, body = request_of(op, values)
        kw = {"timeout": None} if op.verb != "GET" else {}
        try:
            if op.paging is Paging.NONE:
                got = self._json(op.verb, path, params=query, json=body, **kw)
            else:
                got = self._pages(op, path, query)
        except NotFound as exc:
            if str(exc) != "Not Found":  # the router's own answer: no route took the path (a name with a "/")
                raise
            named = ", ".join(f"{a}={values[a]!r}" for a in op.path_args() if a in values)
            raise NotFound(f"{named or op.name}: not found on {self.url} (a name with '/' in it names nothing; "
                           f"or the server is of another version)") from None
        if op.notes:
            for line in got["notes"]:
                if values.get("note"):
                    values["note"](line)
            got = got["result"]
        return got

    def _pages(self, op: Operation, path: str, query: dict):
        rows, offset = [], 0
        while True:  # every row, a page at a time
            got = self._json("GET", path, params={**query, "limit": PAGE, "offset": offset})
            page = got if op.paging is Paging.LIST else got["rows"]
            rows += page
            offset += len(page)
            total = None if op.paging is Paging.LIST else got["total"]
            if len(page) < PAGE if total is None else (not page or offset >= total):
                break
        return rows if op.paging is Paging.LIST else {**{k: v for k, v in got.items() if k != "total"}, "rows": rows}

    def _stream(self, path: str, params: dict) -> Iterator[bytes]:
        """The response's bytes as they come; an error status is raised here, before the first byte."""
        request = self.http.build_request("GET", path, params=params, timeout=httpx.Timeout(None, connect=10.0))
        try:
            response = self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise UserError(f"server {self.url}: cannot reach it ({type(exc).__name__}: {exc})") from None
        if response.status_code >= 400:
            response.read()
            response.close()
            self._raise_for(response)
        return self._chunks(response)

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_raw()
        except httpx.TransportError as exc:
            raise UserError(f"server {self.url}: the stream broke ({type(exc).__name__}: {exc})") from None
        finally:
            response.close()

    # -- written by hand: what is not one JSON request ------------------------------------------------------
    def whoami(self):
        return {**self._call(OPERATIONS["whoami"], {}), "server": self.url}

    def start_session(self, task, folder, entry="main.py", args=None, memo="", opts={}, note=None):
        src = Path(folder).expanduser().resolve()
        if not src.is_dir():
            raise UserError(f"FOLDER: {folder!r} is not a folder")
        from harness.runs.snapshot import check_entry, snapshot_code  # a local run's rules, before the upload
        entry = check_entry(src, entry)
        with tempfile.TemporaryDirectory(prefix="nsml-upload-") as tmp:
            snapshot_code(src, Path(tmp) / "code")
            with open(Path(tmp) / "code.tar", "wb") as fh:
                archives.pack(Path(tmp) / "code", fh)
            with open(Path(tmp) / "code.tar", "rb") as fh:
                got = self._json("POST", "/sessions", content=fh, headers={"Content-Type": "application/x-tar"},
                                 params={"task": task, "entry": entry, "memo": memo, "options": json.dumps(opts),
                                         **({"args": args} if args is not None else {})})
        for line in got["notes"]:
            if note:
                note(line)
        return got["result"]

    def pull_checkpoint(self, session, checkpoint, dest):
        target = pull_target(dest, session, checkpoint)
        path = f"/sessions{_session_path(session)}/checkpoints/{quote(checkpoint, safe='')}/archive"
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
            archives.unpack(spooled, target, max_bytes=1 << 40, what="checkpoint")
        return str(target), skipped

    def wait_submission(self, sub_id, timeout=30.0, *, progress=None):
        """Until the submission has ended or TIMEOUT seconds have passed; a server that restarts meanwhile is
        asked again (RECONNECT_SECONDS)."""
        broke, deadline = None, time.monotonic() + timeout
        while True:
            left = max(0.0, min(WAIT_SLICE, deadline - time.monotonic()))
            try:
                response = self.http.get(f"/submissions/{int(sub_id)}/wait", params={"timeout": left},
                                         timeout=httpx.Timeout(left + 30, connect=10.0))
            except httpx.TransportError as exc:
                broke = broke or time.monotonic()
                if time.monotonic() - broke > RECONNECT_SECONDS:
                    raise UserError(f"server {self.url}: lost for {RECONNECT_SECONDS:.0f} s while waiting for "
                                    f"submission {sub_id} ({exc}); see 'history' for its result") from None
                if progress:
                    progress(0, None, "reconnecting")
                time.sleep(1.0)
                continue
            if response.status_code >= 500:
                broke = broke or time.monotonic()
                time.sleep(1.0)
                continue
            if response.status_code == 429 and time.monotonic() < deadline:  # the account's waits are all taken
                time.sleep(1.0)
                continue
            self._raise_for(response)
            info, broke = response.json(), None
            if RunStatus(info["status"]).terminal or time.monotonic() >= deadline:
                return info
            if progress:
                progress(0, None, info["status"])

    def add_task(self, folder, replace=False, name=None, metric=None, direction=None, note=None):
        src = Path(folder)
        with tempfile.TemporaryDirectory(prefix="nsml-pack-") as tmp:
            with open(Path(tmp) / "pack.tar", "wb") as fh:
                archives.pack(src, fh)
            with open(Path(tmp) / "pack.tar", "rb") as fh:
                params = {"replace": replace, **{k: v for k, v in (("name", name), ("metric", metric),
                                                                    ("direction", direction)) if v}}
                got = self._json("POST", "/tasks", content=fh, params=params, timeout=None,
                                 headers={"Content-Type": "application/x-tar"})
        if not isinstance(got, dict):  # a server older than the notes: its answer is the name
            return got
        for line in got.get("notes", ()):
            if note:
                note(line)
        return got["result"]

    def create_contest(self, file, prepare=False, scale=1.0, note=None):
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise UserError(f"FILE: {file}: {exc.strerror}") from None
        got = self._json("POST", "/contests", json={"toml": text, "filename": str(file), "prepare": prepare,
                                                    "scale": scale}, timeout=None)
        for line in got["notes"]:
            if note:
                note(line)
        return got["result"]


def _made(op: Operation):
    """The client method of a declared CALL or STREAM operation (CUSTOM ones are written above)."""
    if op.kind is Kind.CALL:
        def call(self, *args, **kwargs):
            return self._call(op, op.bind(args, kwargs))
        return call
    if op.kind is Kind.STREAM:
        def stream(self, *args, **kwargs):
            path, query, _body = request_of(op, op.bind(args, kwargs))
            return self._stream(path, query)
        return stream
    return None


derived(RemoteApi, _made)
