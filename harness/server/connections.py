"""The connections `harness serve` holds, bounded before any request reaches the app.

Anyone who can reach the port can open connections; the app's own gates (harness.server.caller_slots, the
bodies' caps) see a request only once its head has arrived. So, per connection (``GuardedH11``, uvicorn's h11
protocol with a deadline):

- **a request head** arrives whole within ``HEAD_SECONDS`` of the connection's start or of the previous
  answer's end (a head sent a byte at a time, or never finished, is hung up on);
- **a request body** arrives within ``BODY_GRACE`` seconds plus one second per ``BODY_RATE`` bytes of its size
  (what its Content-Length states, at most its route's cap: ``app.body_cap``; a chunked one: that cap), so a
  request whose body trickles in holds its caller's slot and a worker for a bounded time; once the request is
  answered (a refusal before its body was read: 401, 413, 429), what is left of it within ``BODY_GRACE``;
- **progress**, looked at every ``CHECK_SECONDS``: a body must keep coming at ``BODY_RATE`` on average past its
  grace (time the server itself is not reading does not count), and an answer, or what is left of one after a
  close, must be taken: when the client has acknowledged no new byte (TCP_INFO) for ``WRITE_STALL_SECONDS`` while
  something waits to be sent, the connection is aborted. A reader at any pace is never cut; one that reads
  nothing gives its connection, its slot and any follow back;
- **connections at once**: at most ``PER_ADDRESS`` from one address (an IPv6 one: its /64; a trusted proxy's
  excepted: it carries everyone's), and at most ``CONNECTIONS_SHARE`` of the process's open-file limit in all
  (raised to its hard limit at start), so the listener never runs out of descriptors and spins on its accept
  errors.

No WebSocket (the app has none): an upgrade request is answered as a plain one. The client's address is the
connection's own: ``X-Forwarded-For`` is believed only from the proxies the operator
names (``serve --forwarded-allow-ips``), which must overwrite that header, never pass on a client's.
"""
from __future__ import annotations

import fcntl
import ipaddress
import resource
import socket
import sys
import termios
from collections import Counter
from typing import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 10.0
BODY_GRACE, BODY_RATE = 10.0, 16 << 10  # seconds, and bytes a second a body may be sent at, at the slowest
WRITE_STALL_SECONDS = 60.0  # something to send and no byte taken by the client for this long: cut
CHECK_SECONDS = 5.0  # between two looks at a connection's progress
PER_ADDRESS = 128  # connections of one address at once (a browser opens 6; a team behind one NAT, some dozens)
CONNECTIONS_SHARE = 0.5  # of the open-file limit; the rest is for the store, the runs' logs, the spools
MAX_CONNECTIONS = 16384


def open_files_limit() -> int:
    """The process's open-file limit, raised to its hard limit (what the operator's system allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return MAX_CONNECTIONS * 4 if soft == resource.RLIM_INFINITY else soft


def _sending(transport) -> tuple[int, int | None]:
    """(bytes waiting to be sent or acknowledged: the transport's buffer and the kernel's send queue, bytes the
    peer has acknowledged so far or None where TCP_INFO does not say) of TRANSPORT's socket."""
    waiting, acked = transport.get_write_buffer_size(), None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return waiting, None
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        waiting += int.from_bytes(queued, sys.byteorder)
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        if len(info) >= 128:
            acked = int.from_bytes(info[120:128], sys.byteorder)  # tcpi_bytes_acked (Linux 4.1+)
    except (OSError, AttributeError, ValueError):  # (a socket closed meanwhile: fileno -1)
        pass
    return waiting, acked


