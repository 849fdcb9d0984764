"""A run given N CPU cores sees N threads in every common library, as a container with a CPU quota would: `-c`,
else the task's `[limits] cpus`, else 1 (issue 25's finding 1: a torch run on a busy 2-core machine crawled with
one thread per core)."""
import os

import pytest
from helpers import ORGANIZER, make_tiny_task, participant, run_session

from harness.runtime.base import THREAD_VARIABLES

THREADS = '''
import argparse, os
import torch
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
print("threads", {k: os.environ.get(k) for k in %r}, "torch", torch.get_num_threads())
''' % (THREAD_VARIABLES,)


def _seen(cli, name):
    log = cli("logs", name).stdout
    line = next(ln for ln in log.splitlines() if ln.startswith("threads"))
    return line


def test_cpus_set_every_librarys_threads_and_show_in_ps(cli, tiny_task, tmp_path, runtime):
    folder = participant(tmp_path / "threads", THREADS)
    default = run_session(cli, folder)
    seen = _seen(cli, default)
    assert all(f"'{k}': '1'" in seen for k in THREAD_VARIABLES) and seen.endswith("torch 1"), seen
    two = run_session(cli, folder, "-c", "2")
    seen = _seen(cli, two)
    assert all(f"'{k}': '2'" in seen for k in THREAD_VARIABLES) and seen.endswith("torch 2"), seen
    rows = {r["name"]: r for r in cli.json("ps", "-a")}
    assert rows[default]["cpus"] == 1.0 and rows[two]["cpus"] == 2.0
    table = cli("ps", "-a").stdout
    assert "CPUs/GPUs" in table


def test_a_tasks_cpus_is_the_default(cli, tmp_path):
    pack = make_tiny_task(tmp_path / "wide", name="wide")
    (pack / "task.toml").write_text((pack / "task.toml").read_text() + "[limits]\ncpus = 2\n")
    cli("dataset", "add", pack, user=ORGANIZER)
    folder = participant(tmp_path / "t", THREADS)
    name = run_session(cli, folder, task="wide")
    assert _seen(cli, name).endswith("torch 2")
    assert cli.json("ps", "-a")[0]["cpus"] == 2.0
    # the task's cores are also its limit: -c may lower it, never raise it
    r = cli("run", "-d", "wide", "-c", "64", folder, code=2)
    assert "-c/--cpus: 64 is over this task's limit of 2 cores" in r.stderr and "Traceback" not in r.output
    assert len(cli.json("ps", "-a")) == 1
    one = run_session(cli, folder, "-c", "1", task="wide")
    assert _seen(cli, one).endswith("torch 1")


def test_a_cpu_count_that_is_not_a_number_is_one_line(cli, tiny_task, tmp_path):
    folder = participant(tmp_path / "t", THREADS)
    for bad in ("nan", "inf", "1e400", "0", "-2", "5000"):
        r = cli("run", "-d", "tiny", "-c", bad, folder, code=2)
        assert "-c/--cpus: must be between 0.01 and 4096" in r.stderr and "Traceback" not in r.output, r.output
    assert cli.json("ps", "-a") == []


NICE = '''
import argparse, os
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
print("nice", os.getpriority(os.PRIO_PROCESS, 0), flush=True)
import resource
print("files", *resource.getrlimit(resource.RLIMIT_NOFILE), flush=True)
import time
def autogroup_nice(wait=10):  # the harness nices new sessions at its next check
    deadline = time.monotonic() + wait
    while True:
        try:
            nice = open("/proc/self/autogroup").read().split()[-1]
        except OSError as exc:
            return "unknown " + exc.strerror
        if nice == "10" or time.monotonic() > deadline:
            return nice
        time.sleep(0.2)
print("autogroup", autogroup_nice(), flush=True)
r, w = os.pipe()
if os.fork() == 0:  # a session of its own: a fresh autogroup, at nice 0 until the harness sees it
    os.setsid()
    os.write(w, autogroup_nice().encode()); os._exit(0)
os.wait()
print("new session's autogroup", os.read(r, 100).decode(), flush=True)
try:
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    print("raised back to", os.getpriority(os.PRIO_PROCESS, 0))
except OSError as exc:
    print("refused", exc.strerror)
'''


@pytest.mark.parametrize("groups", ["cgroups", "no cgroups"])
def test_runs_yield_the_cpu_to_the_harness(cli, tiny_task, tmp_path, monkeypatch, groups):
    """On a machine its runs keep busy, the scheduler and the server keep the CPU they need: in control groups
    all runs together weigh a quarter of the default (cgroups.RUNS_WEIGHT), which a run cannot change; without
    them each run starts at nice 10, its session's autogroup too (cooperative: the sandbox gives no privilege to
    lower a nice value, but a run that starts a session of its own starts a fresh autogroup). A container's share
    is its CPU quota, docker's nano_cpus. (Attacker review: nice alone weighs nothing across groups.)"""
    from pathlib import Path

    from harness.runtime import cgroups, sandbox
    if not sandbox.works():
        if os.environ.get("CI"):
            pytest.fail("CI must install bubblewrap (scripts/setup-sandbox.sh)")
        pytest.skip("no bubblewrap (scripts/setup-sandbox.sh installs it)")
    if groups == "no cgroups":
        monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent / "no_cgroups"))
    name = run_session(cli, participant(tmp_path / "nice", NICE))
    log = cli("logs", name).stdout
    assert "nice 10" in log and "refused" in log and "raised back" not in log, log
    soft, hard = (int(n) for n in log.split("files ")[1].split()[:2])
    assert soft == hard <= 65536, log  # (runtime.process.RUN_FILES: what open_files may have to look at)
    isolation = [r for r in cli.json("ps", "-a") if r["name"] == name][0]["isolation"]
    if groups == "no cgroups":
        assert "cgroup" not in isolation, isolation
        assert ("autogroup 10" in log and "new session's autogroup 10" in log) or "autogroup unknown" in log, log
        return
    if "cgroup" not in isolation:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root: runs get control groups")
        pytest.skip("this machine gives the harness no control groups")
    v2 = cgroups._own_v2_base()
    weight = (v2 / cgroups.PARENT / "cpu.weight") if v2 else (cgroups.ROOT / "cpu" / cgroups.PARENT / "cpu.shares")
    assert weight.read_text().strip() == str(cgroups.RUNS_WEIGHT * 100 // 1024 if v2 else cgroups.RUNS_WEIGHT)
