"""The hostile suite: each attack tried on main as a participant would, with its named outcome.

Attacks that run participant code are parametrised over the sandboxed process runtime (bubblewrap) and the
docker runtime.  Every such test checksums the whole task folder and the other user's session folder before and
after: nothing an attack does may change them, give a score, or read a label.
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant, run_session

from harness.runtime import sandbox

HOSTILE_MAIN = NSML_MAIN.replace('''    p.add_argument("--peek", type=int, default=0)''', '''    p.add_argument("--peek", type=int, default=0)
    p.add_argument("--attack", default="")
    p.add_argument("--target", default="")''').replace('''    cfg = p.parse_args()''', '''    cfg = p.parse_args()
    import attacks
    attacks.run(cfg)''')

ATTACKS = r'''
import json, os, sys
import nsml

def _events(event):
    with open(os.environ["NSML_EVENTS"], "a") as fh:
        fh.write(json.dumps(event) + "\n")

def run(cfg):
    a = cfg.attack
    if a == "link_prediction" and cfg.mode == "test":
        os.symlink(cfg.target, os.environ["NSML_OUTPUT_FILE"])
        sys.exit(0)
    if a == "hardlink_prediction" and cfg.mode == "test":
        src = os.path.join(nsml.DATASET_PATH, "test", "test_data")
        try:
            os.link(src, os.environ["NSML_OUTPUT_FILE"])
            print("hard link made")
        except OSError as exc:
            print("hard link refused:", exc)
            open(os.environ["NSML_OUTPUT_FILE"], "w").write("1\n")
            os.link(os.environ["NSML_OUTPUT_FILE"], os.environ["NSML_OUTPUT_FILE"] + ".twin")
        sys.exit(0)
    if a == "fifo_prediction" and cfg.mode == "test":
        os.mkfifo(os.environ["NSML_OUTPUT_FILE"])
        sys.exit(0)
    if a == "socket_prediction" and cfg.mode == "test":  # (ENXIO when opened: it was an uncounted harness_error)
        import socket
        socket.socket(socket.AF_UNIX).bind(os.environ["NSML_OUTPUT_FILE"])
        os._exit(0)
    if a == "socket_events" and cfg.mode == "train":  # (ENXIO failed every scheduler pass: every run was lost)
        import socket
        ev = os.environ["NSML_EVENTS"]
        os.unlink(ev) if os.path.exists(ev) else None
        socket.socket(socket.AF_UNIX).bind(ev)
        import time
        time.sleep(3)  # polled while it runs, and read once more at its end
        os._exit(0)
    if a == "escape_checkpoint" and cfg.mode == "train":
        ck = os.environ["NSML_CHECKPOINT_DIR"]
        os.makedirs(os.path.join(ck, "real"), exist_ok=True)
        os.symlink("/", os.path.join(ck, "rootlink"))
        os.symlink("/etc/passwd", os.path.join(ck, "real", "passwd"))
        open(os.path.join(ck, "real", "weights"), "w").write("w")
        for name in ["../../../../../datasets/tiny", "../" * 12, "..", ".", "a/b", "x\nlist", "rootlink", "real"]:
            _events({"type": "checkpoint", "name": name})
        open(os.environ["NSML_EVENTS"] + ".keep", "w").write("x")
        sys.exit(0)
    if a == "fifo_events" and cfg.mode == "train":
        ev = os.environ["NSML_EVENTS"]
        os.unlink(ev) if os.path.exists(ev) else None
        os.mkfifo(ev)
        sys.exit(0)
    if a == "write_data" and cfg.mode == "train":
        for rel in ("train/train_label", "train/train_data/numbers"):
            try:
                with open(os.path.join(nsml.DATASET_PATH, rel), "a") as fh:
                    fh.write("tampered\n")
                print("wrote", rel)
            except OSError as exc:
                print("refused", rel, type(exc).__name__)
        print("labels visible:", os.path.exists(os.path.join(nsml.DATASET_PATH, "test")))
        return  # and trains on
    if a == "fill_disk" and cfg.mode == "train":
        ck = os.environ["NSML_CHECKPOINT_DIR"]
        os.makedirs(os.path.join(ck, "raw"), exist_ok=True)
        block = os.urandom(1 << 20)
        with open(os.path.join(ck, "raw", "blob"), "wb") as fh:
            for _ in range(int(cfg.target or 120)):
                fh.write(block)
        sys.exit(0)
    if a in ("fill_code", "fill_code_fail") and cfg.mode == "train":
        block = os.urandom(1 << 20)
        with open("blob.bin", "wb") as fh:
            for _ in range(int(cfg.target or 80)):
                fh.write(block)
        sys.exit(0 if a == "fill_code" else 3)  # (failing: the end of every run is measured, not only a success)
    if a == "load_other" and cfg.mode == "train":
        try:
            nsml.load(checkpoint="0", session=cfg.target)
            print("LOADED OTHER")
        except Exception as exc:
            print("load refused:", type(exc).__name__, exc)
        root = os.environ.get("NSML_SESSIONS_ROOT", "")
        print("visible users:", sorted(os.listdir(root)) if root and os.path.isdir(root) else [])
        sys.exit(0)
    if a == "network" and cfg.mode == "train":
        import socket
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect(("127.0.0.1", int(cfg.target)))
            print("NETWORK REACHED")
        except OSError as exc:
            print("network refused:", type(exc).__name__)
        sys.exit(0)
'''

RUNTIMES = ["process", pytest.param("docker", marks=pytest.mark.docker)]


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        st = os.lstat(p)
        digest.update(f"{p.relative_to(folder)}:{st.st_mode:o}:{st.st_size}".encode())
        if p.is_file() and not p.is_symlink():
            digest.update(p.read_bytes())
    return digest.hexdigest()


@pytest.fixture(params=RUNTIMES)
def runtime(request, monkeypatch):
    if request.param == "docker":
        request.getfixturevalue("docker_ready")
    elif not sandbox.works():
        if os.environ.get("CI"):
            pytest.fail("CI must install bubblewrap (scripts/setup-sandbox.sh)")
        pytest.skip("bubblewrap is not installed (scripts/setup-sandbox.sh)")
    monkeypatch.setenv("HARNESS_RUNTIME", request.param)
    return request.param


@pytest.fixture
def hostile(tmp_path):
    folder = participant(tmp_path / "hostile", HOSTILE_MAIN)
    (folder / "attacks.py").write_text(ATTACKS)
    return folder


@pytest.fixture
def guarded(tiny_task, state_root, cli, nsml_folder):
    """The task folder and another user's (bob's) trained session, checksummed before the attack."""
    out = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1", nsml_folder, user="bob").stdout
    bob = out.split()[1]
    cli("logs", "-f", bob, user="bob")
    bob_dir = state_root / ".harness" / "sessions" / "bob"
    before = (_tree_digest(tiny_task), _tree_digest(bob_dir))
    yield bob
    assert (_tree_digest(tiny_task), _tree_digest(bob_dir)) == before, "the task or bob's files changed"


def _attack(cli, folder, attack, target="", code=0):
    args = f"--epochs 1 --attack {attack}" + (f" --target {target}" if target else "")
    return run_session(cli, folder, "-a", args, code=code)


def _submit(cli, name, ckpt="0", *flags):
    r = cli("submit", *flags, name, ckpt, "-j", code=None)
    return json.loads(r.stdout)


# -- 1. a prediction that is not a file the run wrote ----------------------------------------------------------
@pytest.mark.parametrize("target", ["../../../datasets/tiny/test/test_label", "/etc/hostname"])
def test_symlinked_prediction_is_never_scored(cli, runtime, hostile, guarded, tiny_task, target):
    label = tiny_task / "test" / "test_label"
    link = str(label) if target.startswith("..") else target  # an absolute path to the labels, too
    name = _attack(cli, hostile, "link_prediction", link)
    for flags in ((), ("-t",)):
        result = _submit(cli, name, "0", *flags)
        assert result["status"] == "failed" and result["reason"] == "invalid_prediction", result
        said = "symbolic link" if flags else "submit -t says what it found"  # (which: the run's choice)
        assert result["score"] is None and said in result["message"], result
        first_line = Path(target if target.startswith("/") else label).read_text().splitlines()[0]
        assert first_line not in result["message"]
    assert cli.json("board", "tiny") == []


def test_hard_linked_or_fifo_prediction_is_refused(cli, runtime, hostile, guarded):
    name = _attack(cli, hostile, "hardlink_prediction")
    result = _submit(cli, name, "0", "-t")
    assert result["reason"] == "invalid_prediction" and "hard link" in result["message"], result
    name = _attack(cli, hostile, "fifo_prediction")
    result = _submit(cli, name, "0", "-t")
    assert result["reason"] == "invalid_prediction" and "FIFO" in result["message"], result
    name = _attack(cli, hostile, "socket_prediction")
    result = _submit(cli, name, "0", "-t")
    assert result["reason"] == "invalid_prediction" and "socket" in result["message"], result
    assert result["counted"] is False  # (a dry run; a real one is counted as the participant's invalid prediction)


# -- 3. checkpoint names and links stay inside the session ----------------------------------------------------
def test_checkpoint_names_and_links_never_escape(cli, runtime, hostile, guarded, state_root, tmp_path):
    name = _attack(cli, hostile, "escape_checkpoint")
    names = {r["checkpoint"] for r in cli.json("model", "ls", name)}
    assert names == {"real"}, names  # the real folder alone; every escape refused
    log = cli("logs", name).stdout
    for fragment in ("has a path separator", "starts with a dot", "has a control character",
                     "links are refused"):
        assert "checkpoint refused: " in log and fragment in log, (fragment, log)
    out = cli("model", "pull", name, "real", tmp_path / "pulled")
    pulled = tmp_path / "pulled"
    assert (pulled / "weights").read_text() == "w" and not (pulled / "passwd").exists()
    assert "passwd left out" in out.stderr
    cli("model", "rm", name, "*")
    assert (state_root / ".harness" / "datasets").exists() and cli.json("model", "ls", name) == []
    cli("model", "pull", name, "rootlink", tmp_path / "x", code=2)


@pytest.mark.parametrize("attack", ["fifo_events", "socket_events"])
def test_a_fifo_for_events_file_does_not_block_the_scheduler(cli, runtime, hostile, guarded, nsml_folder, attack):
    name = _attack(cli, hostile, attack)
    assert "events file ignored" in cli("logs", name).stdout
    run_session(cli, nsml_folder, "-a", "--epochs 1")  # the scheduler is still there for everyone


# -- 4. ownership -----------------------------------------------------------------------------------------------
def test_nobody_acts_on_another_users_session(cli, tiny_task, nsml_folder, tmp_path, state_root):
    alice = run_session(cli, nsml_folder, "-a", "--epochs 1")
    for args in (("model", "pull", alice, "0", tmp_path / "stolen"), ("model", "ls", alice),
                 ("model", "rm", alice, "*"), ("fork", alice, "-c", "0"), ("stop", alice), ("rm", "-y", alice),
                 ("memo", alice, "mine"), ("logs", alice), ("submit", alice, "0")):
        r = cli(*args, user="bob", code=2)  # told what a session that is not there is told (whose is not said)
        none = cli(*[a if a != alice else "alice/tiny/99" for a in args], user="bob", code=2)
        assert r.stderr == none.stderr.replace("alice/tiny/99", alice), (args, r.stderr, none.stderr)
        assert f"unknown session {alice!r}" in r.stderr and "Traceback" not in r.output, (args, r.output)
    r = cli("rm", "-y", "alice/*", user="bob", code=2)
    assert "no session of yours matches" in r.stderr
    assert not (tmp_path / "stolen").exists() and cli.json("model", "ls", alice) != []
    sub = cli.json("submit", alice, "0")
    r = cli("logs", "--submission", str(sub["id"]), user="bob", code=2)
    assert r.stderr == cli("logs", "--submission", str(sub["id"] + 1000), user="bob", code=2).stderr.replace(
        str(sub["id"] + 1000), str(sub["id"]))  # the words of an id with no submission
    cli("history", "tiny", user="bob")  # their own (empty) history is fine
    # organizers may act on anyone's
    assert cli.json("model", "ls", alice, user=ORGANIZER)


@pytest.mark.parametrize("bad", [".", "..", "a/b", "", "-x", "x" * 65, "bob\n", "a b"])
def test_user_names_follow_one_pattern(cli, bad):
    r = cli("--user", bad, "ps", code=2)
    assert "invalid name" in r.stderr and "letters, digits" in r.stderr


def test_load_reaches_only_own_sessions(cli, runtime, hostile, guarded):
    name = _attack(cli, hostile, "load_other", guarded)
    log = cli("logs", name).stdout
    assert "LOADED OTHER" not in log and "load refused" in log
    assert "visible users: ['alice']" in log


# -- 2. tasks are the organizers' -------------------------------------------------------------------------------
def test_only_organizers_change_tasks_and_replacing_is_recorded(cli, tiny_task, tmp_path):
    fake = make_tiny_task(tmp_path / "fake", name="tiny")
    (fake / "evaluation.py").write_text("print(0.999)\n")
    r = cli("dataset", "add", fake, user="bob", code=2)
    assert "organizer command" in r.stderr
    r = cli("dataset", "prepare", "garbage-docs", "--seed", "99", user="bob", code=2)
    assert "organizer command" in r.stderr
    cli("dataset", "rm", "tiny", user="bob", code=2)
    r = cli("dataset", "add", fake, user=ORGANIZER, code=2)
    assert "already registered" in r.stderr and "--replace" in r.stderr
    cli("dataset", "add", fake, "--replace", user=ORGANIZER)
    changes = cli.json("dataset", "changes", "tiny", user=ORGANIZER)
    assert [c["action"] for c in changes] == ["add", "replace"]
    assert changes[1]["old_evaluator"] != changes[1]["new_evaluator"]
    assert changes[1]["old_evaluator"] == changes[0]["new_evaluator"]


# -- 5. the quota holds against processes racing ---------------------------------------------------------------
def test_eight_processes_submitting_at_once_count_once(cli, tiny_task, nsml_folder, state_root):
    name = run_session(cli, nsml_folder, "-a", "--epochs 8")
    env = {**os.environ, "HARNESS_HOME": str(state_root), "HARNESS_USER": "alice"}
    procs = [subprocess.Popen([sys.executable, "-m", "harness", "submit", name, str(i), "-j"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes.count(0) == 1 and codes.count(2) == 7, (codes, outs)
    assert sum("submit quota reached" in err for _out, err in outs) == 7
    counted = [h for h in cli.json("history", "tiny") if not h["dry_run"]]
    assert len(counted) == 1 and counted[0]["status"] == "succeeded"


# -- 7. disk is measured -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("attack,setting", [("fill_disk", "checkpoint_bytes"), ("fill_code", "scratch_bytes"),
                                            ("fill_code_fail", "scratch_bytes")])
def test_disk_written_behind_the_harness_is_counted(cli, runtime, hostile, guarded, state_root, attack,
                                                    setting):
    (state_root / "harness.toml").write_text(f"[limits]\n{setting} = 50000000\n")
    name = _attack(cli, hostile, attack, "120" if attack == "fill_disk" else "80", code=1)
    info = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert info["status"] == "failed" and info["reason"] == "disk_quota", info
    assert f"limits.{setting}" in info["message"]


# -- 9. organizer files are never writable -------------------------------------------------------------------
def test_data_view_is_read_only_and_holds_no_labels(cli, runtime, hostile, guarded):
    name = _attack(cli, hostile, "write_data")
    log = cli("logs", name).stdout
    assert "wrote" not in log and log.count("refused") == 2, log
    assert "labels visible: False" in log


def test_unsandboxed_process_runtime_copies_the_data_and_says_it_is_not_isolated(cli, hostile, guarded,
                                                                                    state_root):
    (state_root / "harness.toml").write_text('[process]\nsandbox = "none"\n')
    name = _attack(cli, hostile, "write_data")  # may write its own copy; the guard checks the organizer's
    assert [r for r in cli.json("ps", "-a") if r["name"] == name][0]["isolation"] in ("none", "none+cgroup")
    r = cli("submit", "-t", name, "0")
    assert "not isolated" in r.stderr


def test_an_unconfined_session_says_so_while_it_runs_in_a_narrow_terminal(cli, tiny_task, tmp_path, state_root,
                                                                          monkeypatch):
    (state_root / "harness.toml").write_text('[process]\nsandbox = "none"\n')
    code = participant(tmp_path / "idle", "import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    name = run_session(cli, code, wait=False)
    deadline = time.monotonic() + 30
    while "ready" not in cli("logs", name).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    row = [r for r in cli.json("ps") if r["name"] == name][0]
    assert row["status"] == "running" and row["isolation"] in ("none", "none+cgroup")  # from its start
    monkeypatch.setenv("COLUMNS", "80")
    assert "[not isolated]" in cli("ps").stdout  # the Memo column that says it is never left out
    cli("stop", name)


def test_sandboxed_runs_have_no_network(cli, hostile, guarded):
    if not sandbox.works():
        pytest.skip("bubblewrap is not installed")
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        name = _attack(cli, hostile, "network", str(port))
    finally:
        server.close()
    log = cli("logs", name).stdout
    assert "NETWORK REACHED" not in log and "network refused" in log
    assert [r for r in cli.json("ps", "-a") if r["name"] == name][0]["isolation"] in ("bwrap", "bwrap+cgroup")


# -- 10. snapshots ------------------------------------------------------------------------------------------------
def test_snapshot_refuses_links_out_fifos_and_devices_and_leaves_nothing(cli, tiny_task, nsml_folder, state_root):
    sessions = state_root / ".harness" / "sessions"
    (nsml_folder / "zero").symlink_to("/dev/zero")
    r = cli("run", "-d", "tiny", nsml_folder, code=2)
    assert "zero: a symbolic link out of the folder" in r.stderr and "Traceback" not in r.output
    (nsml_folder / "zero").unlink()
    (nsml_folder / "dangling").symlink_to(nsml_folder / "nope")
    assert "dangling" in cli("run", "-d", "tiny", nsml_folder, code=2).stderr
    (nsml_folder / "dangling").unlink()
    os.mkfifo(nsml_folder / "pipe")
    assert "pipe: a FIFO, socket or device" in cli("run", "-d", "tiny", nsml_folder, code=2).stderr
    (nsml_folder / "pipe").unlink()
    assert not any(p.name.isdigit() for p in sessions.rglob("*")), "a refused snapshot left a folder"
    # links inside the folder are kept as links
    (nsml_folder / "sub").mkdir()
    (nsml_folder / "sub" / "x.txt").write_text("x")
    (nsml_folder / "alias").symlink_to("sub")
    (nsml_folder / "x-link.txt").symlink_to("sub/x.txt")
    name = run_session(cli, nsml_folder, "-a", "--epochs 1")
    code = sessions / name.split("/", 1)[0] / "tiny" / name.rsplit("/", 1)[1] / "code"
    assert (code / "alias").is_symlink() and os.readlink(code / "x-link.txt") == "sub/x.txt"


def test_snapshot_size_is_capped_while_copying(cli, tiny_task, nsml_folder, state_root):
    (state_root / "harness.toml").write_text("[limits]\ncode_bytes = 100000\n")
    (nsml_folder / "big.bin").write_bytes(b"\0" * 200_000)
    r = cli("run", "-d", "tiny", nsml_folder, code=2)
    assert "limits.code_bytes" in r.stderr and "big.bin" in r.stderr
    assert not any(p.name.isdigit() for p in (state_root / ".harness" / "sessions").rglob("*"))


def test_corrupt_database_is_named_in_one_line(cli, state_root):
    (state_root / "leaderboard.db").write_bytes(b"not a database at all" * 100)
    r = cli("ps", code=3)
    assert "leaderboard.db is corrupt or not a database" in r.stderr and "Traceback" not in r.output


# -- 6. nothing a participant writes runs at image build time -------------------------------------------------
@pytest.mark.parametrize("line", ["pkg @ http://127.0.0.1:9/pkg.tar.gz", "git+https://example.invalid/x.git",
                                  "-e .", "--index-url http://127.0.0.1:9/simple", "-f /tmp/wheels", "./local",
                                  "/abs/path.whl", "pkg.whl", "--extra-index-url=http://x", "-r other.txt",
                                  "file:///tmp/x.tar.gz", "numpy>=1 --install-option=--x"])
def test_requirement_lines_that_fetch_or_run_code_are_refused(line, tmp_path):
    from harness.runtime.images import ImageError, requirements
    (tmp_path / "requirements.txt").write_text(f"numpy==1.26.4\n{line}\n")
    with pytest.raises(ImageError) as exc:
        requirements(tmp_path)
    assert "requirements.txt:2" in str(exc.value)


def test_plain_requirement_lines_and_apt_names_pass(tmp_path):
    from harness.runtime.images import ImageError, requirements
    (tmp_path / "requirements.txt").write_text(textwrap.dedent("""\
        #nsml: local/bookworm-py
        numpy==1.26.4  # pinned
        transformers[torch]>=4.40,<5; python_version >= "3.8"

        tokenizers
    """))
    (tmp_path / "nsml_package.txt").write_text("libgl1\nfonts-nanum\n")
    files = requirements(tmp_path)
    assert "numpy==1.26.4" in files["requirements.txt"] and "tokenizers" in files["requirements.txt"]
    (tmp_path / "nsml_package.txt").write_text("libgl1 ; curl http://x | sh\n")
    with pytest.raises(ImageError, match="nsml_package.txt:1"):
        requirements(tmp_path)


@pytest.mark.docker
def test_a_url_requirement_never_reaches_a_build(cli, docker_ready, monkeypatch, tiny_task, nsml_folder):
    """The attack on main: `pkg @ http://127.0.0.1:PORT/...` ran the package's build backend as root on the host's
    network. Now the launch fails with one line naming the file and line, and nothing connects to the server."""
    import socket
    monkeypatch.setenv("HARNESS_RUNTIME", "docker")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    (nsml_folder / "requirements.txt").write_text(f"numpy\npkg @ http://127.0.0.1:{port}/pkg.tar.gz\n")
    try:
        name = run_session(cli, nsml_folder, "-a", "--epochs 1", code=1)
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
    info = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert info["reason"] == "launch_error" and "requirements.txt:2" in info["message"], info


def test_a_participant_runs_where_the_organizer_said(cli, tiny_task, nsml_folder, state_root):
    """Where participants' code runs is the organizer's choice: --runtime names only `runtime` or
    `runtime_choices` (the service's one gate: the same for a flag here and `options` over HTTP, next test)."""
    (state_root / "harness.toml").write_text(f'organizers = ["{ORGANIZER}"]\n[runtimes]\nother = "faults:FAKE"\n')
    r = cli("run", "-d", "tiny", "-e", "main.py", "--runtime", "other", nsml_folder, code=None)
    assert r.exit_code != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "--runtime other: participants' code runs under 'process' here" in r.stderr and "runtime_choices" in r.stderr
    assert cli.json("ps", "-a") == []  # nothing queued
    name = run_session(cli, nsml_folder, "--runtime", "process")  # the organizer's own choice, named
    r = cli("submit", "-t", "--runtime", "other", name, "0", code=None)
    assert r.exit_code != 0 and "--runtime other" in r.stderr, r.stderr


@pytest.fixture
def served_without_bwrap(state_root, monkeypatch):
    from helpers import RemoteCli, Served
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent / "no_bwrap"))
    server = Served(state_root)
    yield RemoteCli(server.url)
    server.stop()


