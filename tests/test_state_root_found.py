"""Which state root a command works on when none is given: the nearest of the current folder and the folders above
it that is one (`nsml run -d TASK .` from inside a code folder, as NSML was used); a folder that is none stays as it
was unless a command that starts a state root runs there; a state root's own files never travel as code."""
import os
import re
import socket
from pathlib import Path

from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant

from harness.cli import FOUNDING
from harness.runs.snapshot import snapshot_code

REPO = Path(__file__).resolve().parents[1]


def _no_root_given(monkeypatch):
    monkeypatch.delenv("HARNESS_HOME")


def test_a_command_in_a_folder_that_is_no_state_root_refuses_and_leaves_it_as_it_was(cli, tmp_path, monkeypatch):
    _no_root_given(monkeypatch)
    stray = tmp_path / "stray"
    stray.mkdir()
    monkeypatch.chdir(stray)
    for argv in (["ps", "-a"], ["board", "tiny"], ["run", "-d", "tiny", "."], ["logs", "alice/tiny/1"],
                 ["history", "tiny"], ["dataset", "ls"]):
        out = cli(*argv, code=2).output
        assert "no state root here" in out and str(stray) in out, (argv, out)
    assert str(stray) in cli("whoami").output and "no state root here yet" in cli("whoami").output
    assert list(stray.iterdir()) == []  # no leaderboard.db, no .harness, no socket


def test_a_command_in_a_code_folder_finds_the_state_root_above_it(cli, tmp_path, monkeypatch):
    _no_root_given(monkeypatch)
    org = tmp_path / "org"
    org.mkdir()
    make_tiny_task(tmp_path / "packs" / "tiny")
    monkeypatch.chdir(org)
    cli("dataset", "add", tmp_path / "packs" / "tiny", user=ORGANIZER)  # makes ./ a state root (FOUNDING)
    assert (org / "leaderboard.db").exists()
    modes = {p: (org / p).stat().st_mode & 0o777 for p in (".harness", "leaderboard.db")}
    assert modes == {".harness": 0o700, "leaderboard.db": 0o600}, modes  # this account's only
    entry = participant(org / "work" / "entry", NSML_MAIN)
    monkeypatch.chdir(entry)
    assert "Session alice/tiny/1 is started" in cli("run", "-d", "tiny", "-e", "main.py", ".").output
    assert "alice/tiny/1" in cli("ps", "-a").output
    assert sorted(p.name for p in entry.iterdir()) == ["main.py"]  # the code folder stays a code folder
    cli("stop", "alice/tiny/1")


def test_a_task_packs_own_folder_never_becomes_a_state_root(cli, tmp_path, monkeypatch):
    _no_root_given(monkeypatch)
    pack = make_tiny_task(tmp_path / "packs" / "tiny")
    before = sorted(p.name for p in pack.rglob("*"))
    monkeypatch.chdir(pack)
    for argv in (["dataset", "check", "."], ["dataset", "add", "."]):
        out = cli(*argv, user=ORGANIZER, code=2).output
        assert "is a task pack" in out and "from the folder above it" in out, (argv, out)
    monkeypatch.chdir(pack / "train")  # below it too: train/ is in every training run's view
    out = cli("dataset", "add", "..", user=ORGANIZER, code=2).output
    assert "is a task pack" in out and "below it" in out, out
    assert sorted(p.name for p in pack.rglob("*")) == before  # no leaderboard.db, no .harness inside the pack
    out = cli("--root", pack / "train" / "state", "dataset", "add", pack, user=ORGANIZER, code=2).output
    assert "is a task pack" in out and "below it" in out, out  # --root given: the same rule
    assert sorted(p.name for p in pack.rglob("*")) == before
    elsewhere = tmp_path / "elsewhere"  # train/ a link to a folder that holds the state root: the pack is refused
    (elsewhere / "state").mkdir(parents=True)
    (pack / "train").rename(tmp_path / "real-train")
    (pack / "train").symlink_to(elsewhere)
    out = cli("--root", elsewhere / "state", "dataset", "add", pack, user=ORGANIZER, code=2).output
    assert "is inside this pack" in out, out
    monkeypatch.chdir(pack.parent)
    assert "pass" in cli("dataset", "check", "tiny", user=ORGANIZER).output  # from the folder above, as README says


