"""The core loop through the CLI: an NSML-style folder runs unchanged → model ls → submit → ranked."""
import time

import pytest
from helpers import ORGANIZER, run_session


@pytest.fixture
def cli(either_cli):
    """Every test here runs locally and through `harness serve` (same assertions, same outputs)."""
    return either_cli


def test_nsml_folder_runs_unchanged(cli, tiny_task, nsml_folder, state_root):
    name = run_session(cli, nsml_folder, "-a", "--epochs 3")
    assert name == "alice/tiny/1"
    log = cli("logs", name).stdout
    assert "train files: ['train']" in log  # the training view holds train/ only
    assert "done training" in log

    ckpts = cli.json("model", "ls", name)
    assert [c["checkpoint"] for c in ckpts] == ["0", "1", "2"]
    assert ckpts[-1]["summary"]["train/loss"] == 1.0 / 3
    assert all(c["size"] > 0 for c in ckpts)

    out = cli("submit", name, "2").stdout.splitlines()
    assert out == ["Score: 1.0", "Done"]
    board = cli.json("dataset", "board", "tiny")
    assert board == [{"rank": 1, "user": "alice", "score": 1.0, "session": name, "checkpoint": "2",
                      "submits": 1, "last_submit": board[0]["last_submit"], "submission": 1, "baseline": False,
                      "interval": None, "tie": None, "beats_next": None,  # its task.toml has no [split] to read by
                      "interval_note": "no interval: the task's task.toml has no [split] to read its files by"}]
    assert cli.json("board", "tiny") == board  # alias


def test_ps_shows_summary_and_filters(cli, tiny_task, nsml_folder):
    name = run_session(cli, nsml_folder, "-m", "first try")
    assert cli.json("ps") == []  # ended sessions only with -a
    rows = cli.json("ps", "-a")
    assert rows[0]["name"] == name and rows[0]["status"] == "succeeded" and rows[0]["memo"] == "first try"
    assert rows[0]["summary"] == {"epoch": 1, "train/loss": 0.5}
    run_session(cli, nsml_folder)
    assert len(cli.json("ps", "-a", "-n", "1")) == 1
    assert len(cli.json("ps", "-a", "-d", "tiny")) == 2
    table = cli("ps", "-a").stdout
    assert "alice/tiny/1" in table and "train/loss" in table


def test_dry_run_is_scored_not_ranked_not_counted(cli, tiny_task, nsml_folder):
    name = run_session(cli, nsml_folder)
    # test_submit has 2 rows: 10 → 0 and 90 → 1
    assert cli("submit", "-t", name, "1").stdout.splitlines() == ["Score: 1.0", "Done"]
    assert cli("submit", "--test", name, "1").stdout.startswith("Score:")  # not counted: no quota error
    assert cli.json("board", "tiny") == []
    cli("submit", name, "1")  # the one counted submit of this hour
    assert len(cli.json("board", "tiny")) == 1
    history = cli.json("history", "tiny")
    assert [h["dry_run"] for h in history] == [False, True, True]


def test_submit_run_never_sees_labels_or_training_data(cli, tiny_task, nsml_folder, state_root):
    name = run_session(cli, nsml_folder, "-a", "--peek 1")
    result = cli.json("submit", name, "1")
    assert result["status"] == "succeeded" and "log" not in result  # infer logs: organizers only
    hidden = cli("logs", "--submission", result["id"])
    assert hidden.stdout == "" and "shown to organizers only" in hidden.stderr
    (state_root / "harness.toml").write_text('organizers = ["alice"]\n')
    log = cli("logs", "--submission", result["id"]).stdout
    assert "label visible: False" in log


def test_memo_and_rm(cli, tiny_task, nsml_folder, state_root):
    a = run_session(cli, nsml_folder)
    b = run_session(cli, nsml_folder)
    cli("memo", a, "keep me")
    assert cli.json("ps", "-a")[-1]["memo"] == "keep me"
    cli("submit", b, "1")
    out = cli("rm", "alice/tiny/?", "-y").stdout
    assert "alice/tiny/1 is removed" in out and "alice/tiny/2 is removed" in out
    assert cli.json("ps", "-a") == []
    assert not (state_root / ".harness" / "sessions" / "alice" / "tiny" / "1").exists()
    assert cli.json("board", "tiny")[0]["session"] == b  # a removed session's submission stays ranked


def test_rm_waits_for_the_runs_it_stopped_once_in_all(cli, tiny_task, nsml_folder, monkeypatch):
    """The runs `rm` stops end together: it waits STOP_WAIT in all for them, never STOP_WAIT for each in turn (a
    request over HTTP would hold a worker that long)."""
    from harness.service import sessions
    from harness.state import Harness
    names = [run_session(cli, nsml_folder) for _ in range(3)]
    waits = []

    def slow_wait(h, run_id, timeout):  # a run that does not end: its whole timeout passes
        waits.append(timeout)
        time.sleep(timeout)
    monkeypatch.setattr(sessions, "STOP_WAIT", 0.6)
    monkeypatch.setattr(sessions, "wait_run", slow_wait)
    start = time.monotonic()
    assert sorted(sessions.remove_sessions(Harness(), "alice/tiny/*")) == sorted(names)
    assert len(waits) == 3 and sum(waits) <= 0.61 and time.monotonic() - start < 5


def test_model_rm_and_pull(cli, tiny_task, nsml_folder, tmp_path):
    name = run_session(cli, nsml_folder, "-a", "--epochs 3")
    target = tmp_path / "pulled"
    cli("model", "pull", name, "1", target)
    assert (target / "model" / "model.json").exists()
    cli("model", "pull", name, "1", target)  # into the folder that is there now, like `cp -r`
    assert (target / f"{name.replace('/', '_')}_1" / "model" / "model.json").exists()
    assert "already exists" in cli("model", "pull", name, "1", target, code=2).stderr
    cli("model", "rm", name, "0")
    assert [c["checkpoint"] for c in cli.json("model", "ls", name)] == ["1", "2"]
    cli("model", "rm", name, "*")
    assert cli.json("model", "ls", name) == []
    r = cli("submit", name, "1", code=2)
    assert "has no checkpoint '1'" in r.stderr


def test_fork_loads_checkpoint_and_keeps_training(cli, tiny_task, nsml_folder):
    parent = run_session(cli, nsml_folder, "-a", "--epochs 2 --threshold 40")
    child = cli("fork", parent, "-c", "1").stdout.split()[1]
    assert child == "alice/tiny/2"
    cli("logs", "-f", child)
    log = cli("logs", child).stdout
    assert "loaded" in log and "'threshold': 40" in log  # parent's state, parent's args
    assert "'epochs_done': 4" in log  # two from the parent's checkpoint, two more after paused() returned
    assert cli.json("ps", "-a")[0]["forked_from"] == parent
    assert len(cli.json("model", "ls", child)) == 2


def test_dataset_ls_lists_builtins_and_registered(cli, tiny_task):
    """The built-ins not prepared yet are listed to organizers (who prepare them), not to participants."""
    rows = {r["name"]: r for r in cli.json("dataset", "ls", user=ORGANIZER)}
    assert rows["tiny"]["prepared"] is True and rows["tiny"]["direction"] == "higher"
    assert "garbage-docs" in rows and rows["garbage-docs"]["prepared"] is False
    assert [r["name"] for r in cli.json("dataset", "ls")] == ["tiny"]
