"""The state root's service (harness.server.local_service): local commands are clients of it over a Unix socket,
so the CLI process loads no database library; it answers exactly what the in-process library answers, keeps each
error's class and wording, survives hostile requests, starts once under a crowd and leaves when idle.
(The end-to-end tests' "local" variant runs through it too: tests/conftest.py either_cli.)"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import NSML_MAIN, ORGANIZER, Cli, make_tiny_task, participant, run_session

from harness.api import local_wire as wire
from harness.client.service import ServiceApi, stop_services
from harness.core.errors import NotFound, PermissionDenied, UserError
from harness.core.settings import load_settings


@pytest.fixture
def service(monkeypatch, state_root):
    monkeypatch.setenv("HARNESS_SERVICE", "socket")
    (state_root / "harness.toml").write_text("[scheduler]\nservice_idle_exit_seconds = 60\n")
    yield state_root
    stop_services(state_root / ".harness")


@pytest.fixture
def scored(service, tmp_path):
    """A tiny task, a session and one real submit, all through the service."""
    cli = Cli()
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny-task"), user=ORGANIZER)
    name = run_session(cli, participant(tmp_path / "p", NSML_MAIN))
    assert cli("submit", name, "1").stdout.splitlines() == ["Score: 1.0", "Done"]
    return name


def service_pids(root) -> list[int]:
    """The live services of ROOT (their command lines name it)."""
    out = subprocess.run(["pgrep", "-f", f"harness.server.local_service --root {root} "], capture_output=True,
                         text=True).stdout
    pids = [int(p) for p in out.split()]
    return [p for p in pids if _parent(p) not in pids]  # a service's child between its fork and exec is no other


def _parent(pid: int) -> int | None:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def api(user="alice") -> ServiceApi:
    return ServiceApi(load_settings(user=user))


def in_process(user="alice"):
    from harness.service.local import LocalApi
    from harness.state import Harness
    return LocalApi(Harness(load_settings(user=user)))


def test_local_commands_load_no_database_library(scored, state_root):
    """The issue's point: `run`, `logs`, `submit` and `history` in a fresh process import no SQLAlchemy."""
    env = dict(os.environ)
    for argv in (["submit", "-t", scored, "0"], ["logs", scored], ["history", "tiny", "-j"], ["model", "ls", scored]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", *argv], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
        assert "harness.client.service" in imported, argv
        assert not {m for m in imported if m.split(".")[0] in ("sqlalchemy", "alembic")}, argv
    assert len(service_pids(state_root)) == 1  # one service answered them all


def test_answers_are_the_in_process_answers(scored):
    remote, local = api(), in_process()
    calls = [("list_sessions", (True, None, None)), ("session_info", (scored,)), ("list_checkpoints", (scored,)),
             ("session_metrics", (scored,)), ("board", ("tiny",)), ("history", ("tiny", 1, 50)),
             ("score_history", ("tiny",)), ("list_tasks", ()), ("whoami", ()), ("submission_info", (1,)),
             ("clock", ())]
    for name, args in calls:
        got = getattr(remote, name)(*args)
        want = json.loads(wire.encode(getattr(local, name)(*args)))
        if name == "clock":
            got, want = got["simulated"], want["simulated"]
        assert got == want, name
    assert b"".join(remote.session_log(scored)) == b"".join(local.session_log(scored))
    assert b"done training" in b"".join(remote.session_log(scored, follow=True))


def test_errors_keep_their_class_wording_and_exit_code(scored):
    with pytest.raises(NotFound, match="unknown session 'alice/tiny/9'"):
        api().session_info("alice/tiny/9")
    with pytest.raises(PermissionDenied, match="organizers only"):
        api().infer_log(1)  # a real submit's infer log saw the hidden inputs
    with pytest.raises(UserError, match="-v/--verbose"):
        api().start_submit(scored, "1", False, None, None, None, None, True)
    out = Cli()("logs", "alice/tiny/9", code=2)
    assert out.stderr.strip().splitlines() == ["Error: unknown session 'alice/tiny/9'. Did you mean 'alice/tiny/1'?"]


def _ask(address: str, payload: bytes, timeout=10.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def test_hostile_requests_are_refused_and_others_keep_being_served(scored, state_root, tmp_path):
    client = api()
    client.whoami()  # the service is up
    fd, address = wire.short_address(client.folder, client.name)
    settings = client._settings
    other = dict(settings, root=str(tmp_path / "elsewhere"))
    line = lambda obj: json.dumps(obj).encode() + b"\n"  # noqa: E731
    hostile = [b"not json\n", b"[]\n", b"\n", b"\xff\xfe\x00\n", line({"op": "nope", "args": {}}),
               line({"op": "board", "args": {"task": "tiny", "x": 1}, "settings": settings}),
               line({"op": "board", "args": {"task": "tiny"}, "settings": other}),
               line({"op": "board", "args": {"task": "tiny"}, "settings": {"root": "/"}}),
               line({"op": "board", "args": {"task": "tiny", "note": "x"}, "settings": settings}),
               line({"op": "board", "args": {"task": ["tiny"]}, "settings": settings}),
               line({"op": "session_info", "args": {"session": "../../etc/passwd"}, "settings": settings}),
               line({"op": "history", "args": {"task": "tiny", "page": True}, "settings": settings}),
               line({"op": "history", "args": {"task": "tiny", "per_page": 10 ** 9}, "settings": settings}),
               line({"op": "board", "args": {"task": "tiny"}, "settings": dict(settings, organizers="alice")}),
               line({"op": "board", "args": {"task": "tiny"}, "settings": dict(settings, user="../../x")}),
               line({"op": "board", "args": {"task": "tiny"}, "settings": dict(settings, max_concurrent_runs="8")}),
               b'{"op": "wait_submission", "args": {"sub_id": 1, "timeout": NaN}, "settings": '
               + json.dumps(settings).encode() + b"}\n",
               b"[" * 100_000 + b"\n",
               b"x" * (wire.MAX_REQUEST + 10) + b"\n"]
    rng = random.Random(7)
    hostile += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) + b"\n" for _ in range(40)]
    try:
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # connects and never asks: holds nobody up
        idle.connect(address)
        for payload in hostile:
            reply = _ask(address, payload)
            assert reply, payload[:80]
            got = json.loads(reply.splitlines()[0])
            assert "error" in got and "result" not in got, (payload[:80], got)
            assert api().whoami()["user"] == "alice"  # the next caller is served
        assert api().board("tiny")["rows"][0]["score"] == 1.0
        idle.close()
    finally:
        os.close(fd)
    assert len(service_pids(state_root)) == 1