def test_the_snapshot_never_takes_a_state_roots_own_files(tmp_path):
    code = tmp_path / "code"
    (code / ".harness" / "sessions").mkdir(parents=True)
    (code / "main.py").write_text("print(1)\n")
    for name in ("leaderboard.db", "leaderboard.db-wal", "leaderboard.db-shm", "harness.toml"):
        (code / name).write_bytes(b"SQLite format 3\0")
    (code / ".harness" / "sessions" / "big").write_bytes(b"x" * 100)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(code / ".harness" / "service.sock"))  # a live service's socket: a refusal if copied
    try:
        assert snapshot_code(code, tmp_path / "copy") == 1
    finally:
        listener.close()
    assert sorted(os.listdir(tmp_path / "copy")) == ["main.py"]
    (code / "sub").mkdir()  # only the top folder's: a code folder's own sub/leaderboard.db is code like any file
    (code / "sub" / "leaderboard.db").write_text("mine")
    os.unlink(code / ".harness" / "service.sock")
    assert snapshot_code(code, tmp_path / "copy2") == 2


def test_the_readme_and_settings_doc_name_the_commands_that_start_a_state_root():
    for doc in (REPO / "README.md", REPO / "docs" / "operator" / "settings.md"):
        text = " ".join(doc.read_text().split())
        said = re.search(r"[Oo]nly (`[^.]*?`) make", text)
        assert said, doc
        named = set(re.findall(r"`([^`]+)`", said.group(1)))
        assert named == FOUNDING, (doc, named ^ FOUNDING)


def test_the_nearest_state_root_wins_and_a_given_root_is_always_taken(tmp_path, monkeypatch):
    from harness.core.settings import load_settings
    _no_root_given(monkeypatch)
    deep = tmp_path / "outer" / "inner" / "code" / "sub"
    deep.mkdir(parents=True)
    (tmp_path / "outer" / "leaderboard.db").write_bytes(b"")
    (tmp_path / "outer" / "inner" / "harness.toml").write_text("")
    monkeypatch.chdir(deep)
    found = load_settings()
    assert found.root == (tmp_path / "outer" / "inner").resolve() and found.root_found
    monkeypatch.chdir(tmp_path)
    assert load_settings().root == tmp_path.resolve() and not load_settings().root_found
    assert load_settings(root=tmp_path / "new").root_found  # --root or HARNESS_HOME: the caller chose it
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "new"))
    assert load_settings().root_found and load_settings().root == (tmp_path / "new").resolve()


def test_a_state_root_above_that_belongs_to_another_account_is_refused(tmp_path, monkeypatch):
    """As git refuses a repository of another owner: a harness.toml planted in a shared folder above (/tmp) must
    not choose this account's store, runtime and organizers."""
    import harness.core.state_root as state_root
    from harness.core.errors import UserError
    from harness.core.settings import load_settings
    _no_root_given(monkeypatch)
    (tmp_path / "harness.toml").write_text('organizers = ["mallory"]\n')
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path / "mine")
    assert load_settings().root == tmp_path.resolve()  # this account's own, above: found
    other = os.geteuid() + 1
    monkeypatch.setattr(state_root.os, "geteuid", lambda: other)  # the same files, another account's
    try:
        load_settings()
        raise AssertionError("another account's state root was taken")
    except UserError as exc:
        assert "belongs to another account" in str(exc) and f"--root {tmp_path.resolve()}" in str(exc)
    monkeypatch.chdir(tmp_path)
    try:  # the folder you are in too, as git does
        load_settings()
        raise AssertionError("another account's state root was taken")
    except UserError as exc:
        assert "belongs to another account" in str(exc)


