"""Disk a user's sessions keep outlives every run: one session's checkpoint limit alone would let a participant
fill the machine's disk session by session. `limits.user_storage_bytes` bounds all of a user's sessions together:
a new session is refused once they hold it (one line, naming the setting and what to remove), a running one that
takes them over it is cancelled as `disk_quota`, and removing sessions lets the user in again. Other users are
served throughout."""
import pytest
from helpers import participant, run_session

WRITER = '''
import argparse, os, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.add_argument("--mb", type=int)
p.add_argument("--hold", type=float, default=0); cfg = p.parse_args()
folder = os.path.join(os.environ["NSML_CHECKPOINT_DIR"], "raw")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "blob"), "wb") as fh:
    for _ in range(cfg.mb): fh.write(os.urandom(1 << 20))
print("wrote", cfg.mb, flush=True)
time.sleep(cfg.hold)
print("survived", flush=True)
'''


@pytest.fixture
def writer(tmp_path, state_root):
    (state_root / "harness.toml").write_text("[limits]\nuser_storage_bytes = 25000000\ncheckpoint_bytes = 50000000\n")
    return participant(tmp_path / "writer", WRITER)


def _row(cli, name, user="alice"):
    return [r for r in cli.json("ps", "-a", user=user) if r["name"] == name][0]


def test_a_users_sessions_together_stay_under_the_storage_limit(cli, tiny_task, writer):
    first = run_session(cli, writer, "-a", "--mb 15")
    assert _row(cli, first)["status"] == "succeeded"

    second = run_session(cli, writer, "-a", "--mb 15 --hold 40", code=1)  # 30 MiB together, over 25 MB
    row = _row(cli, second)
    assert (row["status"], row["reason"]) == ("failed", "disk_quota"), row
    assert "alice's sessions hold" in row["message"] and "limits.user_storage_bytes" in row["message"], row
    assert "survived" not in cli("logs", second).stdout

    refused = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--mb 1", writer, code=None)
    assert refused.exit_code != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "limits.user_storage_bytes" in refused.stderr and "nsml rm" in refused.stderr, refused.stderr
    refused = cli("fork", first, "-c", "0", code=None)  # (a fork is a new session too)
    assert refused.exit_code != 0 and "limits.user_storage_bytes" in refused.stderr

    bobs = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--mb 15", writer, user="bob").stdout.split()[1]
    cli("logs", "-f", bobs, user="bob")  # another user's storage is his own
    assert _row(cli, bobs, "bob")["status"] == "succeeded"

    cli("rm", second)
    third = run_session(cli, writer, "-a", "--mb 1")
    assert _row(cli, third)["status"] == "succeeded"


SCRATCH_WRITER = '''
import argparse, os
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); cfg = p.parse_args()
for folder in ("/tmp", "."):  # its private /tmp and its code copy
    with open(os.path.join(folder, "scratch.bin"), "wb") as fh:
        fh.write(os.urandom(8 << 20))
for top in ("/tmp", os.environ["NSML_CHECKPOINT_DIR"]):  # a chain too deep for a recursive removal, bytes below
    os.chdir(top)
    for _ in range(3000):
        os.mkdir("d"); os.chdir("d")
    open("below.bin", "wb").write(os.urandom(1 << 20))
print("wrote scratch", flush=True)
'''


def test_a_runs_scratch_goes_when_it_ends_and_its_log_stays(cli, tiny_task, tmp_path, state_root):
    """A run's code copy, /tmp and data view are its own only while it runs: kept, they would pile up run after
    run outside every limit (and outside `nsml rm`); a chain of folders too deep for a recursive removal goes too
    (attacker review)."""
    import time

    from harness.core.settings import load_settings
    name = run_session(cli, participant(tmp_path / "scratch", SCRATCH_WRITER), code=1)  # (too deep to measure)
    [run_dir] = list(load_settings().runs_dir.iterdir())  # (the one run of this state root)
    deadline = time.monotonic() + 30
    while any((run_dir / part).exists() for part in ("app", "tmp", "data", "sessions")):
        assert time.monotonic() < deadline, sorted(p.name for p in run_dir.iterdir())
        time.sleep(0.1)
    assert "wrote scratch" in cli("logs", name).stdout and (run_dir / "log.txt").is_file()
    row = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert row["reason"] == "disk_quota" and "deep" in row["message"], row
    cli("rm", name)  # its checkpoints hold the chain too: removed whole, without a traceback
    assert not list((state_root / ".harness" / "sessions").rglob("below.bin"))