def test_over_http_a_run_that_cannot_be_confined_is_refused(served_without_bwrap, tiny_task, nsml_folder):
    """A server whose machine cannot run bubblewrap (`[process] sandbox = "auto"`): a participant's run is refused,
    not run unconfined where it could read the labels; the organizer's own goes (their choice, said so)."""
    remote = served_without_bwrap
    r = remote("run", "-d", "tiny", "-e", "main.py", nsml_folder, code=None)
    assert r.exit_code != 0 and "cannot confine participants' code" in r.stderr, r.stderr
    assert remote.json("ps", "-a") == []
    r = remote("run", "-d", "tiny", "-e", "main.py", "--runtime", "docker", nsml_folder, code=None)
    assert r.exit_code != 0 and "--runtime docker: participants' code runs under 'process'" in r.stderr, r.stderr
    name = remote("run", "-d", "tiny", "-e", "main.py", nsml_folder, user=ORGANIZER).stdout.split()[1]
    assert name.startswith(f"{ORGANIZER}/tiny/")


def test_the_runtime_rule(monkeypatch):
    from dataclasses import replace

    from harness.core.errors import PermissionDenied
    from harness.core.settings import load_settings
    from harness.runtime import sandbox
    from harness.service.permissions import check_confined, check_runtime
    settings = replace(load_settings(), user="alice", organizers=["org"], runtime="process",
                       runtime_choices=["docker"])
    check_runtime(settings, None)
    check_runtime(settings, "docker")
    with pytest.raises(PermissionDenied, match="'process' or 'docker'"):
        check_runtime(settings, "fault")
    check_runtime(replace(settings, user="org"), "fault")
    auto = replace(settings, runtime="auto", runtime_choices=[])
    monkeypatch.setattr("harness.service.permissions._auto", lambda: "docker")
    check_runtime(auto, "docker")  # what auto picks here may be named
    with pytest.raises(PermissionDenied):
        check_runtime(auto, "process")
    monkeypatch.setattr(sandbox, "works", lambda: False)
    check_confined(settings, "process")  # at this machine: `auto` runs it unconfined, and says so
    with pytest.raises(PermissionDenied, match="cannot confine"):
        check_confined(replace(settings, remote=True), "process")
    check_confined(replace(settings, remote=True), "docker")
    check_confined(replace(settings, remote=True, process_sandbox="none"), "process")  # the organizer's word
    check_confined(replace(settings, remote=True, user="org"), "process")