def test_a_command_that_starts_a_state_root_does_so_under_python_m_too(tmp_path, monkeypatch):
    import subprocess
    import sys
    pack = make_tiny_task(tmp_path / "packs" / "tiny")
    (tmp_path / "org").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_HOME", "HARNESS_USER")}
    r = subprocess.run([sys.executable, "-m", "harness", "dataset", "add", str(pack)], cwd=tmp_path / "org",
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Task tiny is registered" in r.stdout, r.stderr
    assert (tmp_path / "org" / "leaderboard.db").exists()


def test_files_participant_code_wrote_never_make_a_state_root(cli, tmp_path, monkeypatch):
    """A run writes as the harness's own account, so ownership says nothing of its files: a harness.toml it saved
    in a checkpoint must not become the organizer's settings, whether read in the store or pulled out of it."""
    from harness.core.settings import load_settings
    _no_root_given(monkeypatch)
    org = tmp_path / "org"
    org.mkdir()
    monkeypatch.chdir(org)
    cli("dataset", "add", make_tiny_task(tmp_path / "packs" / "tiny"), user=ORGANIZER)
    planted = NSML_MAIN.replace("    def save(dir_name, *args, **kwargs):", '''    def save(dir_name, *args, **kwargs):
        os.makedirs(os.path.join(dir_name, "notes", ".harness"), exist_ok=True)
        for name in ("harness.toml", "notes/harness.toml"):
            with open(os.path.join(dir_name, name), "w") as fh:
                fh.write('organizers = ["mallory"]\\n[process]\\nsandbox = "none"\\n')
        open(os.path.join(dir_name, "notes", "leaderboard.db-wal"), "w").close()
        open(os.path.join(dir_name, "notes", "Harness.TOML"), "w").close()
        for folder in ("bare/objects", "bare/refs", ".g\u200cit"):  # a bare repository; a name HFS+ reads as .git
            os.makedirs(os.path.join(dir_name, folder), exist_ok=True)
        for name in ("bare/HEAD", "bare/config", ".g\u200cit/config"):
            open(os.path.join(dir_name, name), "w").close()
        os.makedirs(os.path.join(dir_name, ".git"), exist_ok=True)
        with open(os.path.join(dir_name, ".git", "config"), "w") as fh:
            fh.write("[core]\\n\\tfsmonitor = touch /tmp/pwned\\n")''')
    code = participant(tmp_path / "code", planted)
    name = cli("run", "-d", "tiny", code, user="mallory").stdout.split()[1]
    cli("logs", "-f", name, user="mallory")
    checkpoint = org / ".harness" / "sessions" / "mallory" / "tiny" / "1" / "checkpoints" / "0" / "model"
    assert (checkpoint / "notes" / "harness.toml").is_file()  # what the run wrote, in the store
    from harness.core.errors import UserError
    for inside in (checkpoint / "notes", checkpoint / "notes" / ".harness"):
        monkeypatch.chdir(inside)
        try:  # never the checkpoint's own harness.toml
            load_settings()
            raise AssertionError(f"a state root was found inside the state folder: {load_settings().root}")
        except UserError as exc:
            assert "is inside a state folder, where runs write; give --root DIR" in str(exc)
    moved = tmp_path / "bigdisk"  # the state folder on another disk, through a link: its path says nothing
    (org / ".harness").rename(moved)
    (org / ".harness").symlink_to(moved)
    monkeypatch.chdir(org / ".harness" / "sessions" / "mallory" / "tiny" / "1" / "checkpoints" / "0" / "model")
    assert ".harness" not in Path.cwd().parts
    try:
        load_settings()
        raise AssertionError("a state root was found inside the linked state folder")
    except UserError as exc:
        assert "is inside a state folder" in str(exc)
    monkeypatch.chdir(org)
    out = cli("model", "pull", name, "0", tmp_path / "review", user=ORGANIZER)
    pulled = sorted(str(p.relative_to(tmp_path / "review")) for p in (tmp_path / "review").rglob("*"))
    assert not [p for p in pulled if "harness" in p.lower() or "leaderboard" in p or ".git" in p or "it/" in p
                or "bare/" in p], pulled
    assert "model/notes/harness.toml left out" in out.stderr and "model/model.json" in pulled


def test_an_organizers_first_steps_in_a_fresh_folder_are_not_refused(cli, tmp_path, monkeypatch):
    """`dataset init` then its own suggested next step, `dataset check`, then `dataset add`: in a new folder."""
    _no_root_given(monkeypatch)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    assert "dataset check" in cli("dataset", "init", "mytask").stdout
    assert "no state root" not in cli("dataset", "check", "mytask", user=ORGANIZER).output
    assert "Task mytask is registered" in cli("dataset", "add", "mytask", user=ORGANIZER).stdout


def test_a_database_password_in_a_settings_file_others_can_read_is_refused(cli, state_root):
    """Other accounts on the machine could read the URL and open the store (every score, every token's hash)."""
    toml = state_root / "harness.toml"
    toml.write_text('db = "postgresql+psycopg://nsml:s3cret@127.0.0.1:1/nsml"\n')
    toml.chmod(0o644)
    said = cli("ps", code=2).stderr
    assert said.count("\n") == 1 and f"{toml}: db holds a password" in said and "(mode 0644)" in said, said
    assert f"chmod 600 {toml}" in said and "HARNESS_DB" in said and "s3cret" not in said
    for url in ("postgresql+psycopg://nsml@127.0.0.1:1/nsml?password=s3cret",
                "postgresql+psycopg://nsml:#s3cret@127.0.0.1:1/nsml",  # (SQLAlchemy reads these passwords, which
                "postgresql+psycopg://nsml:/s3cret@127.0.0.1:1/nsml"):  # urllib's reading of the URL does not see)
        toml.write_text(f'db = "{url}"\n')
        assert "db holds a password" in cli("ps", code=None).stderr, url
    toml.chmod(0o600)  # its owner's alone: taken (here it then fails to connect, on its own words)
    assert "db holds a password" not in cli("ps", code=None).output
    toml.write_text('db = "postgresql+psycopg://nsml@127.0.0.1:1/nsml"\n')  # no password (.pgpass): any mode
    toml.chmod(0o644)
    assert "db holds a password" not in cli("ps", code=None).output
    toml.write_text('db = "postgresql+psycopg://u:pw@[::1/db"\n')  # unreadable: no traceback, whatever the mode
    assert "Traceback" not in cli("ps", code=None).output


def test_the_password_rule_sees_every_password_sqlalchemy_reads():
    """core may not import SQLAlchemy (a fast CLI), so it reads URLs itself: never less than SQLAlchemy does."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from sqlalchemy.engine import make_url

    from harness.core.setting_values import has_password

    @settings(max_examples=3000, deadline=None, derandomize=True)
    @given(st.text(alphabet=":/@?#=&%[]abcpw.", max_size=16))
    def same(rest):
        url = "postgresql+psycopg://" + rest
        try:
            parsed = make_url(url)
        except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot read reaches no driver
            return
        if parsed.password or "password" in parsed.query:
            assert has_password(url), (url, parsed.password, dict(parsed.query))
    same()


def test_a_store_that_cannot_be_opened_is_one_line_without_its_password(cli, state_root, monkeypatch):
    """The review's URLs: a password in the query, one with '@' or ':' in it (the mistake that makes the URL
    unreadable, so the driver quotes a piece of it as a host or a port)."""
    from harness.core.setting_values import has_password
    assert has_password("postgresql://u@h/db?sslpassword=s3cret")
    for url in ("postgresql+nosuch://h/db?password=s3cret", "postgresql://u:pa@ss:s3cret@h/db",
                "postgresql+psycopg://u@127.0.0.1:1/db?password=s3cret&sslpassword=s3cret",
                "postgresql+psycopg://u:p@s3cret@127.0.0.1:1/db",
                "postgresql+psycopg://u:x7@s3cret/9zPw@127.0.0.1:1/db",  # (SQLAlchemy: host 's3cret', the rest a name)
                "postgresql+psycopg://u:x7@Kq9z,s3cret@127.0.0.1:1/db",  # (libpq: hosts split at ',')
                "postgresql+psycopg://u:Abc@De,s3cr%65t@127.0.0.1:1/db"):  # (percent-encoded)
        monkeypatch.setenv("HARNESS_DB", url)
        said = cli("ps", code=None).output
        assert "s3cret" not in said and "s3cr%65t" not in said and "Traceback" not in said, (url, said)
        assert said.strip().count("\n") == 0, said
        assert "127.0.0.1:1/db" in said or "h/db" in said, said  # (where it is: not what unlocks it)


def test_a_service_that_does_not_start_says_its_own_error_not_an_earlier_ones(state_root, monkeypatch):
    """The log is every start's: the words of this start are read, never an earlier one's last error."""
    import sys

    import pytest

    from harness.client.service import ServiceApi
    from harness.core.errors import UserError
    from harness.core.settings import load_settings
    (state_root / ".harness").mkdir(exist_ok=True)
    (state_root / ".harness" / "service.log").write_text("harness.core.errors.UserError: stale words of before\n")
    monkeypatch.setattr("harness.core.settings.python_module",
                        lambda _module: [sys.executable, "-I", "-m", "no_such_module_here"])
    with pytest.raises(UserError) as raised:
        ServiceApi(load_settings()).whoami()
    assert "no_such_module_here" in str(raised.value) and "stale" not in str(raised.value), str(raised.value)
