"""Uploads to a real `harness serve` are hostile until checked: every bad archive or body gets its named 4xx,
nothing lands outside the upload's own folder, and no session is created from it. Also: the server dies with
kill -9 and a new one on the same root goes on (nothing lost or stuck), and a waiting submit rides it out."""
import io
import json
import os
import signal
import tarfile
import threading
import time

import httpx
import pytest
from helpers import NSML_MAIN, ORGANIZER, Served, make_tiny_task, participant


def _tar(*members) -> bytes:
    """MEMBERS: (TarInfo, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name, data=b"print('hi')\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _special(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


def _link_chain() -> bytes:
    """The shape of the long-symlink chain that walks out past tarfile's `data` filter on Python 3.11.7: folders
    with near-maximal names, one-letter links to them, a last link climbing back out, then members through it."""
    comp, steps, members, path = "d" * 247, "abcdefghijklmnop", [], ""
    for step in steps:
        folder = f"{path}/{comp}" if path else comp
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        members += [(info, None), _link(f"{path}/{step}" if path else step, comp)]
        path = folder
    deep = "/".join(steps) + "/" + "l" * 254
    members += [_link(deep, "../" * len(steps)), _link("escape", deep + "/../../../../../../../.."),
                _file("escape/tmp/escaped.py")]
    return _tar(_file("main.py"), *members)


ATTACKS = {
    "link-chain": (_link_chain(), 400, "refused"),
    "file-then-folder": (_tar(_file("main.py"), _file("lib"), _file("lib/x.py")), 400, "refused"),
    "folder-then-file": (_tar(_file("main.py"), _file("lib/x.py"), _file("lib")), 400, "refused"),
    "twice": (_tar(_file("main.py"), _file("main.py", b"print('again')")), 400, "twice"),
    "long-name": (_tar(_file("main.py"), _file("x" * 5000)), 400, "refused"),
    "deep": (_tar(_file("main.py"), _file("/".join(["d"] * 70) + "/f.py")), 400, "deep"),
    "control-name": (_tar(_file("main.py"), _file("evil\x1b[2J.py")), 400, "control character"),
    "link-then-through": (_tar(_file("main.py"), _link("sub", "inner"), _file("sub/x.py")), 400, "refused"),
    "hardlink-in": (_tar(_file("main.py"), _link("h", "main.py", tarfile.LNKTYPE)), 400, "hard link"),
    "dotdot": (_tar(_file("main.py"), _file("../escaped.py")), 400, "refused"),
    "absolute": (_tar(_file("main.py"), _file("/tmp/abs-escape.py")), 400, "refused"),
    "symlink-out": (_tar(_file("main.py"), _link("data", "/etc/passwd")), 400, "refused"),
    "symlink-dotdot": (_tar(_file("main.py"), _link("up", "../../..")), 400, "refused"),
    "hardlink-out": (_tar(_file("main.py"), _link("h", "/etc/passwd", tarfile.LNKTYPE)), 400, "refused"),
    "fifo": (_tar(_file("main.py"), _special("pipe", tarfile.FIFOTYPE)), 400, "refused"),
    "device": (_tar(_file("main.py"), _special("dev", tarfile.CHRTYPE)), 400, "refused"),
    "not-a-tar": (b"this is not an archive at all" * 50, 400, "not a tar archive"),
    "no-entry": (_tar(_file("other.py")), 400, "-e/--entry"),
}


@pytest.fixture
def alice(cli, served, remote_cli, tmp_path):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    return httpx.Client(base_url=served.url + "/api/v1", timeout=60,
                        headers={"Authorization": f"Bearer {remote_cli.token('alice')}"})


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_hostile_code_upload_is_refused_with_its_reason(alice, attack, state_root, tmp_path):
    body, status, words = ATTACKS[attack]
    r = alice.post("/sessions", params={"task": "tiny"}, content=body,
                   headers={"Content-Type": "application/x-tar"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and "\n" not in r.json()["error"]
    assert alice.get("/sessions", params={"all": True}).json() == []  # no session from it
    assert not (tmp_path / "escaped.py").exists() and not os.path.exists("/tmp/abs-escape.py")
    assert not list((state_root / ".harness").rglob("escaped.py"))


def test_uploads_and_bodies_over_their_caps_are_413(alice, state_root):
    (state_root / "harness.toml").write_text("[limits]\ncode_bytes = 20000\n")
    big = _tar(_file("main.py"), _file("weights.bin", b"\0" * 50_000))
    r = alice.post("/sessions", params={"task": "tiny"}, content=big, headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 413 and "over" in r.json()["error"]

    def chunks():  # no Content-Length: the cap is checked while reading
        yield big
    r = alice.post("/sessions", params={"task": "tiny"}, content=chunks(),
                   headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 413, r.text
    r = alice.put("/sessions/alice/tiny/1/memo", content=b'{"text": "' + b"x" * (2 << 20) + b'"}',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = alice.post("/sessions", params={"task": "tiny"}, content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "application/x-tar" in r.json()["error"]


@pytest.mark.parametrize("path,headers", [
    ("/api/v1/sessions/alice/tiny/1/memo", {"Content-Type": "application/json"}),
    ("/api/v1/sessions/alice/tiny/1/memo", {"Content-Type": "application/x-tar"}),  # a tar body to a JSON route
    ("/login", {"Content-Type": "application/x-www-form-urlencoded"}),  # a dashboard form (read for its CSRF field)
])
def test_a_chunked_body_without_a_token_is_cut_at_its_cap(served, path, headers):
    """No Content-Length (chunked): the body is counted as it arrives and refused at MAX_JSON_BYTES, before any
    route or token check reads it, instead of being read whole into the server's memory; others are served."""
    sent = []

    def chunks():
        for _ in range(64):  # 64 MiB offered
            sent.append(1)
            yield b"x" * (1 << 20)
    with httpx.Client(base_url=served.url, timeout=60) as anyone:
        anyone.get("/login")  # its cookie: the CSRF check then reads the form (without one it refuses unread)
        try:
            r = anyone.request("PUT" if "memo" in path else "POST", path, content=chunks(), headers=headers)
            assert r.status_code == 413, (r.status_code, r.text[-300:])
        except httpx.TransportError:
            pass  # the server answered 413 and closed while the body was still being sent
        assert anyone.get("/api/v1/openapi.json").status_code == 200