def test_a_run_asked_for_over_http_starts_confined_or_not_at_all(state_root, tiny_task, nsml_folder, monkeypatch):
    """The gate at the request (above) is the early answer; the runtime holds the rule itself at launch. A
    participant's run queued over HTTP while bubblewrap worked, launched by a scheduler (or a Ray node) where it
    no longer does, fails as the harness's fault (counted against no quota), never runs unconfined. The same run
    asked for at this machine (an organizer's choice of `auto`) still runs unconfined."""
    from dataclasses import replace

    from sqlalchemy import select

    from harness.core.settings import load_settings
    from harness.scheduler.loop import Scheduler
    from harness.service import sessions, submits
    from harness.service.local import LocalApi
    from harness.state.root import Harness
    from harness.store.models import Checkpoint, Run
    monkeypatch.setattr(sessions, "wake", lambda settings: None)  # (this test's own scheduler starts them)
    local = Harness(load_settings())
    remote = Harness(replace(local.settings, remote=True), store=local.store)
    asked = [api.start_session("tiny", nsml_folder, "main.py", "", None, {}, None)
             for api in (LocalApi(remote), LocalApi(local))]
    monkeypatch.setattr(sandbox, "works", lambda: False)
    scheduler = Scheduler(local.settings, local.store)
    try:
        scheduler.recover()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            scheduler.tick()
            with local.tx() as db:
                runs = {s: db.get(Run, local.session(db, s).run_id) for s in asked}
                ended = {s: (r.status.value, r.reason and r.reason.value, r.message, r.spec) for s, r in runs.items()
                         if r.status.value in ("succeeded", "failed")}
            if len(ended) == 2:
                break
            time.sleep(0.2)
    finally:
        scheduler.shutdown()
    status, reason, message, spec = ended[asked[0]]
    assert (status, reason) == ("failed", "harness_error") and "cannot confine participants' code" in message
    assert spec.get("confine") is True
    status, reason, message, spec = ended[asked[1]]
    assert status == "succeeded" and "confine" not in spec, (reason, message)
    assert spec["isolation"].startswith("none")
    monkeypatch.setattr(sandbox, "works", lambda: True)  # a submit over HTTP is marked the same way
    with local.tx() as db:
        checkpoint = db.scalar(select(Checkpoint.name).where(Checkpoint.session_id == local.session(db, asked[1]).id))
    _, run_id = submits.start_submit(remote, asked[1], checkpoint, dry_run=True, entry="main.py")
    with local.tx() as db:
        assert db.get(Run, run_id).spec == {"confine": True, "entry": "main.py"}


