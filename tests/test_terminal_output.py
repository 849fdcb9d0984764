"""What people read in a terminal: tables that fit 100 columns (times shortened, optional columns left out
before anything folds), yes/no, one score format, contest columns only for contest tasks, a success line at the
end of `logs -f`, `--help` grouped by who runs a command with examples and no cut descriptions, a qualify rule
in words, a piped login token without a getpass warning."""
import subprocess
import sys

from helpers import run_session

from harness.cli.output import draw, fmt, table
from harness.core.display import rule_text, score_text, time_text


def test_a_wide_table_shortens_times_then_leaves_out_optional_columns_before_folding(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    rows = [{"name": f"alice/tiny/{i}", "created": "2026-12-03 11:20:33", "status": "succeeded",
             "reason": "", "res": "1 / gpu 0,1", "summary": "valid/acc=0.812345 loss=0.301",
             "memo": "a long memo that says what this run tried and why it was worth a try"} for i in range(3)]
    cols = [("name", "Name"), ("created", "Created"), ("status", "Status"), ("reason", "Reason"),
            ("res", "CPUs/GPUs"), ("summary", "Summary"), ("memo", "Memo")]
    table(rows, cols, optional=("memo", "created"))
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "Memo" not in out and "left out to fit 100 columns: Memo" in err
    assert "12-03 11:20" in out and "2026-12-03 11:20:33" not in out  # the time is shorter, not folded
    assert len(lines) == 3 + 3 + 1  # header box, one line per row (nothing folded), bottom
    assert "valid/acc=0.812345 loss=0.301" in out

    monkeypatch.setenv("COLUMNS", "200")  # nothing to leave out or shorten at 200 columns
    table(rows[:1], cols, optional=("memo", "created"))
    wide, err = capsys.readouterr()
    assert "a long memo that says" in wide and "2026-12-03 11:20:33" in wide and err == ""
    table([{**rows[0], "created": "2026-12-03T11:20:33.480151"}], cols)  # an ISO time reads the same
    assert "2026-12-03 11:20:33 " in capsys.readouterr().out


def test_one_score_format_yes_no_times_with_zone_and_rules_in_words():
    assert score_text(0.9333333333333333) == fmt(0.9333333333333333) == "0.933333"
    assert score_text(1.0) == "1.0" and score_text(12345.678912) == "12345.7" and score_text(None) == ""
    assert fmt(True) == "yes" and fmt(False) == "no"
    assert time_text("2026-12-03T11:20:33") == "2026-12-03 11:20 UTC"
    assert rule_text({"top": 2}) == "top 2 per task (private board)"
    assert "┃ A ┃" in draw(["A"], [["x"]], 100)


def test_history_logs_and_submit_read_as_people_expect(cli, tiny_task, nsml_folder, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    name = run_session(cli, nsml_folder, "-a", "--epochs 1 --threshold 45")
    ended = cli("logs", "-f", name)
    assert ended.stderr.strip().splitlines()[-1] == f"Session {name} succeeded"
    score = cli("submit", name, "0").stdout.splitlines()[0]
    assert score == "Score: 0.933333"  # 14 of 15: six significant digits, as in the tables
    cli("submit", "-t", name, "0")
    hist = cli("history", "tiny").stdout
    assert "True" not in hist and "False" not in hist and " yes " in hist and " no " in hist
    assert "Selected" not in hist and "Private" not in hist  # a task in no contest has no contest columns
    assert max(len(line) for line in hist.splitlines()) <= 100
    board = cli("board", "tiny").stdout
    assert "0.933333" in board


def test_help_groups_commands_by_who_runs_them_with_examples_and_whole_sentences(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = cli("--help").stdout
    p, o, op = out.index("Participant commands:"), out.index("Organizer commands:"), out.index("Operator commands:")
    assert p < o < op and out.index("  submit ") < o and o < out.index("  rescore ") < op < out.index("  serve ")
    assert "…" not in out and "..." not in out.split("Participant commands:")[1]
    assert "Examples:" in out and "nsml submit alice/garbage-docs/1 2" in out
    assert "Other commands:" not in out  # every command has its section
    assert "…" not in cli("contest", "--help").stdout


def test_a_piped_login_token_gives_no_getpass_warning(served, remote_cli, tmp_path):
    env = {"HARNESS_CONFIG_DIR": str(tmp_path / "config"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "harness", "login", served.url], input=remote_cli.token("alice") + "\n",
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and f"Logged in to {served.url} as alice" in r.stdout, r.stderr
    assert "Warning" not in r.stderr and "getpass" not in r.stderr.lower()
    empty = subprocess.run([sys.executable, "-m", "harness", "login", served.url], input="", capture_output=True,
                           text=True, env=env, timeout=120)
    assert empty.returncode == 2 and empty.stderr.strip() == ("Error: token: none given (type it at the prompt, or "
                                                              "pipe it with --token-stdin)")
