"""One caller's requests in flight are bounded before any work is done for them (server.caller_slots): a
participant who opens uploads that trickle a byte at a time, far more than the server has threads, gets 429 past
its share at once, other users are served meanwhile (by token, and from the same address), and the share comes
back when the requests end."""
import threading
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.server import caller_slots


def _trickle(url, token, gate, answers):
    """A tar upload whose body waits at GATE after its first byte."""
    def body():
        yield b"\0"
        gate.wait(60)
    try:
        r = httpx.post(url, params={"task": "tiny"}, content=body(), timeout=90,
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-tar"})
        answers.append((r.status_code, r.text))
    except httpx.HTTPError as exc:
        answers.append((0, str(exc)))


def test_one_callers_flood_is_refused_past_its_share_and_others_are_served(served, remote_cli, tiny_task):
    tokens = {u: remote_cli.token(u) for u in ("alice", "bob")}
    url = f"{served.url}/api/v1/sessions"
    alice = httpx.Client(headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=10)
    bob = httpx.Client(headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=10)
    for client in (alice, bob):  # (their tokens verified: each counts as their account from now on)
        assert client.get(f"{served.url}/api/v1/whoami").status_code == 200
    gate, answers = threading.Event(), []
    held = [threading.Thread(target=_trickle, args=(url, tokens["alice"], gate, answers), daemon=True)
            for _ in range(caller_slots.PER_CALLER + 4)]  # (those past her share wait to send, then hear 429)
    try:
        for t in held:
            t.start()
        time.sleep(3)  # (no request of hers meanwhile: each would hold a slot while the uploads arrive)
        r = alice.get(f"{served.url}/api/v1/whoami")
        assert r.status_code == 429 and "too many requests of yours" in r.json()["error"], r.text
        for _ in range(50):  # every further request of hers, cheap or not, is refused at once
            r = alice.post(url, params={"task": "tiny"}, content=b"\0" * 1024,
                           headers={"Content-Type": "application/x-tar"})
            assert r.status_code == 429 and "too many requests of yours" in r.json()["error"], r.text
        bobs_id = tokens["bob"].split("_")[1]
        for _ in range(20):  # bob's token id with a wrong secret: refused, and never takes his share
            r = httpx.get(f"{served.url}/api/v1/whoami", headers={"Authorization": f"Bearer nsml_{bobs_id}_x"})
            assert r.status_code in (401, 429), r.text
        start = time.monotonic()
        assert bob.get(f"{served.url}/api/v1/whoami").json()["user"] == "bob"  # same address, his own share
        assert bob.get(f"{served.url}/api/v1/sessions", params={"all": True}).status_code == 200
        assert time.monotonic() - start < 5
        assert all(code == 429 for code, _ in answers), answers  # hers are still held
    finally:
        gate.set()
        for t in held:
            t.join(90)
    deadline = time.monotonic() + 30
    while alice.get(f"{served.url}/api/v1/whoami").status_code != 200:  # her share comes back as they end
        assert time.monotonic() < deadline, "alice's share did not come back"
        time.sleep(0.2)


@pytest.mark.parametrize("header,cookie,expected", [
    ("Bearer nsml_abc123_secret", "", "token abc123"),
    ("", "nsml_token=nsml_abc123_secret", "token abc123"),
    ("Bearer nsml_abc123_wrong", "", "address 10.0.0.1"),  # someone else's id, a wrong secret: never its share
    ("Bearer nsml_" + "a" * 300, "", "address 10.0.0.1"),
    ("Bearer nothing", "", "address 10.0.0.1"),
    ("Basic nsml_abc123_secret", "", "address 10.0.0.1"),
])
def test_a_caller_is_its_verified_account_or_its_address(monkeypatch, header, cookie, expected):
    import hashlib

    from harness.service import accounts
    monkeypatch.setitem(accounts._CALLERS, "abc123", hashlib.sha256(b"nsml_abc123_secret").digest())  # verified
    headers = [(k.encode(), v.encode()) for k, v in (("authorization", header), ("cookie", cookie)) if v]
    scope = {"type": "http", "path": "/api/v1/whoami", "headers": headers, "client": ("10.0.0.1", 5)}
    assert caller_slots.caller_of(caller_slots.credentials(scope)[0], scope) == expected


@settings(max_examples=300, deadline=None)
@given(authorization=st.text(max_size=400), cookie=st.text(max_size=9000),
       address=st.one_of(st.none(), st.text(min_size=1, max_size=40)))
def test_any_headers_name_one_caller_and_never_raise(authorization, cookie, address):
    """Headers are anyone's to write: whatever they hold (made-up tokens, huge or broken cookies, no client), a
    request is its address's unless its token is one this server verified — never an account it cannot prove."""
    headers = [(k.encode(), v.encode("latin-1", "replace")) for k, v in
               (("authorization", authorization), ("cookie", cookie)) if v]
    scope = {"type": "http", "path": "/", "headers": headers, "client": (address, 1) if address else None}
    assert caller_slots.caller_of(caller_slots.credentials(scope)[0], scope) == f"address {address or '?'}"
