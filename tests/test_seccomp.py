"""A sandboxed run cannot watch the file system (inotify, fanotify): it would see the harness walk its folders and
move its bytes behind the walk (core.tree_usage). Real bubblewrap, real filter."""
import subprocess
import sys

import pytest

from harness.runtime import sandbox, seccomp

pytestmark = pytest.mark.skipif(not sandbox.works(), reason="needs bubblewrap (CI installs it)")

PROBE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
for name, args in (("inotify_init1", (0,)), ("fanotify_init", (0, 0))):
    fd = getattr(libc, name)(*args)
    print(name, fd, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()))
print("listdir", len(os.listdir("/tmp")) >= 0, "pid", os.getpid() > 0)
"""


def run_probe(tmp_path, with_filter: bool) -> str:
    box = tmp_path / ("on" if with_filter else "off")
    box.mkdir()
    fd = seccomp.filter_fd() if with_filter else None
    cmd = sandbox.base_command(network=False, tmp=box) + (["--seccomp", str(fd)] if fd is not None else []) + [
        "--", sys.executable, "-c", PROBE]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, pass_fds=(fd,) if fd else ())
    finally:
        if fd is not None:
            import os
            os.close(fd)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_sandboxed_run_cannot_watch_files_and_everything_else_works(tmp_path):
    assert seccomp.program() is not None  # (this machine is x86_64 or aarch64)
    unfiltered = run_probe(tmp_path, False)
    assert "inotify_init1 -1" not in unfiltered  # the call works without the filter: the test can fail
    filtered = run_probe(tmp_path, True)
    assert "inotify_init1 -1 ENOSYS" in filtered and "fanotify_init -1 ENOSYS" in filtered
    assert "listdir True pid True" in filtered


def test_the_filter_is_well_formed_for_each_machine():
    for machine in ("x86_64", "aarch64"):
        prog = seccomp.program(machine)
        assert len(prog) % 8 == 0 and 0 < len(prog) // 8 < 64
    assert seccomp.program("riscv64") is None


def test_a_session_runs_under_the_filter(cli, tiny_task, tmp_path):
    from helpers import participant, run_session
    folder = participant(tmp_path / "watcher", "import argparse\n" + PROBE.replace(
        "import ctypes", "p = argparse.ArgumentParser(); p.add_argument('--mode', default='train')\n"
                         "p.parse_known_args()\nimport ctypes"))
    name = run_session(cli, folder)
    log = cli("logs", name).stdout
    assert "inotify_init1 -1 ENOSYS" in log and "fanotify_init -1 ENOSYS" in log, log
