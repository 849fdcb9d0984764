"""Who may queue what, and in which order the queue is served: a refused `run` costs the service nothing (no
environment is built for it), one participant's full queue does not hold the others' runs back, and every run
has a memory limit."""
import os

import pytest
from helpers import ORGANIZER, make_tiny_task, participant, run_session

from harness.core.errors import UserError
from harness.core.settings import load_settings
from harness.runs.create import RunOptions
from harness.runtime import environments
from harness.service.sessions import start_session
from harness.state import Harness

SLEEP = '''
import argparse, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
time.sleep(30)
'''


def test_a_refused_run_builds_no_environment(state_root, tiny_task, tmp_path, monkeypatch):
    """Over the queue limit (or outside a round's gate) `run` is refused before its requirements are installed:
    a participant cannot make the server build environments it will never run."""
    (state_root / "harness.toml").write_text("gpus = 1\n[limits]\nqueued_per_user = 1\n")
    folder = participant(tmp_path / "code", SLEEP)
    (folder / "requirements.txt").write_text("some-package-that-would-be-built==1.0\n")
    built = []
    monkeypatch.setattr(environments, "for_code", lambda *a, **k: built.append(a) or None)
    h = Harness(load_settings())
    start_session(h, "tiny", str(folder), opts=RunOptions(gpus=1))  # queued (the scheduler is not asked here)
    assert len(built) == 1
    with pytest.raises(UserError, match="queue limit reached: 1 of your runs are waiting"):
        start_session(h, "tiny", str(folder), opts=RunOptions(gpus=1))
    with pytest.raises(UserError, match="-c/--cpus: must be between"):
        start_session(h, "tiny", str(folder), opts=RunOptions(cpus=0))
    assert len(built) == 1


QUICK = '''
import argparse, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
time.sleep(0.5)
'''


def _harness_of(user, monkeypatch):
    monkeypatch.setenv("HARNESS_USER", user)
    return Harness(load_settings())


def test_the_queue_is_served_round_robin_over_participants(state_root, tiny_task, tmp_path, monkeypatch):
    """Alice queues three runs, then Bob one, while nothing runs and one run at a time may: Bob's starts second,
    not fourth (first come first served held it behind all of Alice's)."""
    from harness.scheduler import lease
    from harness.scheduler.waiting import wait_run
    from harness.service import sessions
    from harness.store.models import Run, Session
    (state_root / "harness.toml").write_text("[scheduler]\nmax_concurrent_runs = 1\n")
    monkeypatch.setattr(sessions, "wake", lambda settings: None)  # everything queued before the scheduler starts
    folder = participant(tmp_path / "code", QUICK)
    alice = _harness_of("alice", monkeypatch)
    names = [start_session(alice, "tiny", str(folder)) for _ in range(3)]
    bob = _harness_of("bob", monkeypatch)
    names.append(start_session(bob, "tiny", str(folder)))
    lease.wake(bob.settings)
    with bob.tx() as db:
        run_ids = {s.name: s.run_id for s in db.query(Session)}
    for run_id in run_ids.values():
        assert wait_run(bob, run_id, timeout=120) is not None
    with bob.tx() as db:
        started = {name: db.get(Run, run_id).started_at for name, run_id in run_ids.items()}
    order = sorted(started, key=started.get)
    assert order == [names[0], names[3], names[1], names[2]], order


HUNGRY = '''
import argparse, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.add_argument("--mb", type=int)
cfg = p.parse_args()
blocks = [bytearray(1 << 20) for _ in range(cfg.mb)]
print("held", cfg.mb, "MiB", flush=True)
'''


def _memory_of(name):
    h = Harness(load_settings())
    with h.tx() as db:
        return h.session(db, name).run.memory