def test_a_remote_run_uploads_after_the_snapshot_rules(remote_cli, served, cli, tmp_path):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    folder = participant(tmp_path / "code", NSML_MAIN)
    (folder / ".nsmlignore").write_text("secret.txt\n")
    (folder / "secret.txt").write_text("not for the server")
    (folder / "outside").symlink_to("/etc")
    r = remote_cli("run", "-d", "tiny", folder, code=2)
    assert "outside" in r.stderr and "Traceback" not in r.output  # refused here, before any upload
    (folder / "outside").unlink()
    name = remote_cli("run", "-d", "tiny", folder).stdout.split()[1]
    remote_cli("logs", "-f", name)
    code = served.state_root / ".harness" / "sessions" / "alice" / "tiny" / "1" / "code"
    assert (code / "main.py").is_file() and not (code / "secret.txt").exists()


@pytest.mark.parametrize("entry", ["/etc/passwd", "/no/such/file", "../../../../../etc/passwd", "lib/../main.py",
                                   " ", "missing.py"])
def test_an_entry_outside_the_uploaded_code_is_refused_alike_whether_or_not_it_exists(alice, entry):
    """`run -e` over HTTP names a file of the uploaded code, never a host path: no oracle of which host files exist
    (one answer for /etc/passwd and for a path that does not), and the scheduler never reads a host file to plan
    the run."""
    r = alice.post("/sessions", params={"task": "tiny", "entry": entry}, content=_tar(_file("main.py")),
                   headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("-e/--entry: ") and "\n" not in r.json()["error"]
    assert alice.get("/sessions", params={"all": True}).json() == []


def test_the_server_dies_with_kill_9_and_a_new_one_goes_on(cli, tmp_path, state_root):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    token = json.loads(cli("user", "add", "alice", "-j", user=ORGANIZER).stdout)["token"]
    folder = participant(tmp_path / "code", NSML_MAIN)
    name = cli("run", "-d", "tiny", folder).stdout.split()[1]
    cli("logs", "-f", name)
    first = Served(state_root)
    from harness.client import RemoteApi
    api = RemoteApi(first.url, token)
    sub_id = api.start_submit(name, "1", False, None, None, None, None, False, lambda _: None)
    got = {}
    waiter = threading.Thread(target=lambda: got.update(api.wait_submission(sub_id, timeout=120)))
    waiter.start()
    time.sleep(0.3)
    os.kill(first.proc.pid, signal.SIGKILL)  # no shutdown of any kind
    first.proc.wait(10)
    second = Served(state_root, port=first.port)  # a new server on the same root and port
    try:
        waiter.join(120)
        assert not waiter.is_alive(), "the waiting submit did not ride out the restart"
        assert got["status"] == "succeeded" and got["score"] == 1.0
        assert RemoteApi(second.url, token).list_sessions(True, None, None)[0]["status"] == "succeeded"
    finally:
        second.stop()


@pytest.mark.filterwarnings("error::DeprecationWarning")  # FastAPI's on_event hooks are deprecated
def test_the_app_starts_the_scheduler_when_it_starts_serving(state_root, monkeypatch):
    """Queued work from before a restart goes on: the app's lifespan (not a deprecated startup hook) asks the
    scheduler to run once, when serving starts, and not when the app is merely built."""
    from starlette.testclient import TestClient

    from harness.core.settings import load_settings
    from harness.server import app as server_app
    asked = []
    monkeypatch.setattr(server_app, "ensure_running", lambda settings: asked.append(settings.root))
    app = server_app.create_app(load_settings(user=ORGANIZER))
    assert asked == []
    with TestClient(app) as client:
        assert asked == [state_root]
        assert client.get("/api/v1/openapi.json").status_code == 200
    assert asked == [state_root]


def test_a_refused_pack_upload_leaves_nothing_and_checkpoint_names_cannot_climb(cli, served, remote_cli, tmp_path,
                                                                                state_root):
    org = httpx.Client(base_url=served.url + "/api/v1", timeout=60,
                       headers={"Authorization": f"Bearer {remote_cli.token(ORGANIZER)}"})
    r = org.post("/tasks", content=_tar(_file("task.toml", b"name = 'x'\n")),
                 headers={"Content-Type": "application/x-tar"})
    assert r.status_code in (400, 404) and "\n" not in r.json()["error"]  # not a pack in NSML layout
    assert not any((state_root / ".harness" / "uploads").iterdir())  # its upload folder is gone
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    name = cli("run", "-d", "tiny", participant(tmp_path / "code", NSML_MAIN)).stdout.split()[1]
    cli("logs", "-f", name)
    alice = httpx.Client(base_url=served.url + "/api/v1", headers={"Authorization":
                                                                  f"Bearer {remote_cli.token('alice')}"})
    for hostile in ("..", "%2e%2e", "...", ".hidden"):
        r = alice.get(f"/sessions/alice/tiny/1/checkpoints/{hostile}/archive")
        assert 400 <= r.status_code < 500, (hostile, r.status_code)


def test_the_same_account_added_twice_at_once_is_one_account(cli, state_root):
    from dataclasses import replace

    from harness.core.errors import UserError
    from harness.core.settings import load_settings
    from harness.service import accounts
    from harness.state import Harness
    cli("ps")  # the store exists
    got, refused = [], []

    def add():
        settings = load_settings(user=ORGANIZER)
        h = Harness(replace(settings, organizers=[ORGANIZER]))
        try:
            got.append(accounts.add_user(h, "twin"))
        except UserError as exc:
            refused.append(str(exc))
        finally:
            h.store.close()
    threads = [threading.Thread(target=add) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 1 and len(refused) == 5 and all("exists" in m for m in refused)


def test_fuzzed_uploads_never_land_outside_and_others_keep_being_served(alice, remote_cli, served, state_root,
                                                                        tmp_path):
    """60 archives drawn by Hypothesis (the upload gate's strategy) posted to a real server: each is a session or
    a one-line 4xx, never a 5xx; meanwhile bob's session, submit, ps and board succeed; the task's files and
    bob's session are unchanged, and nothing appears outside the server's upload folders."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from test_archive_gate import MEMBER, _archive
    from test_trust import _tree_digest
    task_dir = tmp_path / "tiny"  # the pack alice's fixture added (registered where it is)
    assert (task_dir / "evaluation.py").is_file()
    bob_code = participant(tmp_path / "bob", NSML_MAIN)
    bob = remote_cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1", bob_code, user="bob").stdout.split()[1]
    remote_cli("logs", "-f", bob, user="bob")
    bob_dir = state_root / ".harness" / "sessions" / "bob"
    before = (_tree_digest(task_dir), _tree_digest(bob_dir), sorted(os.listdir(tmp_path)))
    codes = []

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.lists(MEMBER, min_size=1, max_size=6))
    def post(members):
        body = _archive([("file", "main.py", "")] + members)
        r = alice.post("/sessions", params={"task": "tiny", "entry": "main.py"}, content=body,
                       headers={"Content-Type": "application/x-tar"})
        codes.append(r.status_code)
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert "\n" not in r.json()["error"]

    post()
    assert codes.count(200) and codes.count(400), codes  # both kinds were drawn
    assert remote_cli.json("submit", bob, "0", user="bob")["status"] == "succeeded"
    assert any(r["name"] == bob for r in remote_cli.json("ps", "-a", user="bob"))
    assert any(r["user"] == "bob" for r in remote_cli.json("board", "tiny", user="bob"))
    assert (_tree_digest(task_dir), _tree_digest(bob_dir), sorted(os.listdir(tmp_path))) == before
    assert not list(state_root.rglob("escaped*"))


@pytest.mark.parametrize("query,words", [("task=nowhere", "unknown task"), ("task=tiny&memo=%07", "memo"),
                                         ("task=tiny&options=%7B%22runtime%22%3A%22docker%22%7D", "--runtime"),
                                         ("task=tiny&options=%7B%22gpu%22%3A2%7D", "options.gpu: Extra inputs")])
def test_a_session_that_would_be_refused_is_refused_before_its_upload_is_read(alice, served, query, words):
    """An unknown task, a bad memo, a runtime the organizer did not allow (and the round's gate, the queue limit,
    the user's storage): answered at once, while the client has sent none of its (announced) megabyte; the server
    spools and unpacks nothing for a refusal."""
    import socket
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"POST /api/v1/sessions?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: {alice.headers['Authorization']}\r\nContent-Type: application/x-tar\r\n"
                     f"Content-Length: 1000000\r\n\r\n".encode())
        answer = conn.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += conn.recv(65536)
    assert head.startswith(b"HTTP/1.1 4") and words in body.decode(), answer


def test_fuzzed_dataset_lists_are_one_line_refusals_or_sessions_of_registered_tasks(alice, remote_cli, served, cli,
                                                                                    tmp_path, state_root):
    """`-d a,b` over HTTP (`options.datasets`), drawn by Hypothesis: lists of names real, unknown, climbing,
    empty, over-long, with control characters, repeated or the session's own, too many, and values of other types.
    Each answer is a session or a one-line 4xx, never a 5xx; every session created reads only registered tasks
    other than its own; bob is served throughout and no task's files change."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from test_trust import _tree_digest
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny2", name="tiny2"), user=ORGANIZER)
    before = {name: _tree_digest(tmp_path / name) for name in ("tiny", "tiny2")}
    chosen = st.sampled_from(["tiny", "tiny2", "tiny2", "nowhere", "../tiny2", "tiny2/..", "/etc", ".", "",
                              "tiny2\x00", "TINY2", "t" * 201, "tiny2 ", "%2e%2e"])
    names = st.one_of(chosen, chosen, chosen, st.text(max_size=12))
    others = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                       st.lists(st.lists(names, max_size=2), min_size=1, max_size=2))
    values = st.one_of(st.lists(names, max_size=10), st.lists(names, max_size=3), others)
    body = _tar(_file("main.py", b""))
    codes, said = [], []

    @settings(max_examples=80, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(values)
    def post(datasets):
        r = alice.post("/sessions", params={"task": "tiny", "entry": "main.py",
                                            "options": json.dumps({"datasets": datasets})},
                       content=body, headers={"Content-Type": "application/x-tar"})
        codes.append(r.status_code)
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert "\n" not in r.json()["error"]
            said.append(r.json()["error"])
            return
        read = remote_cli.json("ps", "-a", user="alice")[0]["datasets"]
        assert read == (datasets or []) and set(read) <= {"tiny2"}, (datasets, read)

    post()
    assert codes.count(200) and len(codes) - codes.count(200), codes  # both kinds were drawn
    print(sorted(codes), *sorted(set(said)), sep="\n")
    for words in ("options.datasets: ", "-d/--dataset: invalid name", "named twice", "unknown task"):
        assert any(words in m for m in said), (words, said)  # each kind of refusal was drawn, named in one line
    bob = remote_cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1",
                     participant(tmp_path / "bob", NSML_MAIN), user="bob").stdout.split()[1]
    remote_cli("logs", "-f", bob, user="bob")
    assert remote_cli.json("submit", bob, "0", user="bob")["status"] == "succeeded"
    assert {name: _tree_digest(tmp_path / name) for name in ("tiny", "tiny2")} == before