def test_a_crowd_of_cold_commands_starts_one_service(service, state_root):
    procs = [subprocess.Popen([sys.executable, "-m", "harness", "dataset", "ls", "-j"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert all(json.loads(out) == json.loads(outs[0][0]) for out, _ in outs)
    assert len(service_pids(state_root)) == 1


def test_the_service_leaves_when_idle_or_when_its_socket_goes(service, state_root):
    (state_root / "harness.toml").write_text("[scheduler]\nservice_idle_exit_seconds = 1\n")
    assert api().whoami()["user"] == "alice"
    [pid] = service_pids(state_root)
    deadline = time.monotonic() + 15
    while service_pids(state_root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not service_pids(state_root), "an idle service stays"
    (state_root / "harness.toml").write_text("[scheduler]\nservice_idle_exit_seconds = 60\n")
    client = api()
    assert client.whoami()["user"] == "alice"
    [pid] = service_pids(state_root)
    (client.folder / client.name).unlink()
    deadline = time.monotonic() + 15
    while pid in service_pids(state_root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid not in service_pids(state_root), "a service whose socket was taken away stays"
    assert api().whoami()["user"] == "alice"  # a new one starts


def test_a_long_answer_does_not_hold_up_others(scored, tmp_path):
    """`logs -f` of a running session streams through the service while other commands are answered."""
    cli = Cli()
    name = run_session(cli, participant(tmp_path / "slow", NSML_MAIN), "-a", "--epochs 3 --sleep 1", wait=False)
    got = []
    follower = threading.Thread(target=lambda: got.append(b"".join(api().session_log(name, follow=True))))
    follower.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert api().session_info(scored)["status"] == "succeeded"
    assert time.monotonic() - started < 5
    follower.join(60)
    assert b"done training" in got[0]


def test_a_dead_service_is_replaced(scored, state_root):
    [pid] = service_pids(state_root)
    os.kill(pid, signal.SIGKILL)  # no clean-up: its socket file stays behind
    deadline = time.monotonic() + 10
    while pid in service_pids(state_root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api().board("tiny")["rows"][0]["user"] == "alice"
    assert len(service_pids(state_root)) == 1


def test_a_sandboxed_run_is_never_a_caller(scored, state_root, tmp_path):
    """bubblewrap maps a run's nobody to our uid, so the uid check alone would let a run in wherever a mount
    shows it the socket: the service refuses a peer in other namespaces. Here the state folder is mounted into
    the sandbox on purpose."""
    from harness.runtime import sandbox
    if not sandbox.works():
        pytest.skip("no bubblewrap") if not os.environ.get("CI") else pytest.fail("CI must provide bubblewrap")
    client = api()
    client.whoami()
    script = (f"import json, os, socket\n"
              f"fd = os.open({str(client.folder)!r}, os.O_RDONLY)\n"
              f"s = socket.socket(socket.AF_UNIX); s.connect(f'/proc/self/fd/{{fd}}/{client.name}')\n"
              f"s.sendall(json.dumps({{'op': 'whoami', 'args': {{}}, 'settings': {client._settings!r}}})"
              f".encode() + b'\\n')\n"
              f"print(s.recv(65536).decode())\n")
    (tmp_path / "box-tmp").mkdir()
    cmd = sandbox.base_command(network=False, tmp=tmp_path / "box-tmp") + [
        "--ro-bind", str(client.folder), str(client.folder), "--", sys.executable, "-c", script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert "result" not in reply and "not a sandboxed run" in reply["error"], reply  # (whoami alone would answer)


def test_the_service_imports_nothing_from_the_callers_folder(service, tmp_path):
    """A `difflib.py` where a user typed a command must not run in the service (nor the scheduler)."""
    here = tmp_path / "somewhere"
    here.mkdir()
    marker = tmp_path / "imported"
    for name in ("difflib", "pynvml", "psutil", "tarfile", "shlex"):
        (here / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name} ')\n")
    nsml = os.path.join(os.path.dirname(sys.executable), "nsml")
    for argv in (["dataset", "ls"], ["logs", "alice/tiny/1"], ["run", "-d", "nope", "."]):
        subprocess.run([nsml, *argv], cwd=here, capture_output=True, timeout=120)
    assert not marker.exists(), marker.read_text()


def test_a_command_waits_out_a_service_that_is_leaving(service, state_root):
    """The old service still holds its lock while it leaves: the new command starts one again once it is free."""
    import fcntl
    client = api()
    client.folder.mkdir(parents=True, exist_ok=True)
    with open(client.folder / (client.name + ".lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        threading.Timer(2.0, lambda: fcntl.flock(held, fcntl.LOCK_UN)).start()
        started = time.monotonic()
        assert client.whoami()["user"] == "alice"
    assert 1.5 < time.monotonic() - started < 30


def test_a_crowd_of_idle_connections_is_told_to_wait_and_others_are_served_after(scored):
    from harness.server.local_service import MAX_CALLERS
    client = api()
    client.whoami()
    fd, address = wire.short_address(client.folder, client.name)
    crowd = []
    try:
        for _ in range(MAX_CALLERS + 8):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(address)
            crowd.append(sock)
        time.sleep(0.5)
        last = crowd[-1]
        last.settimeout(10)
        assert json.loads(last.recv(65536).splitlines()[0])["error"].endswith("busy; try again")
    finally:
        for sock in crowd:
            sock.close()
        os.close(fd)
    deadline = time.monotonic() + 20
    while True:
        try:
            assert api().whoami()["user"] == "alice"
            break
        except UserError:
            assert time.monotonic() < deadline, "still busy"
            time.sleep(0.2)


def test_a_long_operation_reports_its_progress_through_the_service(scored):
    """`progress` is a declared keyword of the long operations, not state on the Api: the service sends each
    report as it happens."""
    seen = []
    got = api(ORGANIZER).rescore("tiny", True, progress=lambda done, total=None, note="": seen.append((done, total)))
    assert got["dry_run"] is True and len(got["submissions"]) == 1
    assert seen == [(0, 1)], seen  # (before each submission: 0 of 1)


def test_settings_that_mean_none_cross_to_the_service(state_root):
    """`limits.user_storage_bytes = 0` ("no limit") is None in Settings: every field that may be None crosses the
    socket's settings gate as None (the gate reads which fields may be from Settings' own annotations), and a
    wrong type is still refused."""
    from harness.core.settings import Settings
    (state_root / "harness.toml").write_text("[limits]\nuser_storage_bytes = 0\nenv_bytes = 0\n"
                                             "running_per_user = 0\nrun_memory_bytes = 0\n")
    mine = load_settings()
    assert mine.user_storage_bytes is None and mine.env_bytes is None
    back = Settings.from_wire(json.loads(json.dumps(mine.to_wire())), load_settings())
    assert back == mine
    with pytest.raises(UserError, match="user_storage_bytes: not of its type"):
        Settings.from_wire(dict(mine.to_wire(), user_storage_bytes="0"), mine)


def test_the_store_url_is_on_no_command_line(scored, state_root):
    """/proc/PID/cmdline is every account's to read: a PostgreSQL password there undid harness.toml's chmod 600. The
    service and the scheduler it starts get the URL in their environment instead (/proc/PID/environ: owner only)."""
    url = load_settings().db_url
    pids = service_pids(state_root) + [int(p) for p in subprocess.run(
        ["pgrep", "-f", f"harness.scheduler --root {state_root} "], capture_output=True, text=True).stdout.split()]
    assert len(pids) >= 1
    for pid in pids:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        assert not any(b"leaderboard.db" in a or b"sqlite:" in a for a in argv), argv
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        assert f"HARNESS_DB={url}".encode() in environ


def test_the_evaluator_never_inherits_the_store_url(service, tmp_path):
    """The service and the scheduler read the URL from their environment, then drop it: the evaluation.py they run
    (sandboxed or not) inherits their environment, and a prediction that took over an evaluator would read it."""
    cli = Cli()
    task = make_tiny_task(tmp_path / "tiny-task")
    cli("dataset", "add", task, user=ORGANIZER)
    (task / "evaluation.py").write_text("import os, sys\nprint('HARNESS_DB=' + repr(os.environ.get('HARNESS_DB')),"
                                        " file=sys.stderr)\nsys.exit(1)\n")
    name = run_session(cli, participant(tmp_path / "p", NSML_MAIN))
    sub = cli.json("submit", name, "1", code=1)
    log = cli("logs", "--submission", str(sub["id"]), user=ORGANIZER).stdout
    assert "HARNESS_DB=None" in log, log
