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
try:
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    print("raised back to", os.getpriority(os.PRIO_PROCESS, 0))
except OSError as exc:
    print("refused", exc.strerror)
'''


def test_a_run_yields_the_cpu_to_the_harness_and_cannot_take_it_back(cli, tiny_task, tmp_path):
    """Every process-runtime run starts at nice 10, so the scheduler and the server stay responsive on a machine
    its runs keep busy (with or without control groups); the sandbox gives no privilege to lower it again. (A
    container's share is its CPU quota, docker's nano_cpus.)"""
    from harness.runtime import sandbox
    if not sandbox.works():
        if os.environ.get("CI"):
            pytest.fail("CI must install bubblewrap (scripts/setup-sandbox.sh)")
        pytest.skip("no bubblewrap (scripts/setup-sandbox.sh installs it)")
    log = cli("logs", run_session(cli, participant(tmp_path / "nice", NICE))).stdout
    assert "nice 10" in log and "refused" in log and "raised back" not in log, log
