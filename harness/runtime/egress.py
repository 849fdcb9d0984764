"""The package index, and nothing else, for a confined environment build (runtime.env_builds).

A confined build runs in a network namespace of its own (bubblewrap without ``--share-net``): it has only its
own loopback, so a package's build code reaches none of this machine's loopback services (the harness's API,
its database, a Ray cluster), none of its networks and no cloud metadata address. The installer reaches the
index through a proxy: ``RELAY``, a few lines of Python started inside the namespace before the installer,
listens on its loopback at ``PORT`` and passes each connection over a unix socket to a ``Gate`` in the harness.
The gate reads one request head (bounded), and opens a tunnel (HTTP CONNECT) or forwards a plain request only
to the hosts ``package_indexes.index_hosts`` names. It goes through the operator's own proxy where one is set.
Anything else gets a 403, and the build's error names what was tried.
"""
from __future__ import annotations

import base64
import re
import socket
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from harness.core import setting_values
from harness.core.safefs import remove_tree

from . import package_indexes

PORT = 3128  # where the installer finds its proxy, on the build's own loopback
INSIDE = "/run/nsml-egress"  # where the build sees the gate's socket folder
HEAD_BYTES, HEAD_SECONDS = 16 << 10, 10.0  # one request head: its size and how long it may take to arrive
CONNECT_SECONDS, IDLE_SECONDS = 10.0, 300.0  # reaching the index; a tunnel with nothing moving
MAX_CONNECTIONS = 32  # at once, per build (more wait their turn)
MAX_REFUSED = 5  # distinct refused destinations kept for the error
_HOST = setting_values.HOST
_CONNECT = re.compile(rf"CONNECT ({_HOST}):([0-9]{{1,5}}) HTTP/1\.[01]")
_HEADER = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}:[\t\x20-\x7e]*")  # one header line, nothing else
_PLAIN = re.compile(rf"(?:GET|HEAD) http://({_HOST})(?::([0-9]{{1,5}}))?(?:[/?][\x21-\x7e]*)? HTTP/1\.[01]")

# Run inside the build's namespace as `python -I -S -c RELAY SOCKET PORT CMD...`: hold the gate's watch (and end
# the build, leaving no part of it, when that ends: the harness closed the gate or died), listen, start CMD, pass
# each connection to the gate, end with CMD's status. (Anything in the build may use it: it reaches the gate only.)
RELAY = r"""
import os, socket, subprocess, sys, threading
path, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
try:
    import ctypes
    ctypes.CDLL(None).prctl(4, 0)  # PR_SET_DUMPABLE 0: the build it starts cannot trace it
except Exception:
    pass
watch = socket.socket(socket.AF_UNIX)
watch.connect(os.path.join(os.path.dirname(path), "w"))
def unwatched():
    try:
        watch.recv(1)
    except OSError:
        pass
    os._exit(125)
threading.Thread(target=unwatched, daemon=True).start()
listener = socket.create_server(("127.0.0.1", port), backlog=64)
def pipe(a, b, done):
    try:
        while data := a.recv(65536):
            b.sendall(data)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    with done[0]:
        done[1] += 1
        if done[1] == 2:
            a.close(); b.close()
def serve():
    while True:
        client, _ = listener.accept()
        gate = socket.socket(socket.AF_UNIX)
        try:
            gate.connect(path)
        except OSError:
            client.close(); gate.close(); continue
        done = [threading.Lock(), 0]
        for a, b in ((client, gate), (gate, client)):
            threading.Thread(target=pipe, args=(a, b, done), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
code = subprocess.call(cmd)
sys.exit(code if code >= 0 else 128 - code)
"""


def proxy_environment() -> dict[str, str]:
    """The variables that send a build's installer (and anything else in it) to the relay."""
    url = f"http://127.0.0.1:{PORT}"
    return {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                   "all_proxy")}


