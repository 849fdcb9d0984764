"""How the CLI and its state root's service talk on this machine: one Unix socket per (state root, store, code), one
request a connection. Both sides import this module, so the framing lives here once.

A request is one JSON line, ``{"op": NAME, "args": {...}, "settings": {...}}``: an operation declared in
harness.api.operations, its arguments by Python name, and the caller's settings (harness.core.settings.Settings,
as `to_wire` writes them; the caller is the local user, as in the in-process library). The reply is one JSON line,
``{"result": ..., "notes": [...]}`` or ``{"error": MESSAGE, "kind": CLASS, "exit_code": N}``; a STREAM operation's
reply line is ``{"stream": true}`` and its bytes follow until the service closes the connection.

Only a process of the service's own OS account is answered (SO_PEERCRED, both ways: the client checks the
service too), and a request line is bounded (MAX_REQUEST). The socket's path may be longer than a Unix socket
address allows (108 bytes), so both sides name it through an open directory: /proc/self/fd/N/NAME.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import sys
from pathlib import Path, PurePath

from harness.core.errors import NotFound, PermissionDenied, QuotaExceeded, UserError

MAX_REQUEST = 1 << 20  # bytes of one request line: arguments are names, numbers and paths
ERROR_KINDS = {cls.__name__: cls for cls in (UserError, NotFound, PermissionDenied, QuotaExceeded)}
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def code_stamp() -> str:
    """Which harness code answers: the interpreter, the package's folder and its newest source file. A service
    started before an upgrade or an edit is not asked; it idles out (harness.server.local_service)."""
    package = Path(__file__).resolve().parent.parent
    newest = 0
    for folder, _dirs, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return f"{sys.executable}|{package}|{newest}"


def socket_name(db_url: str, stamp: str) -> str:
    """The socket's file name in the state root's .harness folder, for this store and this code."""
    return "service-" + hashlib.sha256(f"{db_url}\n{stamp}".encode()).hexdigest()[:16] + ".sock"


def short_address(folder: Path, name: str) -> tuple[int, str]:
    """An open descriptor of FOLDER and an address for NAME in it that fits a Unix socket address; close the
    descriptor when done."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    return fd, f"/proc/self/fd/{fd}/{name}"


def peer_uid(sock: socket.socket) -> int:
    return _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))[1]


def _plain(value):
    """What JSON lacks, as the HTTP API writes it: times in ISO form, paths and enums as text, tuples as lists."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (Path, PurePath)):
        return str(value)
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def encode(obj) -> bytes:
    """OBJ as one JSON line."""
    return json.dumps(obj, separators=(",", ":"), default=_plain).encode() + b"\n"


def send_line(sock: socket.socket, obj) -> None:
    sock.sendall(encode(obj))


def read_line(reader, limit: int) -> bytes:
    """One line from READER (a binary file), at most LIMIT bytes; a longer one is refused."""
    line = reader.readline(limit + 1)
    if len(line) > limit:
        raise UserError(f"request longer than {limit} bytes")
    return line


def error_reply(exc: UserError) -> dict:
    return {"error": str(exc), "kind": type(exc).__name__ if type(exc).__name__ in ERROR_KINDS else "UserError",
            "exit_code": int(getattr(exc, "exit_code", 2))}


def raise_reply(reply: dict) -> None:
    """Raise the error a reply carries, as the class the service raised (one line, the same exit code)."""
    if "error" not in reply:
        return
    exc = ERROR_KINDS.get(str(reply.get("kind")), UserError)(str(reply["error"]))
    code = reply.get("exit_code")
    if isinstance(code, int) and code != exc.exit_code:
        exc.exit_code = code
    raise exc