def test_where_a_task_lies_on_the_servers_disk_is_for_organizers(cli, tiny_task):
    """`dataset ls` (GET /tasks, the dashboard's task list) names the task's folder to organizers only; everyone
    reads its README through task_readme (attacker review)."""
    mine = {r["name"]: r for r in cli.json("dataset", "ls")}
    assert "tiny" in mine and not any(k in row for row in mine.values() for k in ("path", "source")), mine
    theirs = {r["name"]: r for r in cli.json("dataset", "ls", user=ORGANIZER)}
    assert Path(theirs["tiny"]["path"]).is_dir() and theirs["tiny"]["source"]
    from harness.service.local import LocalApi
    from harness.state.root import Harness
    (Path(theirs["tiny"]["path"]) / "README.md").write_text("# Tiny\n\nPredict the **labels**.\n")
    assert "Predict the **labels**." in LocalApi(Harness()).task_readme("tiny")


def test_cancelling_runs_that_ignore_sigterm_never_holds_the_scheduler(state_root, tmp_path):
    """A participant who stops all their runs at once (or lets them all reach their time limit), each ignoring
    SIGTERM, held the scheduler's thread for their kill grace each, while every user waited (attacker review).
    A cancel signals and returns; what is left gets SIGKILL at the first poll past the grace."""
    import signal
    from dataclasses import replace

    import psutil

    from harness.core.settings import load_settings
    from harness.runtime.base import Mount, RunPaths, RunSpec
    from harness.runtime.process import ProcessRuntime
    runtime, handles = ProcessRuntime(replace(load_settings(), process_sandbox="none")), []  # (bwrap would end
    #                                                                       on SIGTERM, and take its children along)
    for i in range(4):
        app = tmp_path / f"app{i}"
        app.mkdir()
        (tmp_path / f"run{i}").mkdir()
        (app / "main.py").write_text("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                     "print('ready', flush=True)\ntime.sleep(600)\n")
        handles.append(runtime.start(RunSpec(run_id=i + 1, name=f"alice/t/{i + 1}", argv=["main.py"], workdir=app,
                                             paths=RunPaths(run=tmp_path / f"run{i}", log=tmp_path / f"log{i}"),
                                             time_limit=600, kill_grace=2.0, mounts=[Mount(app, "/app", False)])))
    try:
        deadline = time.monotonic() + 60
        while not all("ready" in (tmp_path / f"log{i}").read_text() for i in range(4)
                      if (tmp_path / f"log{i}").exists()) or len(list(tmp_path.glob("log*"))) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        trees = [h._tree() for h in handles]
        started = time.monotonic()
        for handle in handles:
            handle.cancel()
        assert time.monotonic() - started < 1.0  # (was 4 × the grace: 8 s and more)
        assert all(p.is_running() for tree in trees for p in tree)  # signalled, ignoring it, still there
        outcomes = [h.wait(30) for h in handles]
        assert all(o is not None and o.status.value == "stopped" and o.exit_code == -signal.SIGKILL
                   for o in outcomes), outcomes
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for tree in trees for p in tree)
    finally:
        for handle in handles:
            handle.cancel()
            handle.wait(30)
            handle.close()