def _address_key(address: str) -> str:
    """Whose share a connection from ADDRESS takes: the address, an IPv6 one's /64 (one host's usual block)."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address


def guarded_protocol(cap_of: Callable[[str, str, str], int], trusted: frozenset[str] = frozenset(),
                     per_address: int = PER_ADDRESS, in_all: int | None = None) -> type[H11Protocol]:
    """A uvicorn HTTP protocol class holding this module's bounds; CAP_OF(method, path, content type): the
    largest body a request may have; TRUSTED: proxy addresses exempt from PER_ADDRESS."""
    limit = in_all if in_all is not None else min(MAX_CONNECTIONS, int(open_files_limit() * CONNECTIONS_SHARE))

    class GuardedH11(H11Protocol):
        by_address: Counter[str] = Counter()  # (this class's own: one per server)
        open = 0

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._deadline, self._counted, self._phase, self._tick = None, None, None, None
            address = self.client[0] if self.client else "?"
            cls, key = type(self), _address_key(address)
            if cls.open >= limit or (address not in trusted and "*" not in trusted and
                                     cls.by_address[key] >= per_address):
                transport.abort()  # (connection_lost follows, and finds nothing counted)
                return
            cls.open += 1
            cls.by_address[key] += 1
            self._counted = key
            self._acked, self._waiting, self._progress_at = None, 0, self.loop.time()
            self._checked_at = self._progress_at
            self._body_bytes, self._body_seconds = 0, 0.0
            self._tick = self.loop.call_later(CHECK_SECONDS, self._check)
            self._watch()

        def connection_lost(self, exc) -> None:
            self._let_go()
            super().connection_lost(exc)

        def _check(self) -> None:
            """Progress, every CHECK_SECONDS until the connection is gone (after a close too: one whose client
            takes nothing more would otherwise never end)."""
            now, since = self.loop.time(), self.loop.time() - self._checked_at
            self._checked_at = now
            self._tick = self.loop.call_later(CHECK_SECONDS, self._check)  # (first: nothing below ends the chain)
            waiting, acked = _sending(self.transport)
            if waiting == 0 or waiting < self._waiting or (acked is not None and self._acked is not None
                                                           and acked > self._acked):
                self._progress_at = now
            self._acked, self._waiting = acked, waiting
            stalled = now - self._progress_at > WRITE_STALL_SECONDS
            waited = self.cycle is not None and self.cycle.waiting_for_100_continue  # (the app has not asked)
            if self._phase == "body" and not self.flow.read_paused and not waited:  # (nor is the server reading)
                self._body_seconds += since
                stalled = stalled or self._body_bytes < BODY_RATE * (self._body_seconds - BODY_GRACE)
            if stalled:
                self._tick.cancel()
                self._tick = None
                self.transport.abort()

        def handle_websocket_upgrade(self, event) -> None:  # (never, with ws="none": the transport would leave
            self._let_go()                                  # this protocol, and its end never reach it)
            super().handle_websocket_upgrade(event)

        def _let_go(self) -> None:
            """The connection is no longer this protocol's: its deadline, its looks and its counts go."""
            self._stop_watch()
            if self._tick is not None:
                self._tick.cancel()
                self._tick = None
            if self._counted is not None:
                cls = type(self)
                cls.open -= 1
                cls.by_address[self._counted] -= 1
                if cls.by_address[self._counted] <= 0:
                    del cls.by_address[self._counted]
                self._counted = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()
            if self._phase == "body":  # (a body begun in the head's read counts, give or take the head)
                self._body_bytes += len(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def _watch(self) -> None:
            """The deadline of what the client owes now: a body it began (what is left of it, once answered),
            else, while no answer is being made, a request (a connection's first, or the next: uvicorn's
            keep-alive timeout ends an idle one sooner, but any byte cancels that); while the app answers,
            nothing (a followed log may last hours)."""
            working = self.cycle is not None and not self.cycle.response_complete
            if self.conn.their_state is h11.SEND_BODY and not working and self.cycle is not None:
                phase, seconds = "rest of an answered body", BODY_GRACE
            elif self.conn.their_state is h11.SEND_BODY:
                headers = {}
                for name, value in self.headers:  # (the first of each, as the app reads them)
                    headers.setdefault(name, value)
                cap = cap_of(self.scope["method"], self.scope["path"],
                             headers.get(b"content-type", b"").decode("latin-1"))
                length = headers.get(b"content-length", b"")
                size = min(int(length), cap) if length.isdigit() and len(length) < 16 else cap
                phase, seconds = "body", BODY_GRACE + size / BODY_RATE
            elif working:
                phase, seconds = None, 0.0
            else:
                phase, seconds = "head", HEAD_SECONDS
            if phase != self._phase:
                self._stop_watch()
                self._phase = phase
                self._body_bytes, self._body_seconds = 0, 0.0
                if phase is not None and not self.transport.is_closing():
                    self._deadline = self.loop.call_later(seconds, self._late)

        def _stop_watch(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline, self._phase = None, None

        def _late(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()  # (the app, if it was reading the body, sees the client gone)

    return GuardedH11


def serve(app, host: str, port: int, log_level: str, cap_of: Callable[[str, str, str], int],
          forwarded_allow_ips: str = "") -> None:
    """Run APP with uvicorn, its connections guarded (see the module's text)."""
    import uvicorn

    trusted = frozenset(w.strip() for w in forwarded_allow_ips.split(",") if w.strip())
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=log_level in ("info", "debug"),
                            timeout_graceful_shutdown=5, http=guarded_protocol(cap_of, trusted), ws="none",
                            proxy_headers=bool(trusted), forwarded_allow_ips=",".join(sorted(trusted)) or None)
    uvicorn.Server(config).run()
