"""Bytes a run holds in files with no name left — deleted while open, mapped, made nameless (O_TMPFILE), memfds —
are out of reach of any walk of its folders; the harness counts them from the run's own processes.

Invariants: each such file is counted once, at its allocated bytes, however many processes and descriptors hold
it; a named file is never counted twice (the walk has it); a bound cuts the count short but never inflates it, and
descriptor order gives a run no place to hide; a session that holds more than its allowance that way is cancelled
as `disk_quota`, and other users are served meanwhile."""
import os
import subprocess
import sys
import time

import pytest
import test_trust
from helpers import participant, run_session
from hypothesis import given, settings
from hypothesis import strategies as st
from test_trust_ii import others_still_served

from harness.runtime import open_files

runtime = test_trust.runtime  # the sandboxed process runtime, and docker
guarded = test_trust.guarded  # bob's session and the task, checksummed before and after

MiB = 1 << 20

HOLDER = r"""
import mmap, os, sys, tempfile, time
folder, elsewhere, decoys = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(decoys):  # low-numbered descriptors before the ones that matter
    os.open(os.devnull, os.O_RDONLY)
nameless = tempfile.TemporaryFile(dir=folder)  # O_TMPFILE: never had a name
nameless.write(os.urandom(2 << 20)); nameless.flush()
deleted = open(os.path.join(folder, "deleted"), "wb")
deleted.write(os.urandom(3 << 20)); deleted.flush(); os.unlink(deleted.name)
fd = os.open(os.path.join(folder, "mapped"), os.O_RDWR | os.O_CREAT)
os.write(fd, os.urandom(4 << 20)); view = mmap.mmap(fd, 0); os.close(fd); os.unlink(os.path.join(folder, "mapped"))
named = open(os.path.join(folder, "named"), "wb"); named.write(os.urandom(5 << 20)); named.flush()
away = open(os.path.join(elsewhere, "away"), "wb"); away.write(os.urandom(6 << 20)); away.flush(); os.unlink(away.name)
memfd = os.memfd_create("held"); os.write(memfd, os.urandom(7 << 20))  # never mapped
if os.fork() == 0:  # a child holding the same files: each counts once
    time.sleep(60); os._exit(0)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    procs = []

    def start(decoys=0):
        folder, elsewhere = tmp_path / "run", "/dev/shm" if os.path.isdir("/dev/shm") else tmp_path
        folder.mkdir()
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(elsewhere), str(decoys)],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline() == "ready\n"
        import psutil
        pids = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children()]
        return pids, {folder.stat().st_dev}
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_nameless_files_count_once_each_at_their_allocated_bytes(holder):
    pids, devices = holder()
    assert len(pids) == 2
    found = open_files.held(pids, devices)
    assert found.complete
    expected = (2 + 3 + (4 if os.geteuid() == 0 else 0)) * MiB  # (a closed mapping: map_files, root only)
    assert expected <= found.disk < expected + MiB, found  # not the named file, not the one on another device
    assert 7 * MiB <= found.memory < 8 * MiB, found  # the memfd, once for both processes
    assert open_files.held(pids, set()).disk == 0  # on no file system of the run: not its disk


def test_more_to_look_at_than_the_bound_is_unmeasurable_and_time_is_a_lower_bound(holder):
    pids, devices = holder()
    cut = open_files.held(pids, devices, max_entries=2)
    assert cut.bounded and not cut.complete  # the caller cancels the run: never a short count passed off as whole
    late = open_files.held(pids, devices, budget=0)
    assert not late.complete and not late.bounded and late.disk == 0  # the harness's own slowness: measured again


def test_decoy_descriptors_hide_nothing_under_the_bound_and_past_it_are_a_verdict(holder):
    """A run that spreads its bytes behind thousands of decoy descriptors (so that a bound would always cut its
    count short) is either counted whole, or — past the bound — cannot be measured (attacker review)."""
    pids, devices = holder(decoys=3000)
    whole = open_files.held(pids, devices)
    assert whole.complete and whole.disk >= 5 * MiB, whole
    assert open_files.held(pids, devices, max_entries=1000).bounded


def test_unreadable_processes_are_what_was_not_seen():
    assert open_files.held([2 ** 22 + 7, -1], {0}) == open_files.Held()  # no such process: nothing, no error


HOLD_DELETED = '''
import argparse, os, tempfile, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); cfg = p.parse_args()
ck = os.environ["NSML_CHECKPOINT_DIR"]
held = [tempfile.TemporaryFile(dir=ck) for _ in range(2)]  # nameless from the start
with open(os.path.join(ck, "gone"), "wb") as f:  # named while written: under each folder's own limit
    held.append(open(f.name, "rb"))
    for _ in range(25): f.write(os.urandom(1 << 20))
os.unlink(os.path.join(ck, "gone"))
for f in held[:2]:
    for _ in range(25): f.write(os.urandom(1 << 20))
    f.flush()
print("holding", flush=True)
time.sleep(60)
print("survived", flush=True)
'''


def test_a_session_holding_deleted_files_over_its_allowance_is_cancelled(cli, runtime, guarded, state_root,
                                                                        tmp_path, nsml_folder):
    (state_root / "harness.toml").write_text("[limits]\ncheckpoint_bytes = 30000000\nscratch_bytes = 30000000\n")
    started = time.monotonic()
    name = run_session(cli, participant(tmp_path / "hold", HOLD_DELETED), code=1)
    row = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert (row["status"], row["reason"]) == ("failed", "disk_quota"), row
    assert "deleted files" in row["message"] and "limits.checkpoint_bytes + limits.scratch_bytes" in row["message"]
    log = cli("logs", name).stdout
    assert "holding" in log and "survived" not in log and time.monotonic() - started < 55, log
    (state_root / "harness.toml").write_text("")
    others_still_served(cli, nsml_folder, guarded)


def test_a_run_too_big_to_look_at_is_a_disk_verdict(tmp_path, monkeypatch):
    from harness.runtime import disk_limits
    monkeypatch.setattr(open_files, "held", lambda pids, devices, places=None: open_files.Held(complete=False, bounded=True))
    limits = [disk_limits.DiskLimit([tmp_path], 1 << 30, "limits.scratch_bytes")]
    message, _ = disk_limits.measure(limits, [os.getpid()])
    assert message and "open files" in message and "cannot be checked (limits.scratch_bytes)" in message
    assert disk_limits.measure(limits, [])[0] is None  # (no processes to look at: its folders alone)


def test_a_deleted_file_counts_only_where_the_run_could_have_made_it(holder, tmp_path):
    """A library of the harness's (or an environment's) replaced while a run maps it is deleted, on the same file
    system as the run's folders, and held by the run: never the run's bytes (every running run would be cancelled
    by an upgrade). The places a run sees are matched by whole components, the longest first."""
    pids, devices = holder()
    folder = str(tmp_path / "run")
    mine = open_files.held(pids, devices, places=[("/", False), (folder, True)])
    assert mine.disk == open_files.held(pids, devices).disk > 0
    assert open_files.held(pids, devices, places=[("/", False), (folder + "-other", True)]).disk == 0
    assert open_files.held(pids, devices, places=[("/", True), (folder, False)]).disk == 0  # read-only inside
    places = [("/", False), ("/tmp", True), ("/tmp/ci/.venv", False)]
    assert open_files.writable("/tmp/x", places) and open_files.writable("/tmp/ci/.venvX/y", places)
    assert not open_files.writable("/tmp/ci/.venv/lib/x.so", places) and not open_files.writable("/usr/x", places)
    assert not open_files.writable("/tmpfoo", places) and not open_files.writable("", places)


def test_names_and_programs_that_would_hide_a_deleted_file(tmp_path, monkeypatch):
    """Second attacker review: a carriage return in a mapped file's name split /proc/PID/maps' line in two; a
    program whose file was deleted is kept by the kernel with neither a descriptor nor a mapping of it."""
    import shutil
    folder = tmp_path / "run"
    folder.mkdir()
    program = folder / "held-program"
    shutil.copy("/bin/sleep", program)
    with open(program, "ab") as fh:
        fh.write(b"\0" * (4 << 20))  # (an ELF file runs with bytes past its end)
    proc = subprocess.Popen([str(program), "60"])
    hider = subprocess.Popen([sys.executable, "-c", r"""