def test_every_run_has_a_memory_limit(cli, tiny_task, tmp_path, state_root):
    """No --memory and no task limit: the machine's memory shared by the runs one scheduler may hold at once (a
    run of one participant cannot take the memory the others' runs live in); --memory may lower it only."""
    from harness.core.sizes import machine_memory
    folder = participant(tmp_path / "hungry", HUNGRY)
    name = run_session(cli, folder, "-a", "--mb 10")
    assert _memory_of(name) == max(1 << 30, machine_memory() // 8)
    (state_root / "harness.toml").write_text("[scheduler]\nmax_concurrent_runs = 2\n[limits]\nrun_memory_bytes = "
                                             f"{400 << 20}\n")
    r = cli("run", "-d", "tiny", "--memory", "2G", folder, code=2)
    assert r.stderr.count("\n") == 1 and "--memory: 2G is over this task's limit of 400 MiB" in r.stderr, r.stderr
    eaten = run_session(cli, folder, "-a", "--mb 700", code=1)
    row = [r for r in cli.json("ps", "-a") if r["name"] == eaten][0]
    assert (row["status"], row["reason"]) == ("failed", "oom"), row
    assert _memory_of(run_session(cli, folder, "--memory", "300M", "-a", "--mb 10")) == 300 << 20


def test_a_tasks_memory_is_its_runs_limit(cli, tmp_path):
    pack = make_tiny_task(tmp_path / "lean", name="lean")
    (pack / "task.toml").write_text((pack / "task.toml").read_text() + '[limits]\nmemory = "256M"\n')
    cli("dataset", "add", pack, user=ORGANIZER)
    folder = participant(tmp_path / "hungry", HUNGRY)
    assert _memory_of(run_session(cli, folder, "-a", "--mb 10", task="lean")) == 256 << 20
    r = cli("run", "-d", "lean", "--memory", "1G", folder, code=2)
    assert "--memory: 1G is over this task's limit of 256 MiB" in r.stderr and "Traceback" not in r.output
    bad = make_tiny_task(tmp_path / "greedy", name="greedy")
    (bad / "task.toml").write_text((bad / "task.toml").read_text() + '[limits]\nmemory = "lots"\n')
    r = cli("dataset", "add", bad, user=ORGANIZER, code=2)
    assert "task.toml: [limits] memory: invalid size 'lots'" in r.stderr and "Traceback" not in r.output, r.output


LONG = '''
import argparse, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
time.sleep(60)
'''


def test_runs_per_user_cap_and_a_queued_stop_with_every_slot_taken(cli, tiny_task, tmp_path, state_root):
    """limits.running_per_user: Alice's second run waits with a message that says why while a slot is free, and
    Bob's starts; a queued run stopped while every slot is taken ends at once (it used to wait for a slot)."""
    (state_root / "harness.toml").write_text("[scheduler]\nmax_concurrent_runs = 2\n[limits]\nrunning_per_user = 1\n")
    folder = participant(tmp_path / "long", LONG)
    first = cli("run", "-d", "tiny", folder).stdout.split()[1]
    second = cli("run", "-d", "tiny", folder).stdout.split()[1]

    def rows():
        return {r["name"]: r for r in cli.json("ps", "-a", user="alice") + cli.json("ps", "-a", user="bob")}

    _until(lambda: rows()[first]["status"] == "running" and "running_per_user" in (rows()[second]["message"] or ""))
    assert rows()[second]["status"] == "queued"
    assert "1 of this user's runs are running (limits.running_per_user = 1)" in rows()[second]["message"]
    bobs = cli("run", "-d", "tiny", folder, user="bob").stdout.split()[1]
    _until(lambda: rows()[bobs]["status"] == "running")  # the free slot is Bob's
    third = cli("run", "-d", "tiny", folder, user="bob").stdout.split()[1]  # every slot taken: it queues
    cli("stop", third, user="bob")
    _until(lambda: rows()[third]["status"] == "stopped", timeout=10)
    cli("stop", "alice/tiny/*")
    cli("stop", "bob/tiny/*", user="bob")
    _until(lambda: all(r["status"] == "stopped" for r in rows().values()))


def _until(check, timeout=60):
    import time
    end = time.time() + timeout
    while not check():
        assert time.time() < end, "timed out"
        time.sleep(0.3)


def test_a_run_passed_over_for_its_gpus_does_not_count_against_the_cap(cli, tiny_task, tmp_path, state_root):
    """Alice (cap 1, nothing running) queued a GPU run while Bob holds every GPU, then a CPU run: the GPU run is
    passed over and her CPU run starts in the free slot (counting the run passed over held it back)."""
    (state_root / "harness.toml").write_text("gpus = 1\n[scheduler]\nmax_concurrent_runs = 3\n"
                                             "[limits]\nrunning_per_user = 1\n")
    folder = participant(tmp_path / "long", LONG)
    bobs = cli("run", "-d", "tiny", "-g", "1", folder, user="bob").stdout.split()[1]

    def rows():
        return {r["name"]: r for r in cli.json("ps", "-a", user="alice") + cli.json("ps", "-a", user="bob")}

    _until(lambda: rows()[bobs]["status"] == "running")
    gpu = cli("run", "-d", "tiny", "-g", "1", folder).stdout.split()[1]
    cpu = cli("run", "-d", "tiny", folder).stdout.split()[1]
    _until(lambda: rows()[cpu]["status"] == "running")
    assert rows()[gpu]["status"] == "queued"
    cli("stop", "alice/tiny/*")
    cli("stop", "bob/tiny/*", user="bob")
    _until(lambda: all(r["status"] == "stopped" for r in rows().values()))


SHARED = '''
import argparse, os, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.add_argument("--how"); cfg = p.parse_args()
chunk = b"x" * (1 << 20)
if cfg.how == "shm":  # written, closed: only the file system holds it
    with open("/dev/shm/big", "wb") as f:
        for _ in range(600): f.write(chunk)
elif cfg.how == "memfd_unmapped":  # written, never mapped: only its descriptor holds it
    fd = os.memfd_create("big")
    for _ in range(600): os.write(fd, chunk)
elif cfg.how == "memfd":  # mapped
    import mmap
    fd = os.memfd_create("big")
    os.ftruncate(fd, 600 << 20)
    view = mmap.mmap(fd, 600 << 20)
    for i in range(600): view[i << 20:(i + 1) << 20] = chunk
elif cfg.how == "root":  # the sandbox's own root is read-only: nothing to hide there
    try:
        open("/big", "wb").write(chunk)
    except OSError as exc:
        print("refused", exc.strerror, flush=True)
        raise SystemExit(7)
print("holding", cfg.how, flush=True)
time.sleep(20)
print("survived", flush=True)
'''


@pytest.mark.parametrize("how", ["shm", "memfd", "memfd_unmapped"])
def test_shared_memory_counts_without_a_control_group(cli, tiny_task, tmp_path, monkeypatch, how):
    """Where the harness cannot make a control group, the memory limit is measured by the harness: /dev/shm files
    count (resident memory alone let a run with --memory 300M hold 600 MiB there), and memfds, mapped or not."""
    from pathlib import Path
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent / "no_cgroups"))
    name = run_session(cli, participant(tmp_path / "shared", SHARED), "--memory", "300M", "-a", f"--how {how}",
                       code=1)
    row = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert "cgroup" not in row["isolation"], row
    assert (row["status"], row["reason"]) == ("failed", "oom") and "shared memory" in row["message"], row
    assert "survived" not in cli("logs", name).stdout