def test_an_organizers_fork_of_a_participants_code_and_its_submits_run_confined_or_not_at_all(tiny_task, nsml_folder,
                                                                                            monkeypatch):
    """A participant's run over HTTP is confined or not run (spec "confine"); an organizer's fork of it ran the
    same participant code under the organizer's demand, none (the hostile review of stop 48). The demand is the
    code's: a fork keeps it, whoever forks."""
    from dataclasses import replace

    from helpers import ORGANIZER

    from harness.core.settings import load_settings
    from harness.service import sessions, submits
    from harness.service.local import LocalApi
    from harness.state.root import Harness
    from harness.store.models import Checkpoint, Run
    monkeypatch.setattr(sessions, "wake", lambda settings: None)  # (nothing needs to run)
    monkeypatch.setattr(submits, "wake", lambda settings: None)
    local = Harness(load_settings())
    remote = Harness(replace(local.settings, remote=True), store=local.store)
    parent = LocalApi(remote).start_session("tiny", nsml_folder, "main.py", "", None, {}, None)
    with local.tx() as db:
        sess = local.session(db, parent)
        db.add(Checkpoint(session_id=sess.id, name="0"))
        Path(sess.checkpoint_dir, "0").mkdir(parents=True)
    organizer = Harness(replace(local.settings, user=ORGANIZER, remote=True), store=local.store)
    assert organizer.settings.is_organizer and not organizer.settings.must_confine
    forks = [sessions.fork_session(h, parent, "0") for h in (organizer, remote)]
    with local.tx() as db:
        assert [db.get(Run, local.session(db, f).run_id).spec.get("confine") for f in forks] == [True, True]
        sess = local.session(db, forks[0])  # and the organizer's submit of their fork (review of the change)
        db.add(Checkpoint(session_id=sess.id, name="0"))
        Path(sess.checkpoint_dir, "0").mkdir(parents=True)
    _, run_id = submits.start_submit(organizer, forks[0], "0", dry_run=True)
    with local.tx() as db:
        assert db.get(Run, run_id).spec.get("confine") is True