import ctypes, os, sys, time
path = os.path.join(sys.argv[1], "a\rk 0 0 0 0 x")
fd = os.open(path, os.O_RDWR | os.O_CREAT); os.write(fd, os.urandom(3 << 20))
libc = ctypes.CDLL(None, use_errno=True); libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
assert libc.mmap(None, 3 << 20, 3, 1, fd, 0) not in (None, ctypes.c_void_p(-1).value)  # shared, no descriptor kept
os.close(fd); os.unlink(path)
print("ready", flush=True); time.sleep(60)
""", str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert hider.stdout.readline() == "ready\n"
        time.sleep(0.2)
        program.unlink()
        devices = {folder.stat().st_dev}
        if os.geteuid() == 0:  # (map_files: root only)
            assert open_files.held([hider.pid], devices).disk >= 3 << 20
        monkeypatch.setattr(open_files, "_deleted_mappings", lambda proc: {})  # (as a program that unmapped itself)
        assert open_files.held([proc.pid], devices).disk >= 4 << 20  # by /proc/PID/exe
    finally:
        for p in (proc, hider):
            p.kill()
            p.wait()


def test_a_read_only_view_of_the_runs_own_folders_is_writable():
    """The user's sessions are mounted read-only and show the checkpoints being written: a file reopened through
    that view, then deleted, is still one the run made (second attacker review)."""
    from pathlib import Path

    from harness.runtime.base import Mount, mount_places
    sessions, task = Path("/state/sessions/alice"), Path("/state/tasks/tiny")
    places = mount_places([Mount(sessions / "tiny" / "1" / "checkpoints", "/nsml/checkpoints", read_only=False),
                           Mount(sessions, "/nsml/sessions/alice"), Mount(task, "/data/tiny")])
    assert places == [("/nsml/checkpoints", True), ("/nsml/sessions/alice", True), ("/data/tiny", False)]
    assert open_files.writable("/nsml/sessions/alice/tiny/1/checkpoints/w.bin", [("/", False), *places])


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b), max_size=8),
       junk=st.binary(max_size=200))
def test_any_maps_text_parses_to_real_ranges_and_never_raises(names, junk):
    """/proc/PID/maps carries names the run chose (the kernel escapes only a newline): whatever they hold —
    carriage returns, spaces, fake fields, " (deleted)" in the middle, bytes that are not UTF-8 — every key is a
    real hex range, each deleted mapping is found under its own range, and garbage lines add nothing."""
    lines = [b"%x-%x rw-s 00000000 fe:00 %d                    /tmp/%s (deleted)" % (0x1000 * (i + 1),
             0x1000 * (i + 2), 100 + i, name) for i, name in enumerate(names)]
    found = open_files.deleted_in_maps(b"\n".join([junk, *lines]))  # (a real range appears once)
    import re
    assert all(re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", key) for key in found)
    for i, name in enumerate(names):
        key = "%x-%x" % (0x1000 * (i + 1), 0x1000 * (i + 2))
        assert found[key] == os.fsdecode(b"/tmp/" + name)
