"""`ps` and `board` read through stdlib sqlite3 when they safely can, and answer exactly as the library does."""
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers import NSML_MAIN, ORGANIZER, end_scheduler, make_tiny_task, participant, run_session

from harness.core.settings import load_settings
from harness.scoring.board_ties import mark_board
from harness.service.boards import board
from harness.service.sessions import list_sessions
from harness.state import Harness
from harness.store import read_sql
from harness.store.quick import QuickReader, code_head


@pytest.fixture
def tiny_task(tmp_path, cli):
    folder = make_tiny_task(tmp_path / "tiny-task", quota=0)
    cli("dataset", "add", folder, user=ORGANIZER)
    return folder


def _reader():
    return QuickReader.open(load_settings())


def _played(cli, tiny_task, tmp_path):
    code = participant(tmp_path / "code", NSML_MAIN)
    names = [run_session(cli, code, "-a", f"--epochs 3 --threshold {t}") for t in (40, 60)]
    for name in names:
        cli("submit", name, "1")
    live = cli("run", "-d", "tiny", "-m", "a memo", "-a", "--epochs 1 --sleep 60", code).stdout.split()[1]
    for _ in range(600):  # its code has started (and sleeps a minute): ps without -a shows it, and it holds still
        if "train files" in cli("logs", live).stdout:
            break
        time.sleep(0.05)
    return names, live


def test_quick_listings_equal_the_library(cli, tiny_task, tmp_path):
    _, live = _played(cli, tiny_task, tmp_path)
    h = Harness()
    reader = _reader()
    assert reader is not None
    with h.tx() as db:
        task = h.task(db, "tiny")
        uid = h.user(db).id
    for all_, last in ((True, None), (False, None), (True, 1)):
        assert read_sql.session_rows(reader.rows, uid, None, all_, last) == list_sessions(h, all_=all_, last=last)
    quick = read_sql.board_rows(reader.rows, task.id, task.direction)
    mark_board(quick, reader.rows, task.direction, "rank", "submission")  # as quick_reads.quick_board does
    assert quick == board(h, "tiny") and len(quick) == 1 and quick[0]["submits"] == 2
    assert cli.json("ps", "-a") == list_sessions(h, all_=True)
    assert [r["name"] for r in list_sessions(h)] == [live]
    cli("stop", live)


def test_the_quick_path_loads_no_sqlalchemy(cli, tiny_task, tmp_path):
    _, live = _played(cli, tiny_task, tmp_path)
    probe = ("import sys; from click.testing import CliRunner; from harness.cli import main; "
             "r = CliRunner().invoke(main, sys.argv[1:]); assert r.exit_code == 0, r.output; "
             "print('sqlalchemy' in sys.modules)")
    for args in (["ps", "-a"], ["board", "tiny"], ["board", "tiny", "-j"]):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
        assert out.stdout.strip().splitlines()[-1] == "False", (args, out.stdout, out.stderr)
    cli("stop", live)


def test_the_full_path_answers_when_it_must(cli, tiny_task, tmp_path, state_root):
    names, live = _played(cli, tiny_task, tmp_path)
    cli("stop", live)
    cli("logs", "-f", live, code=1)
    assert _reader() is not None
    db = state_root / "leaderboard.db"
    with sqlite3.connect(db) as c:  # a schema of another revision: the library (which migrates) must answer
        c.execute("UPDATE alembic_version SET version_num = '0004'")
    assert _reader() is None
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = ?", (code_head(),))
    assert _reader() is not None
    end_scheduler(state_root)
    with sqlite3.connect(db) as c:  # marked running, no scheduler alive: recovery is due
        c.execute("UPDATE runs SET status = 'running', pid = 999999 WHERE id = (SELECT run_id FROM sessions "
                  "WHERE name = ?)", (names[0],))
    assert _reader() is None
    row = next(r for r in cli.json("ps", "-a") if r["name"] == names[0])
    assert (row["status"], row["reason"]) == ("failed", "lost")  # the library recovered it, then listed it
    assert _reader() is not None


def test_unknown_task_errors_come_from_the_library(cli, tiny_task):
    for args in (("board", "tinyy"), ("ps", "-d", "tinyy")):
        out = cli(*args, code=2)
        assert "Did you mean 'tiny'" in out.output, out.output


def test_a_postgresql_url_never_takes_the_quick_path(monkeypatch):
    monkeypatch.setenv("HARNESS_DB", "postgresql://nobody@127.0.0.1:1/none")
    assert QuickReader.open(load_settings()) is None