def test_a_sandboxed_run_can_neither_write_its_root_nor_make_namespaces(cli, tiny_task, tmp_path):
    """Places memory could hide from a harness without a control group: the sandbox's root (a tmpfs) is read-only,
    and a nested user namespace (to mount a tmpfs of its own) is refused."""
    from harness.runtime.sandbox import bwrap_path
    if bwrap_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install bubblewrap (scripts/setup-sandbox.sh)")
        pytest.skip("no bubblewrap (scripts/setup-sandbox.sh installs it)")
    name = run_session(cli, participant(tmp_path / "root", SHARED), "-a", "--how root", code=1)
    assert "refused Read-only file system" in cli("logs", name).stdout
    folder = participant(tmp_path / "ns", """
import argparse, subprocess
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
print("unshare", subprocess.run(["unshare", "-Ur", "true"]).returncode, flush=True)
""")
    assert "unshare 1" in cli("logs", run_session(cli, folder)).stdout


def test_a_team_takes_turns_as_one_and_the_cap_counts_users(state_root):
    """A contest's team of two (alice, carol) queue two runs each, bob (on his own) two: the turns go team, bob,
    team, bob... — not alice, bob, carol, alice, ... (a team of k served k times as often); the per-user cap still
    counts each member's own runs."""
    from harness.core.enums import RunKind, RunStatus
    from harness.scheduler.fair_share import Turns
    from harness.store.models import Contest, Run, Session, Task, Team, User
    h = Harness(load_settings())
    with h.tx() as db:
        task = Task(name="t", path="/nowhere")
        contest = Contest(name="c")
        users = {n: User(name=n) for n in ("alice", "carol", "bob")}
        db.add_all([task, contest, *users.values()])
        db.flush()
        team = Team(contest_id=contest.id, name="ac")
        db.add(team)
        db.flush()
        runs = []
        for n, who in enumerate(["alice", "alice", "carol", "carol", "bob", "bob"]):
            run = Run(kind=RunKind.TRAIN, status=RunStatus.QUEUED, team_id=team.id if who != "bob" else None)
            db.add(run)
            db.flush()
            db.add(Session(name=f"{who}/t/{n}", number=n, user_id=users[who].id, task_id=task.id, run_id=run.id,
                           entry="main.py", dir="/nowhere"))
            runs.append(run)
        db.flush()
        turns = Turns(db, runs, cap=1, served={})
        owner = {r.id: who for r, who in zip(runs, ["alice", "alice", "carol", "carol", "bob", "bob"])}
        assert [owner[r.id] for r in turns.order] == ["alice", "bob", "alice", "bob", "carol", "carol"]
        turns.started(runs[0])  # alice's first: alice is at her cap, carol (same team) is not
        assert turns.held(runs[1]) and not turns.held(runs[2])
