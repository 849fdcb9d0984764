"""A sandboxed run cannot watch the file system (inotify, fanotify): it would see the harness walk its folders and
move its bytes behind the walk (core.tree_usage); nor make an io_uring, where a registered file stays open out of
the harness's sight (runtime.open_files). Real bubblewrap, real filter."""
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
ring = libc.syscall(425, 1, ctypes.create_string_buffer(120))  # io_uring_setup(1 entry, params)
print("io_uring_setup", ring, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()) if ring < 0 else "")
import fcntl, signal
signal.signal(signal.SIGIO, signal.SIG_IGN)
folder = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
try:
    fcntl.fcntl(folder, fcntl.F_NOTIFY, fcntl.DN_ACCESS | fcntl.DN_MULTISHOT)
    print("dnotify allowed")
except OSError as e:
    print("dnotify", errno.errorcode[e.errno])
print("fcntl", fcntl.fcntl(folder, fcntl.F_GETFD) >= 0, fcntl.fcntl(folder, fcntl.F_SETFD, 0) == 0)
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
    assert "inotify_init1 -1" not in unfiltered and "dnotify allowed" in unfiltered  # (the test can fail)
    assert "io_uring_setup -1" not in unfiltered
    filtered = run_probe(tmp_path, True)
    assert "inotify_init1 -1 ENOSYS" in filtered and "fanotify_init -1 ENOSYS" in filtered
    assert "io_uring_setup -1 ENOSYS" in filtered
    assert "dnotify EINVAL" in filtered and "fcntl True True" in filtered  # other fcntl commands work
    assert "listdir True pid True" in filtered


def verdict(prog: bytes, arch: int, nr: int, arg1: int = 0) -> int:
    """What the kernel's classic BPF would answer for one call (the four instructions the filter uses)."""
    import struct
    data = struct.pack("=iIQ6Q", nr, arch, 0, 0, arg1, 0, 0, 0, 0)
    code = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc = acc = 0
    while True:
        op, jt, jf, k = code[pc]
        if op == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
        elif op in (0x15, 0x35):
            pc += jt if (acc == k if op == 0x15 else acc >= k) else jf
        elif op == 0x06:
            return k
        pc += 1


def test_the_filter_answers_each_machines_calls():
    import errno
    allow, nosys, inval = 0x7FFF0000, 0x50000 | errno.ENOSYS, 0x50000 | errno.EINVAL
    x86, i386, arm64, arm32 = 0xC000003E, 0x40000003, 0xC00000B7, 0x40000028
    prog = seccomp.program("x86_64")
    assert [verdict(prog, x86, nr) for nr in (253, 294, 300, 0x40000000 | 294)] == [nosys] * 4
    assert [verdict(prog, i386, nr) for nr in (291, 332, 338)] == [nosys] * 3
    assert [verdict(prog, a, nr) for a in (x86, i386) for nr in (425, 426, 427)] == [nosys] * 6  # io_uring
    assert verdict(prog, x86, 72, seccomp.F_NOTIFY) == verdict(prog, i386, 221, seccomp.F_NOTIFY) == inval
    assert verdict(prog, x86, 72, 1) == verdict(prog, x86, 0) == verdict(prog, i386, 3) == allow  # F_GETFD, read
    assert verdict(prog, arm32, 3) == nosys  # an architecture the table does not name: refused whole
    prog = seccomp.program("aarch64")
    assert verdict(prog, arm64, 26) == verdict(prog, arm64, 262) == verdict(prog, arm64, 425) == nosys
    assert verdict(prog, arm64, 25, seccomp.F_NOTIFY) == inval and verdict(prog, arm64, 63) == allow
    assert verdict(prog, arm32, 316) == nosys
    assert seccomp.program("riscv64") is None


def test_a_session_runs_under_the_filter(cli, tiny_task, tmp_path):
    from helpers import participant, run_session
    folder = participant(tmp_path / "watcher", "import argparse\n" + PROBE.replace(
        "import ctypes", "p = argparse.ArgumentParser(); p.add_argument('--mode', default='train')\n"
                         "p.parse_known_args()\nimport ctypes"))
    name = run_session(cli, folder)
    log = cli("logs", name).stdout
    assert "inotify_init1 -1 ENOSYS" in log and "fanotify_init -1 ENOSYS" in log and "dnotify EINVAL" in log, log


def test_without_a_control_group_the_filter_refuses_sysv_ipc():
    import errno
    allow, nosys = 0x7FFF0000, 0x50000 | errno.ENOSYS
    x86, i386, arm64 = 0xC000003E, 0x40000003, 0xC00000B7
    held = seccomp.program("x86_64", sysv=False)
    assert [verdict(held, x86, nr) for nr in (29, 64, 68)] == [nosys] * 3  # shmget, semget, msgget
    assert [verdict(held, i386, nr) for nr in (395, 393, 399, 117)] == [nosys] * 4  # (and ipc())
    assert verdict(held, x86, 30) == verdict(held, x86, 31) == verdict(held, x86, 9) == allow  # shmat, shmctl, mmap
    assert [verdict(seccomp.program("aarch64", sysv=False), arm64, nr) for nr in (194, 190, 186)] == [nosys] * 3
    assert [verdict(seccomp.program("x86_64"), x86, nr) for nr in (29, 64, 68)] == [allow] * 3  # (a group counts)


SYSV = """
import argparse, ctypes, errno, os
argparse.ArgumentParser().parse_known_args()
libc = ctypes.CDLL(None, use_errno=True)
segment = libc.shmget(0, 1 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT
print("shmget", "ok" if segment >= 0 else errno.errorcode.get(ctypes.get_errno()))
if segment >= 0:
    libc.shmctl(segment, 0, None)  # IPC_RMID
with open("/dev/shm/posix", "wb") as fh:
    fh.write(b"x" * 4096)
print("posix shm ok")
"""


@pytest.mark.parametrize("groups", ["cgroups", "no cgroups"])
def test_a_session_without_a_control_group_makes_no_sysv_ipc(cli, tiny_task, tmp_path, monkeypatch, groups):
    """An unmapped SysV segment (or a queue, a semaphore array) is memory no process of the run shows: without a
    control group to count it, the run cannot make one. POSIX shared memory, which the harness counts, stays."""
    import os
    from pathlib import Path

    from helpers import participant, run_session
    if groups == "no cgroups":
        monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent / "no_cgroups"))
    name = run_session(cli, participant(tmp_path / "sysv", SYSV))
    log = cli("logs", name).stdout
    isolation = [r for r in cli.json("ps", "-a") if r["name"] == name][0]["isolation"]
    assert "posix shm ok" in log, log
    assert groups == "cgroups" or "cgroup" not in isolation, isolation
    if "cgroup" in isolation:
        assert "shmget ok" in log, log
    else:
        assert groups == "no cgroups" or not os.environ.get("CI"), "CI runs as root: runs get control groups"
        assert "shmget ENOSYS" in log, log
