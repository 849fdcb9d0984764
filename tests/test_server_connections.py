"""A real `harness serve` against clients that never finish: heads sent a byte at a time or never ended, bodies
that trickle, more connections than one address may hold, a made-up X-Forwarded-For. The invariant: other users
keep being served (their first request after a restart too), and what the attacker holds is let go in bounded
time (harness.server.connections, harness.server.caller_slots)."""
import asyncio
import socket
import threading
import time

import httpx
import pytest

from harness.server import caller_slots, connections

HEAD = b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\n"  # no blank line: the head never ends


def _connect(served, source="127.0.0.1"):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", served.port))
    return sock


def _closed_within(sock, seconds) -> bool:
    """Whether the server hangs up on SOCK within SECONDS (what it sent before, if anything, is read past)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def _slow_bodies(served, n: int) -> list[socket.socket]:
    """N requests without a token, each saying it comes from another client (X-Forwarded-For) and sending one
    byte of its 100-byte body; half a second later."""
    slow = []
    for i in range(n):
        sock = _connect(served)
        sock.sendall(b"POST /api/v1/sessions/stop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-Forwarded-For: 203.0.113.%d\r\nContent-Length: 100\r\n\r\n{" % i)
        slow.append(sock)
    time.sleep(0.5)
    return slow


def _answers(socks, at_least: int = 0, seconds: float = 10) -> list[bytes]:
    """What the server has answered on SOCKS so far (those it has not answered yet are left out), asking again those
    not answered until AT_LEAST have been or SECONDS have passed (a loaded machine answers late, never less)."""
    answered, pending = [], list(socks)
    deadline = time.monotonic() + seconds
    while pending:
        waiting = []
        for sock in pending:
            sock.settimeout(0.2)
            try:
                answered.append(sock.recv(4096))
            except TimeoutError:  # (not answered yet)
                waiting.append(sock)
            except ConnectionResetError:  # (refused at once)
                pass
        pending = waiting
        if len(answered) >= at_least or time.monotonic() > deadline:
            break
    return answered


def _whoami(served, token):
    return httpx.get(f"{served.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_heads_that_never_end_are_hung_up_and_one_address_holds_a_bounded_share(served, remote_cli):
    bob = remote_cli.token("bob")
    held = [_connect(served, "127.0.0.2") for _ in range(connections.PER_ADDRESS + 12)]
    for sock in held:
        sock.sendall(HEAD)
    refused = [s for s in held if _closed_within(s, 0.05)]
    assert len(refused) >= 12, len(refused)  # past its share, an address's connections are closed at once
    assert _whoami(served, bob).status_code == 200  # another address: served, its first request included
    dribble = _connect(served, "127.0.0.3")
    start = time.monotonic()
    closed = False
    while time.monotonic() - start < connections.HEAD_SECONDS + 5:
        try:
            dribble.sendall(b"G" if time.monotonic() - start < 0.5 else b"x")
        except OSError:
            closed = True
            break
        if _closed_within(dribble, 1.0):
            closed = True
            break
    waited = time.monotonic() - start
    assert closed and connections.HEAD_SECONDS - 1 < waited < connections.HEAD_SECONDS + 4, waited
    rest = [s for s in held if s not in refused]
    assert all(_closed_within(s, 3.0) for s in rest)  # begun with the dribble's: their heads' time is up too
    fresh = _connect(served, "127.0.0.2")  # the address's share is its own again
    fresh.sendall(HEAD + b"\r\n")
    assert b"401" in fresh.recv(4096).split(b"\r\n", 1)[0]
    for sock in held + [dribble, fresh]:
        sock.close()


def test_slow_bodies_never_lock_out_users_of_the_same_address_and_are_cut(served, remote_cli):
    bob = remote_cli.token("bob")  # bob's token: never verified by this server yet
    slow = _slow_bodies(served, caller_slots.PER_CALLER + 8)
    answered = _answers(slow, at_least=8)
    # Made-up X-Forwarded-For headers are not believed: the address's share is full, and the rest hear 429.
    assert len(answered) == 8 and all(b" 429 " in a.split(b"\r\n", 1)[0] for a in answered), answered
    got = _whoami(served, bob)
    assert got.status_code == 200 and got.json()["user"] == "bob"  # checked before any body: bob's own share
    wrong = _whoami(served, bob[:-4] + "AAAA")
    assert wrong.status_code == 401 and "no valid token" in wrong.json()["error"]
    start = time.monotonic()
    assert all(_closed_within(s, connections.BODY_GRACE + 5) for s in slow)
    assert time.monotonic() - start < connections.BODY_GRACE + 5
    assert _whoami(served, bob).status_code == 200
    for sock in slow:
        sock.close()


def test_a_list_argument_holds_each_element_to_its_bounds(served, remote_cli):
    token = remote_cli.token("alice")
    got = httpx.post(f"{served.url}/api/v1/submissions/select", json={"ids": [10 ** 23]},
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert got.status_code == 422 and "ids" in got.json()["error"], got.text
    got = httpx.get(f"{served.url}/api/v1/sessions/alice/tiny/1/metrics", params={"keys": ["k" * 201]},
                    headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert got.status_code == 422, got.text
    from harness.api import OPERATIONS
    from harness.core.errors import UserError
    (ids,) = OPERATIONS["select_submissions"].args
    for bad in ([10 ** 23], [0], [1, -5]):
        try:
            ids.check(bad, "select_submissions")
        except UserError as exc:
            assert "out of bounds" in str(exc)
        else:
            raise AssertionError(bad)
    ids.check([1, 2 ** 62], "select_submissions")
    from typing import Optional

    from harness.api.declare import Arg, each
    optional = Arg("xs", Optional[list[int]], items=each(ge=1))  # (typing's spelling of list[int] | None)
    assert optional.item_arg().type is int
    optional.check(None, "op")
    try:
        optional.check([0], "op")
    except UserError as exc:
        assert "out of bounds" in str(exc)
    else:
        raise AssertionError("[0] passed")


def test_first_requests_of_many_users_are_served_while_their_address_is_held(served, remote_cli):
    """Forty users behind one address (a venue's NAT), none verified by this server yet, ask at once while an
    anonymous client of that address holds its whole share with bodies it never sends: every user is answered."""
    tokens = [remote_cli.token(f"user{i}") for i in range(40)]
    slow = _slow_bodies(served, caller_slots.PER_CALLER)
    assert httpx.get(f"{served.url}/api/v1/whoami", timeout=10).status_code == 429  # no token: the address's
    results = []
    threads = [threading.Thread(target=lambda t=t: results.append(_whoami(served, t).json().get("user")))
               for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted(f"user{i}" for i in range(40)), results
    for sock in slow:
        sock.close()


def test_behind_a_named_proxy_each_forwarded_client_has_its_own_share(state_root, remote_cli):
    """With `serve --forwarded-allow-ips 127.0.0.1`, the proxy's X-Forwarded-For names the client: twenty clients
    behind it each hold a slow body, none refused (without the option, 16 of one address: the test above)."""
    from helpers import Served
    served = Served(state_root, extra=("--forwarded-allow-ips", "127.0.0.1"))
    try:
        slow = _slow_bodies(served, caller_slots.PER_CALLER + 4)
        assert _answers(slow) == []  # none answered 429: each its own client
        for sock in slow:
            sock.close()
    finally:
        served.stop()


@pytest.fixture
def guarded(monkeypatch):
    """harness.server.connections' protocol in front of a small ASGI app in this process, its bounds made short:
    /big streams 64 MiB, /small answers 48 KiB and closes, any other path reads its body (at most 4 KiB: the cap
    the protocol is given; /upload: 10 MiB)."""
    import uvicorn
    from helpers import free_port
    monkeypatch.setattr(connections, "WRITE_STALL_SECONDS", 1.5)
    monkeypatch.setattr(connections, "CHECK_SECONDS", 0.25)
    monkeypatch.setattr(connections, "BODY_GRACE", 1.0)
    monkeypatch.setattr(connections, "BODY_RATE", 1024)

    async def app(scope, receive, send):
        if scope["path"] == "/small":  # under the transport's high-water mark, then the server closes
            await send({"type": "http.response.start", "status": 200, "headers": [(b"connection", b"close")]})
            await send({"type": "http.response.body", "body": b"x" * (48 << 10)})
            return
        if scope["path"] == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(64):
                await send({"type": "http.response.body", "body": b"x" * (1 << 20), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == "/upload-later":  # the app busy before it reads (a queued token check, a thread)
            await asyncio.sleep(3)
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size, more = size + len(message.get("body", b"")), message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    class Small(connections.guarded_protocol(lambda method, path, content_type: 4096 if "/upload" not in path
                                             else 10 << 20, in_all=1000)):
        def connection_made(self, transport):  # a small kernel send buffer: what waits, waits in the transport
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            super().connection_made(transport)
    protocol = Small
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, ws="none",
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield type("Guarded", (), {"port": port, "protocol": protocol})
    server.should_exit = True
    thread.join(10)


def _raw(guarded, request: bytes, buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    sock.connect(("127.0.0.1", guarded.port))
    sock.sendall(request)
    return sock


def test_a_body_is_timed_by_its_routes_cap_never_by_what_it_claims(guarded):
    claims = [_raw(guarded, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999\r\n\r\n{"),
              _raw(guarded, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")]
    start = time.monotonic()
    assert all(_closed_within(s, 8) for s in claims)  # 1 s + 4 KiB at 1 KiB/s, never years
    assert time.monotonic() - start < 8
    honest = _raw(guarded, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
    time.sleep(0.5)
    honest.sendall(b"abc")
    honest.settimeout(5)
    answer = b""
    while not answer.endswith(b"0\r\n\r\n") and (data := honest.recv(4096)):
        answer += data
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n1\r\n3\r\n0\r\n\r\n"), answer
    for sock in claims + [honest]:
        sock.close()


def test_an_answer_nobody_reads_is_cut_and_one_read_slowly_is_not(guarded):
    unread = [_raw(guarded, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n", buffer=4096) for _ in range(3)]
    time.sleep(0.5)
    assert guarded.protocol.open == 3
    deadline = time.monotonic() + 15
    while guarded.protocol.open and time.monotonic() < deadline:  # the server's own count of its connections
        time.sleep(0.1)
    assert guarded.protocol.open == 0
    slow = _raw(guarded, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n", buffer=8192)
    got, start = 0, time.monotonic()
    while time.monotonic() - start < 5:  # ~80 KiB/s for 5 s: a 1 MiB chunk waits over the 1.5 s of a stall
        data = slow.recv(4096)           # in the server's buffer, yet every byte taken counts
        assert data, f"cut after {got} bytes"
        got += len(data)
        time.sleep(0.05)
    assert got > 200 << 10
    leftover = _raw(guarded, b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n", buffer=4096)
    time.sleep(0.5)  # answered, closed by the server, 40-odd KiB still to send to a client that takes none
    assert guarded.protocol.open == 2  # (the slow reader's and this one)
    slow.close()
    deadline = time.monotonic() + 10
    while guarded.protocol.open and time.monotonic() < deadline:
        time.sleep(0.1)
    assert guarded.protocol.open == 0  # aborted: a close waiting on a client that reads nothing would never end
    for sock in unread + [leftover]:
        sock.close()


def test_connections_counted_come_back_to_nothing_upgrades_and_refusals_included(guarded):
    socks = [_raw(guarded, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
             for _ in range(connections.PER_ADDRESS + 5)]
    answers = _answers(socks, at_least=connections.PER_ADDRESS)
    assert len(answers) >= connections.PER_ADDRESS and all(a.startswith(b"HTTP/1.1 200") for a in answers if a)
    for sock in socks:
        sock.close()
    deadline = time.monotonic() + 10
    while (guarded.protocol.open or guarded.protocol.by_address) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert guarded.protocol.open == 0 and not guarded.protocol.by_address


def test_serve_runs_uvicorn_without_websockets_or_forwarded_headers_unless_named(monkeypatch):
    """An upgrade would hand the connection to a WebSocket protocol, whose end the guarded one never hears of
    (its counts would stay taken): the server has no WebSocket, and believes no X-Forwarded-For by default."""
    import uvicorn
    configs = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: configs.append(self.config))
    monkeypatch.setattr(connections, "open_files_limit", lambda: 4096)
    connections.serve(object(), "127.0.0.1", 0, "warning", lambda *a: 1)
    connections.serve(object(), "127.0.0.1", 0, "warning", lambda *a: 1, "10.0.0.5, 10.0.0.6")
    plain, proxied = configs
    assert plain.ws == "none" and plain.proxy_headers is False and plain.http.__name__ == "GuardedH11"
    assert proxied.proxy_headers is True and proxied.forwarded_allow_ips == "10.0.0.5,10.0.0.6"


def test_a_body_under_a_large_cap_must_keep_coming(guarded):
    """An upload route's cap allows hours at the slowest rate; a body must still average that rate past its
    grace: a trickle is cut in seconds, an honest sender never."""
    trickle = _raw(guarded, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    honest = _raw(guarded, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 40960\r\n\r\n")
    start, cut = time.monotonic(), None
    for i in range(40):  # 4 s: the honest one sends 1 KiB each 0.1 s (10 KiB/s), the trickle a byte
        honest.sendall(b"y" * 1024)
        try:
            trickle.sendall(b"1\r\nz\r\n")
        except OSError:
            cut = cut or time.monotonic() - start
        time.sleep(0.1)
    assert cut is not None or _closed_within(trickle, 1), "the trickle was never cut"
    assert (cut or 4) < 5
    honest.settimeout(5)
    answer = b""
    while not answer.endswith(b"0\r\n\r\n") and (data := honest.recv(4096)):
        answer += data
    assert answer.startswith(b"HTTP/1.1 200") and b"40960" in answer, answer
    for sock in (trickle, honest):
        sock.close()


def test_a_body_is_owed_only_once_asked_for_and_counts_from_the_heads_own_read(guarded):
    """A client that waits for `100 Continue` owes nothing until the app reads; a body sent with its head counts."""
    waiting = _raw(guarded, b"POST /upload-later HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                            b"Content-Length: 4096\r\n\r\n")
    waiting.settimeout(10)
    assert waiting.recv(4096).startswith(b"HTTP/1.1 100")  # after the app's 3 s, past the 1 s grace
    waiting.sendall(b"w" * 4096)
    eager = _raw(guarded, b"POST /upload-later HTTP/1.1\r\nHost: x\r\nContent-Length: 81920\r\n\r\n"
                 + b"e" * 40960)  # 40 s of credit at 1 KiB/s, sent with the head
    time.sleep(3.5)
    eager.sendall(b"e" * 40960)
    for sock, size in ((waiting, b"4096"), (eager, b"81920")):
        sock.settimeout(10)
        answer = b""
        while not answer.endswith(b"0\r\n\r\n") and (data := sock.recv(4096)):
            answer += data
        assert answer.startswith(b"HTTP/1.1 200") and size in answer, answer
        sock.close()


def test_an_ipv6_clients_share_is_its_64():
    key = connections._address_key
    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64" != key("2001:db8:1:3::1")
    assert key("192.0.2.7") == "192.0.2.7" and key("?") == "?"
