"""`ServiceApi`: every operation declared in harness.api, done by the state root's service (harness.server.
local_service) over a Unix socket, which this starts on demand as `run` starts the scheduler. The CLI process
then loads neither SQLAlchemy nor the models: a local command costs a Python start, click and one round trip.

Every method is made from its declaration (harness.api.local_wire has the framing): arguments go by name, paths
made absolute first, a `note` callable gets the service's notes once the call returns, a STREAM operation's bytes
come as they are written.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from harness.api import Api, Kind, Operation
from harness.api import local_wire as wire
from harness.api.contract import derived
from harness.core.errors import UserError

START_SECONDS = 60.0  # how long a cold service may take to answer (it loads the library and opens the store)
LOG_NAME = "service.log"


class ServiceApi(Api):
    def __init__(self, settings):
        self.settings = settings
        self.folder = settings.state_dir
        self.name = wire.socket_name(settings, wire.code_stamp())
        self._settings = settings.to_wire()
        self._log_from = 0  # where the log's lines of the service this client started begin

    # -- plumbing -------------------------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, address = wire.short_address(self.folder, self.name)
        proc, deadline, started = None, None, 0.0
        try:
            while True:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(address)
                except (FileNotFoundError, ConnectionRefusedError):
                    sock.close()
                else:
                    if wire.peer_uid(sock) != os.getuid():
                        sock.close()
                        raise UserError(f"{self.folder / self.name}: answered by another account's process; "
                                        "remove the file (your service starts again)")
                    return sock
                if deadline is None:
                    deadline = time.monotonic() + START_SECONDS
                elif time.monotonic() > deadline or (proc is not None and proc.poll() not in (None, 0)):
                    raise UserError(f"the state root's service did not start: {self._log_tail()}")
                if proc is None or proc.poll() == 0 and time.monotonic() - started > 0.25:
                    proc, started = self._start(), time.monotonic()  # none yet, or ours found the lock taken
                time.sleep(0.005)                                    # (an old service still leaving): again
        finally:
            os.close(fd)

    def _start(self):
        import subprocess

        from harness.core.settings import inherited_environment, python_module
        log = os.open(self.folder / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self._log_from = os.fstat(log).st_size  # (what this start writes: not an earlier start's last words)
        try:  # (-P and cwd: nothing from the folder the user typed the command in is importable there)
            return subprocess.Popen(
                [*python_module("harness.server.local_service"), "--root", str(self.settings.root),
                 "--socket", self.name], env=inherited_environment(self.settings.db_url),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True, cwd=self.folder)
        finally:
            os.close(log)

    def _log_tail(self) -> str:
        try:
            with open(self.folder / LOG_NAME, "rb") as fh:
                fh.seek(max(self._log_from, os.fstat(fh.fileno()).st_size - (64 << 10)))  # (its last 64 KiB)
                lines = fh.read().decode(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        import re
        raised = [ln for ln in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", ln)]  # (not a driver's
        if not raised:  #                                                   hint on a line of its own after it)
            return lines[-1] if lines else f"see {self.folder / LOG_NAME}"
        return raised[-1].removeprefix("harness.core.errors.UserError: ")  # (the user's mistake in its own words)

    def _request(self, op: Operation, values: dict, progress=None):
        """Send OP's call; the connection and its reader, the reply line read (progress lines before it handed
        to PROGRESS) and its error raised. A service that dies before it answers: a read (GET) is asked again of
        the next one; anything else is one line (it may or may not have been done)."""
        for attempt in (1, 2):
            try:
                return self._ask(op, values, progress)
            except (ConnectionResetError, BrokenPipeError) as exc:
                if attempt == 1 and op.verb == "GET":
                    continue
                raise UserError(f"the state root's service closed the connection ({exc.strerror}) before it "
                                f"answered {op.name}: {self._log_tail()}") from None

    def _ask(self, op: Operation, values: dict, progress):
        sock = self._connect()
        try:
            wire.send_line(sock, {"op": op.name, "args": values, "settings": self._settings})
            reader = sock.makefile("rb")
            while True:
                line = reader.readline()
                if not line:
                    raise UserError(f"the state root's service closed the connection: {self._log_tail()}")
                reply = json.loads(line)
                if "progress" not in reply:
                    break
                if progress:
                    progress(*reply["progress"])
            wire.raise_reply(reply)
        except BaseException:
            sock.close()
            raise
        return sock, reader, reply

    def _call(self, op: Operation, values: dict):
        note, progress = values.pop("note", None), values.pop("progress", None)
        sock, _reader, reply = self._request(op, values, progress)
        sock.close()
        for line in reply.get("notes", ()):
            if note:
                note(line)
        return reply["result"]

    def _stream(self, op: Operation, values: dict) -> Iterator[bytes]:
        sock, reader, _reply = self._request(op, values)  # an error is raised here, before the first byte
        return _chunks(sock, reader)


def _chunks(sock: socket.socket, reader) -> Iterator[bytes]:
    try:
        while chunk := reader.read1(1 << 16):
            yield chunk
    finally:
        sock.close()


def _absolute(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_absolute(v) for v in value]
    return str(Path(value).expanduser().absolute())


def _made(op: Operation):
    paths = [a.name for a in op.args if a.path]

    def method(self, *args, **kwargs):
        values = op.bind(args, kwargs)
        for name in paths:
            values[name] = _absolute(values[name])
        return (self._stream if op.kind is Kind.STREAM else self._call)(op, values)
    return method


derived(ServiceApi, _made)


def stop_services(state_dir: Path, wait: float = 10.0) -> int:
    """End every local service of the state root STATE_DIR (its .harness folder) and wait until each has let go
    of its lock; how many were running. For benchmarks' cold samples and tests; a service also leaves by itself."""
    import fcntl
    import signal
    stopped = 0
    for lock_path in Path(state_dir).glob("service-*.sock.lock"):
        with open(lock_path, "a+") as lock:
            deadline, signalled = time.monotonic() + wait, False
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    break  # nobody holds it
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UserError(f"{lock_path}: its service did not stop") from None
                lock.seek(0)
                text = lock.read().strip()
                pid = int(text) if text.isdigit() else 0
                if pid > 1 and pid != os.getpid():  # never 0 (that would signal our own process group)
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    else:
                        signalled = True
                time.sleep(0.05)
            stopped += signalled
    return stopped