def _upstream(environ: dict[str, str], host: str, tls: bool) -> tuple[tuple[str, int], bytes] | None:
    """The operator's proxy for HOST, if one is set and NO_PROXY does not exempt it: its address, and the
    Proxy-Authorization header line its URL's user and password make (b"" without)."""
    names = ("HTTPS_PROXY", "https_proxy") if tls else ("HTTP_PROXY", "http_proxy")
    url = next((environ[n] for n in (*names, "ALL_PROXY", "all_proxy") if environ.get(n)), "")
    exempt = [w.strip().lstrip(".").lower() for w in (environ.get("NO_PROXY") or environ.get("no_proxy") or
                                                      "").split(",") if w.strip()]
    if not url or "*" in exempt or any(host == w or host.endswith("." + w) for w in exempt):
        return None
    url = url if "://" in url else "http://" + url
    found = package_indexes.address(url)
    if found is None:
        return None
    parts = urlsplit(url)
    login = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    auth = b"Proxy-Authorization: Basic " + base64.b64encode(login) + b"\r\n" if parts.username else b""
    return (found[0].strip("[]"), found[1]), auth


class Refused(Exception):
    """A request the gate does not pass: its status line's code and reason."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def parse_head(head: bytes) -> tuple[str, int, bool]:
    """(host, port, tunnel) of one request head's destination: a CONNECT, or a plain request to an absolute
    http:// URL (what an installer sends a proxy). Anything else is Refused."""
    line = head.split(b"\r\n", 1)[0]
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise Refused(400, "Bad Request") from None
    if m := _CONNECT.fullmatch(text):
        host, port, tunnel = m[1], int(m[2]), True
    elif m := _PLAIN.fullmatch(text):
        host, port, tunnel = m[1], int(m[2] or 80), False
    else:
        raise Refused(400, "Bad Request")
    if not 0 < port < 65536 or not all(_HEADER.fullmatch(h) for h in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]):
        raise Refused(400, "Bad Request")  # (a bare CR or LF, a folded line, a control byte: a second request)
    return host.lower(), port, tunnel


def _one_request(head: bytes, host: str, port: int, proxy: bytes | None) -> bytes:
    """The plain request HEAD (one parse_head passed) rebuilt from its checked parts, alone: its target cut to its
    path (absolute, host and port the gate's own, where it goes to the operator's proxy), its headers but those of
    the connection (and the operator's PROXY login, where it goes there), and ``Connection: close`` — the gate
    forwards no second request on the connection."""
    line, _, rest = head.split(b"\r\n\r\n", 1)[0].partition(b"\r\n")
    method, url, _version = line.split(b" ")
    found = re.search(rb"[/?]", url[len(b"http://"):])
    path = url[len(b"http://") + found.start():] if found else b"/"
    path = path if path.startswith(b"/") else b"/" + path
    target = path if proxy is None else f"http://{host}:{port}".encode() + path
    kept = [h for h in rest.split(b"\r\n") if h and not re.match(rb"(?i)(host|connection|keep-alive|proxy-[\w-]*|te|"
                                                                  rb"transfer-encoding|content-length|upgrade)\s*:", h)]
    named = f"Host: {host}".encode() + (b"" if port == 80 else f":{port}".encode())
    return b"\r\n".join([method + b" " + target + b" HTTP/1.1", named, *kept, *([proxy.rstrip()] if proxy else []),
                         b"Connection: close", b"", b""])


def _read_head(conn: socket.socket, seconds: float) -> bytes:
    """One request (or answer) head, at most HEAD_BYTES, all of it within SECONDS."""
    data, deadline = b"", time.monotonic() + seconds
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_BYTES:
            raise Refused(431, "Request Header Fields Too Large")
        left = deadline - time.monotonic()
        if left <= 0:
            raise Refused(408, "Request Timeout")
        conn.settimeout(left)
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            raise Refused(408, "Request Timeout") from None
        if not chunk:
            raise Refused(400, "Bad Request")
        data += chunk
    return data


