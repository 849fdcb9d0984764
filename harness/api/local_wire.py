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

import json
import os
import socket
import struct
import sys
import zlib
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


def socket_name(settings, stamp: str) -> str:
    """The socket's file name in the state root's .harness folder, for this store, this code, and the settings
    its scheduler takes from the environment of the command that starts it (GPUs, runtime, model cache): a
    command with other ones is served by another service (one scheduler still holds the root's lock)."""
    key = "\n".join(map(str, (settings.db_url, stamp, settings.declared_gpus, settings.declared_gpu_models,
                               settings.runtime, settings.hf_cache)))
    data = key.encode()  # (zlib, not hashlib: OpenSSL's start is ~4 ms of every command)
    return f"service-{zlib.crc32(data):08x}{zlib.adler32(data):08x}.sock"


def short_address(folder: Path, name: str) -> tuple[int, str]:
    """An open descriptor of FOLDER and an address for NAME in it that fits a Unix socket address; close the
    descriptor when done."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    return fd, f"/proc/self/fd/{fd}/{name}"


def peer(sock: socket.socket) -> tuple[int, int]:
    """The pid and uid of the process at the other end (as the kernel saw it connect)."""
    pid, uid, _gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    return pid, uid


def peer_uid(sock: socket.socket) -> int:
    return peer(sock)[1]


def same_namespaces(pid: int) -> bool:
    """Whether process PID shares this process's user and mount namespaces. A sandbox (bubblewrap maps its
    nobody to our uid, so SO_PEERCRED shows our uid) has its own: a run's code is never a caller, even where a
    mount makes the socket visible to it. Unreadable is "no"."""
    if pid <= 0:
        return False
    try:
        return all(os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}") for ns in ("user", "mnt"))
    except OSError:
        return False


def read_request(sock: socket.socket, limit: int, seconds: float) -> bytes:
    """One request line from SOCK: at most LIMIT bytes, all of it within SECONDS (TimeoutError otherwise)."""
    import time
    deadline, data = time.monotonic() + seconds, b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no request line in time")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit and b"\n" not in data[:limit + 1]:
            raise UserError(f"request longer than {limit} bytes")
    line = data.split(b"\n", 1)[0]
    if len(line) > limit:
        raise UserError(f"request longer than {limit} bytes")
    return line


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