LEFTOVERS = r'''
import argparse, os
import nsml
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
p.add_argument("--iteration", default="0"); p.add_argument("--fail", type=int, default=0); cfg = p.parse_args()

def blob(folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "blob"), "wb") as fh:
        fh.write(b"x" * (8 << 20))

def infer(path, **kw):
    blob(os.path.join(os.path.dirname(os.environ["NSML_OUTPUT_FILE"]), "keep"))
    if cfg.fail:
        raise SystemExit(3)
    return [0] * len(open(path).read().split())

nsml.bind(save=lambda d: open(os.path.join(d, "m"), "w").write("x"), load=lambda d: None, infer=infer)
if cfg.pause:
    nsml.paused(scope=locals())
if cfg.mode == "train":
    nsml.save(0)
    blob(os.path.join(os.path.dirname(os.environ["NSML_EVENTS"]), "keep"))
'''


def test_what_a_run_wrote_beside_its_events_and_prediction_goes_when_it_ends(cli, tiny_task, tmp_path, state_root):
    """The events folder (/nsml/run) and a submit's output folder (/nsml/output) are the run's to write, up to
    limits.scratch_bytes: kept after the run, under no user's limit, dry run after dry run would fill the disk
    (attacker review). Once the events are read and the prediction taken, both go; the log and the harness's copy
    of the prediction stay."""
    import time

    from harness.core.settings import load_settings
    from harness.core.tree_usage import usage
    folder = participant(tmp_path / "leftovers", LEFTOVERS)
    name = run_session(cli, folder)
    failing = run_session(cli, folder, "-a", "--fail 1")
    assert cli.json("model", "ls", name)[0]["checkpoint"] == "0"  # (its events were read first)
    scored = cli.json("submit", "-t", name, "0")
    failed = cli.json("submit", "-t", failing, "0", code=1)
    assert scored["status"] == "succeeded" and (failed["status"], failed["reason"]) == ("failed", "exit_code")
    runs = sorted(load_settings().runs_dir.iterdir())
    assert len(runs) == 4
    deadline = time.monotonic() + 30
    while any(usage(run).size > 1 << 20 for run in runs):  # (removed in the background)
        assert time.monotonic() < deadline, {run.name: sorted(p.name for p in run.rglob("*")) for run in runs}
        time.sleep(0.1)
    assert all((run / "log.txt").is_file() for run in runs)
    assert [r.name for r in runs if (r / "graded" / "prediction").is_file()] == [runs[2].name]


TALKER = r'''
import argparse, sys
import nsml
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
p.add_argument("--iteration", default="0"); p.add_argument("--mb", type=int); p.add_argument("--sleep", type=float)
cfg = p.parse_args()

def talk():
    for _ in range(cfg.mb * 1024): sys.stdout.write("x" * 1023 + "\n")

def infer(path, **kw):
    talk()
    if cfg.sleep:
        import time; time.sleep(cfg.sleep)
    return [0] * len(open(path).read().split())

nsml.bind(save=lambda d: open(d + "/m", "w").write("x"), load=lambda d: None, infer=infer)
if cfg.pause:
    nsml.paused(scope=locals())
if cfg.mode == "train":
    talk()
    nsml.save(0)
'''


