"""Trust II: the attacks of issue 22, each with its named outcome, with another user's session checksummed
before and after (nothing an attack does may change it or the task's files) and served while it runs.

1. a code upload whose link chain passes tarfile's filter — tests/test_server_uploads.py (`link-chain` and
   kin) and tests/test_archive_gate.py (the gate fuzzed);
2. a self-declared loader error — here: the claim is checked by the harness's own probe of the loader;
3. markup in report keys, memos, checkpoint names, log lines — tests/test_web_hostile.py (Chromium);
4. one report value that used to brick every pass — here, on SQLite and PostgreSQL;
5. fork bombs and memory outside RSS — here, on the sandboxed process runtime and docker;
6. limits above the task's, CSV formulas, token floods, long names — here and in the files named there.
"""
import json

import pytest
import test_trust
from helpers import NSML_MAIN, participant, run_session

runtime = test_trust.runtime  # the sandboxed process runtime, and docker
bob = test_trust.guarded  # another user's trained session; the task and bob's files checksummed before and after

MAIN = NSML_MAIN.replace('''    p.add_argument("--peek", type=int, default=0)''', '''    p.add_argument("--peek", type=int, default=0)
    p.add_argument("--attack", default="")''').replace('''    cfg = p.parse_args()''', '''    cfg = p.parse_args()
    import attacks
    attacks.run(cfg)''')

ATTACKS = r'''
import json, os, sys, time

def _line(text):
    with open(os.environ["NSML_EVENTS"], "a") as fh:
        fh.write(text + "\n")

def run(cfg):
    a = cfg.attack
    if a == "fake_loader_error" and cfg.mode == "test":
        data = os.path.join(os.environ["NSML_DATASET_PATH"], "test", "test_data")
        leaked = open(data).read()[:400]
        _line(json.dumps({"type": "loader_error", "message": "LEAK " + leaked}))
        print("LEAK " + leaked)
        raise SystemExit(86)
    if a == "bad_reports" and cfg.mode == "train":
        _line('{"type": "report", "metrics": {"loss": 1' + "0" * 400 + '}}')
        _line('{"type": "report", "metrics": {"x": NaN}}')
        _line('{"type": "report", "metrics": {"y": -Infinity}}')
        _line('{"type": "report", "metrics": {"<img src=x onerror=alert(1)>": 1}}')
        _line('{"type": "report", "metrics": {"s": "a string"}}')
        _line('{"type": "report", "metrics": {"deep": ' + "[" * 5000 + "]" * 5000 + '}}')
        _line('{"type": "verdict", "score": 1.0, "counted": false}')
        _line('{"type": "report", "summary": true, "step": 7, "metrics": {"good": 0.5}}')
        import nsml
        nsml.report(z=float("nan"))
        return  # and trains on
    if a == "fork_bomb" and cfg.mode == "train":
        n = 0
        while n < 5000:
            try:
                pid = os.fork()
            except OSError as exc:
                print("fork refused after", n, "processes:", exc.strerror, flush=True)
                break
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            n += 1
        print("held", n, "processes", flush=True)
        time.sleep(3)
        raise SystemExit(0)
    if a in ("tmpfs_memory", "memfd_memory") and cfg.mode == "train":
        block, held, files = b"x" * (1 << 20), 0, []
        if a == "memfd_memory":
            fd = os.memfd_create("hold")
            while held < 1200:
                held += os.write(fd, block) >> 20
        else:  # every tmpfs it can write: /dev/shm, the container's /tmp, the sandbox's own /
            for place in ("/dev/shm", "/tmp", "/"):
                try:
                    files.append(open(os.path.join(place, "hold.bin"), "wb", buffering=0))
                    while held < 1200:
                        held += files[-1].write(block) >> 20
                except OSError as exc:
                    print("full:", place, exc.strerror, flush=True)
        print(f"HELD {held} MiB", flush=True)
        time.sleep(5)
        raise SystemExit(0)
'''


def _run(cli, folder, *extra, user=None, code=0):
    out = cli("run", "-d", "tiny", "-e", "main.py", *extra, folder, user=user).stdout
    name = out.split()[1]
    cli("logs", "-f", name, user=user, code=code)
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request):
    if request.param == "postgresql":
        request.getfixturevalue("postgres")
    return request.param


@pytest.fixture
def hostile(tmp_path):
    folder = participant(tmp_path / "hostile", MAIN)
    (folder / "attacks.py").write_text(ATTACKS)
    return folder