class Gate:
    """The harness's end of one build's proxy: a unix socket in a folder of its own (`folder`, bound at INSIDE in
    the build), serving while the ``with`` block lasts. ``refused``: the destinations it did not pass."""

    def __init__(self, allowed: frozenset[tuple[str, int]], environ: dict[str, str]):
        self.allowed, self.environ = allowed, dict(environ)
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._open: set[socket.socket] = set()
        self._closed = False

    def __enter__(self) -> "Gate":
        self.folder = Path(tempfile.mkdtemp(prefix="nsml-egress-"))  # (short: a socket's path has 108 bytes)
        self._listener, self._watch = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
        try:
            for listener, name in ((self._listener, "s"), (self._watch, "w")):
                listener.bind(str(self.folder / name))
                listener.listen(64)
        except OSError as exc:
            for listener in (self._listener, self._watch):
                listener.close()
            remove_tree(self.folder)
            raise OSError(f"the build's gate to the package index: {exc}") from None
        threading.Thread(target=self._accept, daemon=True, name="egress-gate").start()
        threading.Thread(target=self._hold, daemon=True, name="egress-watch").start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._closed = True
            live = [self._listener, self._watch, *self._open]
        for conn in live:
            _shut(conn)
        remove_tree(self.folder)  # (bound read-only into the build: only the socket is there)

    def socket_inside(self) -> str:
        return f"{INSIDE}/s"

    def refusal_note(self) -> str:
        """What a failed build's error adds about the hosts it was refused ("" when none)."""
        if not self.refused:
            return ""
        return f" (it tried to reach {', '.join(self.refused)}: a build reaches only the package index and " \
               f"limits.env_index_hosts)"

    def _accept(self) -> None:
        while True:
            self._slots.acquire()
            try:
                conn, _ = self._listener.accept()
            except OSError:
                self._slots.release()
                return
            if not self._track(conn):
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _hold(self) -> None:
        """Hold the relay's watch connection, the first (made before it starts the build), and take no other: it
        ends when the gate closes or the harness dies, and with it the relay and the build it started."""
        try:
            conn, _ = self._watch.accept()
        except OSError:
            return
        finally:
            _shut(self._watch)
        self._track(conn)

    def _track(self, conn: socket.socket, forget: bool = False) -> bool:
        with self._lock:
            if forget:
                self._open.discard(conn)
            elif self._closed:
                conn.close()
                return False
            else:
                self._open.add(conn)
        return True

    def _serve(self, client: socket.socket) -> None:
        upstream, answered = None, False
        try:
            head = _read_head(client, HEAD_SECONDS)
            host, port, tunnel = parse_head(head)
            if (host, port) not in self.allowed:
                with self._lock:
                    if len(self.refused) < MAX_REFUSED and f"{host}:{port}" not in self.refused:
                        self.refused.append(f"{host}:{port}")
                raise Refused(403, "Forbidden")
            upstream, proxy = self._connect(host, port, tunnel)
            answered = True  # (from here on, the bytes are the index's: no status of the gate's)
            if tunnel:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
            else:
                rest = _one_request(head, host, port, proxy)
            if rest:
                upstream.sendall(rest)
            for conn in (client, upstream):
                conn.settimeout(IDLE_SECONDS)
            if not tunnel:  # (one request: nothing more of the build's goes that way)
                _pipe(upstream, client)
                return
            other = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            other.start()
            _pipe(client, upstream)
            other.join()
        except Refused as refusal:
            _answer(client, refusal.code, refusal.reason)
        except OSError:
            if not answered:
                _answer(client, 502, "Bad Gateway")
        finally:
            for conn in (client, upstream):
                if conn is not None:
                    self._track(conn, forget=True)
                    _shut(conn)
            self._slots.release()

    def _connect(self, host: str, port: int, tunnel: bool) -> tuple[socket.socket, bytes | None]:
        """A connection towards HOST:PORT (tracked from before it connects: closing the gate cuts it), and the
        Proxy-Authorization line of the operator's proxy it goes through (None: it goes directly)."""
        proxy = _upstream(self.environ, host, tunnel)
        family, kind, proto, _, where = socket.getaddrinfo(*(proxy[0] if proxy else (host.strip("[]"), port)),
                                                           type=socket.SOCK_STREAM)[0]
        conn = socket.socket(family, kind, proto)
        if not self._track(conn):
            raise OSError("the build ended")
        try:
            conn.settimeout(CONNECT_SECONDS)
            conn.connect(where)
            if proxy and tunnel:
                conn.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode() + proxy[1] +
                             b"\r\n")
                answer = _read_head(conn, CONNECT_SECONDS)
                if answer.split(b" ", 2)[1:2] != [b"200"] or answer.split(b"\r\n\r\n", 1)[1]:
                    raise OSError("the operator's proxy refused the tunnel (or spoke first)")
        except (OSError, Refused) as exc:
            self._track(conn, forget=True)
            _shut(conn)
            raise OSError(f"the connection failed: {exc}") from None
        return conn, (proxy[1] if proxy else None)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        _shut(src)
        _shut(dst)


def _answer(conn: socket.socket, code: int, reason: str) -> None:
    try:
        conn.sendall(f"HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    except OSError:
        pass


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