def test_what_runs_keep_after_they_end_counts_with_the_sessions_and_goes_with_them(cli, tiny_task, tmp_path,
                                                                                      state_root):
    """A run's log (up to limits.log_bytes) and a dry run's log and graded prediction stay after they end:
    charged to no one, a participant who runs, dry-runs and removes sessions over and over would fill the disk
    with them. They count within limits.user_storage_bytes, and `nsml rm` takes them with the session (attacker
    review)."""
    from harness.core.settings import load_settings
    (state_root / "harness.toml").write_text("[limits]\nuser_storage_bytes = 25000000\n")
    talker = participant(tmp_path / "talker", TALKER)
    first = run_session(cli, talker, "-a", "--mb 10")  # 10 MiB of log, a tiny checkpoint
    assert cli.json("submit", "-t", first, "0")["status"] == "succeeded"  # its infer says 10 MiB more
    second = run_session(cli, talker, "-a", "--mb 6")
    refused = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--mb 1", talker, code=None)
    assert refused.exit_code != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "runs' logs" in refused.stderr and "limits.user_storage_bytes" in refused.stderr, refused.stderr
    refused = cli("submit", "-t", second, "0", code=None)  # a dry run keeps its log and prediction too
    assert refused.exit_code != 0 and "limits.user_storage_bytes" in refused.stderr, refused.stderr
    runs = {p.name for p in load_settings().runs_dir.iterdir()}
    cli("rm", first)
    assert len(runs - {p.name for p in load_settings().runs_dir.iterdir()}) == 2  # its run's and its dry run's
    assert run_session(cli, talker, "-a", "--mb 1") and "x" * 100 in cli("logs", second).stdout


def test_an_admission_stands_a_moment_so_a_flood_of_requests_walks_the_users_folder_once(state_root, monkeypatch):
    """Each `run` over HTTP is admitted before its body is read: a participant sending upload after upload that
    will be refused once read had the server walk their whole sessions folder (200,000 entries: a second of CPU)
    each time (attacker review). An admission stands ADMITTED_SECONDS, until the user makes a session."""
    from harness.core.settings import load_settings
    from harness.runs import create
    from harness.store.engine import open_store
    settings = load_settings()
    (settings.sessions_dir / "alice").mkdir(parents=True)
    store, walks = open_store(settings.db_url), []
    real = create.usage
    monkeypatch.setattr(create, "usage", lambda *a, **k: walks.append(a[0]) or real(*a, **k))
    for _ in range(50):
        create.check_storage(settings, "alice", store)
    assert len(walks) == 1
    create.storage_changed(settings, "alice")  # (a session made, or removed)
    create.check_storage(settings, "alice", store)
    assert len(walks) == 2
    create.check_storage(settings, "bob", store)  # (each user's own)
    assert len(walks) == 3


def _dry_run_under_way(cli, talker):
    """A session and a dry run of it, running (its infer sleeps): (session name, the dry run's run folder, id)."""
    import time

    from harness.service import submits
    from harness.state.root import Harness
    from harness.store.models import Run
    name = run_session(cli, talker, "-a", "--mb 1 --sleep 30")
    h = Harness()
    _, run_id = submits.start_submit(h, name, "0", dry_run=True)
    deadline = time.monotonic() + 60
    while True:
        with h.tx() as db:
            run = db.get(Run, run_id)
            if run.status.value == "running" and run.started_at:
                return name, run.run_dir, run_id
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_dry_run_under_way_stops_with_its_session_and_keeps_nothing(cli, tiny_task, tmp_path, state_root):
    """`nsml rm` stops the session's dry runs under way as it stops the session; and a dry run that ends after its
    session is gone keeps nothing, since nobody's storage would count it (attacker review)."""
    import time
    from pathlib import Path

    from sqlalchemy import select

    from harness.core.settings import load_settings
    from harness.scheduler.lease import wake
    from harness.state.root import Harness
    from harness.store.models import Run, Submission
    talker = participant(tmp_path / "talker", TALKER)
    name, run_dir, run_id = _dry_run_under_way(cli, talker)
    started = time.monotonic()
    cli("rm", name)
    assert time.monotonic() - started < 25 and not Path(run_dir).exists()  # (stopped, not waited out: 30 s)
    with Harness().tx() as db:
        assert db.get(Run, run_id).status.value == "stopped"

    name, run_dir, run_id = _dry_run_under_way(cli, talker)
    with Harness().tx() as db:  # (as if its session were removed between `rm`'s stop and its end)
        db.scalar(select(Submission).where(Submission.run_id == run_id)).session_id = None
        db.get(Run, run_id).stop_requested = True
    wake(load_settings())
    deadline = time.monotonic() + 60
    while Path(run_dir).exists():
        assert time.monotonic() < deadline, sorted(p.name for p in Path(run_dir).iterdir())
        time.sleep(0.1)