def others_still_served(cli, nsml_folder, bob):
    """While or after an attack: another user's session, submit, ps and board all succeed."""
    other = _run(cli, nsml_folder, "-a", "--epochs 1", user="carol")
    assert cli.json("submit", other, "0", user="carol")["status"] == "succeeded"
    assert any(r["name"] == bob for r in cli.json("ps", "-a", user="bob"))
    assert any(r["user"] == "carol" for r in cli.json("board", "tiny", user="bob"))


def test_a_run_that_blames_the_loader_is_counted_and_never_echoed(cli, runtime, hostile, bob, nsml_folder):
    name = run_session(cli, hostile, "-a", "--epochs 1 --attack fake_loader_error")
    first = cli.json("submit", name, "0", code=1)
    assert first["reason"] == "exit_code" and first["counted"] is True, first  # the probe reached infer
    assert "LEAK" not in json.dumps(first)
    again = cli("submit", name, "0", code=None)  # the task allows 1 real submit an hour: this one is refused
    assert again.exit_code != 0 and "LEAK" not in again.output, again.output
    assert "quota" in again.output.lower() or "per hour" in again.output.lower(), again.output
    others_still_served(cli, nsml_folder, bob)


def test_reports_out_of_range_are_refused_by_name_and_every_pass_goes_on(cli, store, hostile, tiny_task,
                                                                          nsml_folder, state_root):
    name = run_session(cli, hostile, "-a", "--epochs 1 --attack bad_reports")
    log = cli("logs", name).stdout
    for words in ("'loss' is out of range", "'x' is not a finite number", "'y' is not a finite number",
                  "metric key '<img", "'s' is str", "not JSON", "type 'verdict'", "'z' is not a finite number"):
        assert words in log, (words, log)
    row = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert row["status"] == "succeeded" and row["summary"]["good"] == 0.5, row  # the valid report is kept
    assert not {"loss", "x", "y", "z", "s"} & set(row["summary"]), row
    other = _run(cli, nsml_folder, "-a", "--epochs 1", user="carol")
    assert cli.json("submit", other, "0", user="carol")["status"] == "succeeded"
    assert any(r["user"] == "carol" for r in cli.json("board", "tiny"))


def test_a_fork_bomb_meets_the_pids_limit_and_others_are_served(cli, runtime, hostile, bob, nsml_folder):
    name = run_session(cli, hostile, "-a", "--epochs 1 --attack fork_bomb")
    log = cli("logs", name).stdout
    held = int(log.split("held ")[1].split()[0])
    assert "fork refused after" in log and held < 600, log  # limits.pids = 512 by default
    others_still_served(cli, nsml_folder, bob)


@pytest.mark.parametrize("attack", ["tmpfs_memory", "memfd_memory"])
def test_memory_held_outside_rss_is_counted(cli, runtime, hostile, attack, tiny_task):
    name = run_session(cli, hostile, "--memory", "256M", "-a", f"--epochs 1 --attack {attack}", code=1)
    row = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert row["status"] == "failed" and row["reason"] == "oom", row
    assert "HELD" not in cli("logs", name).stdout  # killed while holding, never done


def test_a_participant_may_lower_but_never_raise_the_tasks_time_limit(cli, tiny_task, nsml_folder):
    r = cli("run", "-d", "tiny", "-e", "main.py", "--time-limit", "99999999", nsml_folder, code=2)
    assert "--time-limit" in r.stderr and "never raise" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    name = run_session(cli, nsml_folder, "--time-limit", "120", "-a", "--epochs 1")
    r = cli("submit", "--time-limit", "99999999", name, "0", code=2)
    assert "--time-limit" in r.stderr and "never raise" in r.stderr
    assert cli.json("submit", "--time-limit", "60", name, "0")["status"] == "succeeded"


def test_terminal_output_carries_no_escape_sequences_or_rich_markup(cli, tiny_task, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that ps keeps its Memo column
    folder = participant(tmp_path / "ansi", "print('before \\x1b]52;c;cHduZWQ=\\x07 \\x1b[2J\\x1b[31mred\\x1b[0m after')\n"
                         "print('progress 1\\rprogress 2')\n")
    name = run_session(cli, folder, "-m", "[link=https://evil.example]click[/link] [red]x[/red]")
    out = cli("logs", name).stdout
    assert "\x1b" not in out and "\x07" not in out and "before" in out and "red" in out and "after" in out
    assert "progress 1\rprogress 2" in out  # carriage returns kept for progress bars
    table = cli("ps", "-a").stdout
    assert "[red]" in table and "[link=" in table, table  # shown as typed, never read as rich markup
    for bad in ("line\nbreak", "esc\x1b[2J", "x" * 1001):
        r = cli("memo", name, bad, code=2)
        assert "MEMO" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("run", "-d", "tiny", "-e", "main.py", "-m", "a\x1bb", folder, code=2)
    assert "-m/--memo" in r.stderr
