"""Disk use is measured by walking a run's folders while the run may be writing them, to be measured small.

The run's dodge: keep renaming a big folder (or file) to new names, so that a walk that lists a name and looks
at it later finds it gone. The invariant: every measure of such a tree is at least what the tree holds, or says
it cannot be measured (which cancels the run as `disk_quota`) — never a measure that leaves the bytes out."""
import contextlib
import errno
import os
import subprocess
import sys
import time

import pytest

from harness.core import tree_usage
from harness.runtime import disk_limits
from harness.runtime.disk_limits import DiskLimit, DiskWatch, measure, over_limit

BIG = 4 << 20

RENAMER = """
import os, sys, itertools
folder, name = sys.argv[1], sys.argv[2]
current = os.path.join(folder, name)
open(os.path.join(folder, 'ready'), 'w').close()
for i in itertools.count():
    new = os.path.join(folder, f'{name}-{i}')
    os.rename(current, new)
    current = new
"""


@pytest.fixture
def renaming(tmp_path):
    procs = []

    def start(folder, name):
        proc = subprocess.Popen([sys.executable, "-c", RENAMER, str(folder), name])
        procs.append(proc)
        deadline = time.monotonic() + 30
        while not (folder / "ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def tree_with_a_refused_folder(tmp_path, monkeypatch, name, code):
    """A tree whose folder NAME (holding BIG bytes) cannot be opened: errno CODE."""
    tree = tmp_path / "t"
    (tree / name).mkdir(parents=True)
    big_file(tree / name / "w.bin")
    real_open = os.open

    def refused(path, flags, *args, **kwargs):
        if path == name:
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(tree_usage.os, "open", refused)
    return tree


def big_file(path):
    with open(path, "wb") as f:
        f.write(os.urandom(BIG))


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_tree_renamed_under_the_walk_is_never_measured_small(tmp_path, renaming, what):
    tree = tmp_path / "checkpoints"
    (tree / "a" / "b").mkdir(parents=True)
    for i in range(300):  # siblings to walk past while the renames go on
        (tree / "a" / f"small{i}").write_text("x")
    if what == "folder":
        (tree / "a" / "b" / "moving" / "deep").mkdir(parents=True)
        big_file(tree / "a" / "b" / "moving" / "deep" / "weights.bin")
        renaming(tree / "a" / "b", "moving")
    else:
        big_file(tree / "a" / "b" / "weights.bin")
        renaming(tree / "a" / "b", "weights.bin")
    for _ in range(40):
        used = tree_usage.usage(tree, seconds=5)
        assert used.size >= BIG or (used.moved and used.retry and "moved" in used.why), used
    watch = DiskWatch(every=0.05)  # (2 s in the scheduler)
    watch.watch(1, [DiskLimit([tree], BIG // 2, "limits.checkpoint_bytes")])
    deadline = time.monotonic() + 60
    while watch.verdict(1) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.close()
    assert watch.verdict(1), "over the limit, or moving under every scan for seconds: cancelled either way"


def test_an_honest_rm_rf_during_a_measure_is_no_verdict(tmp_path):
    """Deleting a big tree (a dataset copy, a cache) makes entries vanish under every walk for a second or two:
    measured by the largest walk, a lower bound, under the limit — no verdict."""
    tree = tmp_path / "t"
    (tree / "cache").mkdir(parents=True)
    for i in range(100):
        (tree / "cache" / str(i)).mkdir()
        for j in range(100):
            (tree / "cache" / str(i) / str(j)).write_text("x")
    proc = subprocess.Popen(["rm", "-rf", str(tree / "cache")])
    results = []
    while proc.poll() is None:
        results.append(measure([DiskLimit([tree], 1 << 30, "limits.scratch_bytes")]))
    proc.wait()
    assert results and all(message is None for message, _ in results), results


def test_a_still_tree_is_measured_exactly(tmp_path):
    tree = tmp_path / "t"
    (tree / "x" / "y").mkdir(parents=True)
    big_file(tree / "x" / "y" / "w.bin")
    os.link(tree / "x" / "y" / "w.bin", tree / "x" / "again.bin")  # a hard link counts once
    (tree / "x" / "note").write_text("hello")
    (tree / "link").symlink_to("/usr")  # not followed
    used = tree_usage.usage(tree)
    assert used.complete and not used.moved
    assert used.size == BIG + 5 + len("/usr") and used.entries == 6


def test_bounds_say_which_one_was_reached(tmp_path):
    deep = tmp_path / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY)
    for _ in range(tree_usage.MAX_DEPTH + 5):  # made relative to each other: deeper than any path a run would name
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.close(fd)
    used = tree_usage.usage(deep)
    assert not used.complete and f"over {tree_usage.MAX_DEPTH} deep" in used.why
    wide = tmp_path / "wide"
    wide.mkdir()
    for i in range(50):
        (wide / str(i)).write_text("")
    used = tree_usage.usage(wide, max_entries=20)
    assert not used.complete and "over 20 files and folders" in used.why
    message = over_limit([DiskLimit([wide], 1 << 30, "limits.scratch_bytes")])
    assert message is None  # (the default entry bound is far above 50)


def test_a_folder_made_unreadable_makes_the_tree_unmeasurable(tmp_path, monkeypatch):
    """A harness that is not root cannot open a folder its run made `chmod 000` (root can: the open is refused
    here as it would be there)."""
    tree = tree_with_a_refused_folder(tmp_path, monkeypatch, "hidden", errno.EACCES)
    used = tree_usage.usage(tree)
    assert not used.complete and "'hidden' cannot be read (Permission denied)" in used.why
    assert "cannot be measured: 'hidden' cannot be read" in over_limit([DiskLimit([tree], 1 << 30, "x")])


def test_the_walk_leaves_no_access_time_to_watch_it_by(tmp_path):
    """Reading a folder sets its access time (relatime: when older than its change): a run polling that would
    know when the walk passes each folder, and move its bytes behind it."""
    tree = tmp_path / "t"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "f").write_text("x")
    for folder in (tree, tree / "a"):
        os.utime(folder, (1_000_000, time.time()))
    assert tree_usage.usage(tree).size == 1
    assert os.stat(tree).st_atime == os.stat(tree / "a").st_atime == 1_000_000


def test_the_harnesss_own_trouble_is_no_verdict_and_never_ends_the_watch(tmp_path, monkeypatch):
    """Out of file descriptors (a deep tree held open by several walks at once, or the harness's own load): no
    verdict on the run, measured again at the next scan; an error escaping a measure never stops the thread
    that watches every run."""
    real_open = os.open
    tree = tree_with_a_refused_folder(tmp_path, monkeypatch, "a", errno.EMFILE)
    used = tree_usage.usage(tree)
    assert used.retry and not used.complete
    assert over_limit([DiskLimit([tree], BIG * 2, "x")]) is None  # no verdict: not the run's doing
    monkeypatch.setattr(tree_usage.os, "open", real_open)

    calls = []

    def flaky(limits, pids, places):
        calls.append(limits)
        if len(calls) == 1:
            raise RuntimeError("a bug in measuring one run")
        return "over", False
    monkeypatch.setattr(disk_limits, "measure", flaky)
    watch = disk_limits.DiskWatch(every=0.05)
    watch.watch(1, [DiskLimit([tree], 1, "x")])
    deadline = time.monotonic() + 30
    while watch.verdict(1) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.close()
    assert watch.verdict(1) == "over" and len(calls) >= 2


def test_a_folder_swapped_for_a_link_as_it_is_measured_is_unmeasurable(tmp_path, monkeypatch):
    """A checkpoint folder checked to be a folder, then replaced by a link before the walk opens it: never
    measured as the link's few bytes."""
    tree = tmp_path / "ckpt"
    tree.mkdir()
    big_file(tree / "w.bin")
    real_lstat = os.lstat

    def swap_after_look(path, *args, **kwargs):
        st = real_lstat(path, *args, **kwargs)
        if str(path) == str(tree):
            os.rename(tree, tmp_path / "elsewhere")
            os.symlink("/usr", tree)
        return st
    monkeypatch.setattr(tree_usage.os, "lstat", swap_after_look)
    used = tree_usage.usage(tree)
    assert not used.complete and used.moved and "replaced" in used.why


def test_the_walk_order_is_drawn_anew_each_walk(tmp_path, monkeypatch):
    """Two folders side by side are walked in either order (a run moving its bytes into the folder walked
    already would have to guess which)."""
    tree = tmp_path / "t"
    for name in ("a", "b"):
        (tree / name).mkdir(parents=True)
    first = []
    real = tree_usage._listed

    def note(fd):
        names = real(fd)
        if sorted(names) == ["a", "b"]:
            first.append(names[-1])  # (the walk takes names from the end)
        return names
    monkeypatch.setattr(tree_usage, "_listed", note)
    for _ in range(64):
        tree_usage.usage(tree)
    assert set(first) == {"a", "b"}


@pytest.mark.skipif(os.geteuid() != 0, reason="control groups need root or a delegated subtree (CI runs as root)")
def test_a_run_in_control_groups_is_measured_frozen_so_nothing_moves_under_the_walk(tmp_path):
    """The renaming run of the first test, in control groups of its own (as the process runtime makes them):
    frozen while it is walked, every walk finds its bytes, whole, and nothing moves."""
    from harness.runtime import cgroups
    group = cgroups.create(tmp_path / "run", None, 64, None)
    assert group is not None
    tree = tmp_path / "checkpoints"
    (tree / "a" / "b" / "moving").mkdir(parents=True)
    big_file(tree / "a" / "b" / "moving" / "weights.bin")
    proc = subprocess.Popen(group.trampoline([sys.executable, "-c", RENAMER, str(tree / "a" / "b"), "moving"]))
    try:
        deadline = time.monotonic() + 30
        while not (tree / "a" / "b" / "ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(20):
            with group.still() as frozen:
                assert frozen
                used = tree_usage.usage(tree)
            assert used.complete and not used.moved and used.size >= BIG, used
        names = set(os.listdir(tree / "a" / "b"))
        time.sleep(0.2)
        assert names != set(os.listdir(tree / "a" / "b"))  # thawed after: it renames again
    finally:
        proc.kill()
        proc.wait()
        group.remove()


def test_a_container_is_frozen_while_its_folders_are_measured(docker_ready, state_root, tmp_path):
    """The docker runtime holds a container still as the process runtime holds its groups: through the group its
    engine made for it (found once, by the container's id), never docker's own pause, which a kill would meet."""
    from harness.core.settings import load_settings
    from harness.runtime.base import Mount, RunPaths, RunSpec
    from harness.runtime.docker_runtime import DockerRuntime
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("import itertools, os, time\nfor i in itertools.count():\n"
                                 "    open('/app/n.tmp', 'w').write(str(i)); os.replace('/app/n.tmp', '/app/n')\n"
                                 "    time.sleep(0.005)\n")
    spec = RunSpec(run_id=1, name="alice/t/1", argv=["main.py"], workdir=app, time_limit=120,
                   paths=RunPaths(run=tmp_path, log=tmp_path / "log"), mounts=[Mount(app, "/app", False)])
    handle = DockerRuntime(load_settings()).start(spec)
    try:
        deadline = time.monotonic() + 120
        while not (app / "n").exists():
            assert handle.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.05)
        assert handle.pids()
        with handle.held_still() as frozen:
            assert frozen
            before = (app / "n").read_text()
            time.sleep(0.3)
            assert (app / "n").read_text() == before
        time.sleep(0.3)
        assert (app / "n").read_text() != before  # thawed after
    finally:
        handle.cancel()
        assert handle.wait(60) is not None  # a kill is never held up by the freeze
        handle.close()


def test_movement_in_a_users_shared_folder_is_never_held_against_the_run_measured(tmp_path, renaming):
    """All of a user's sessions are measured together (limits.user_storage_bytes), with only the run being
    measured frozen: a sibling session that keeps moving its own files must not get this run cancelled as a tree
    moving under every walk (found by the attacker review)."""
    tree = tmp_path / "alice"
    (tree / "tiny" / "2" / "checkpoints").mkdir(parents=True)
    for i in range(300):  # siblings to walk past while the renames go on
        (tree / "tiny" / "2" / "checkpoints" / f"small{i}").write_text("x")
    (tree / "tiny" / "2" / "checkpoints" / "moving").mkdir()
    big_file(tree / "tiny" / "2" / "checkpoints" / "moving" / "w.bin")
    renaming(tree / "tiny" / "2" / "checkpoints", "moving")
    shared = DiskLimit([tree], BIG * 4, "limits.user_storage_bytes", shared_by="alice's sessions")
    for _ in range(20):
        assert measure([shared]) == (None, "")


def test_a_run_that_makes_its_measure_slow_is_still_measured_often_and_one_never_counted_is_cancelled(
        tmp_path, monkeypatch):
    """A run could make its own measure slow (tens of thousands of mappings in each of its processes: reading
    their maps takes seconds), and the spacing meant to bound the time it spends frozen then put its next measure
    minutes away, while it wrote freely (attacker review). The gap is capped at MAX_GAP; and a run whose open files
    cannot be counted within the budget in MOVING_SCANS scans in a row is cancelled, as one moving its trees is."""
    from harness.runtime import open_files
    tree = tmp_path / "t"
    tree.mkdir()
    calls = []
    real = disk_limits.measure

    def slow(limits, pids, places):
        calls.append(time.monotonic())
        time.sleep(0.1)  # (a fiftieth of its time: the next in 5 s, but for the cap)
        return None, ""
    monkeypatch.setattr(disk_limits, "measure", slow)
    monkeypatch.setattr(disk_limits, "MAX_GAP", 0.3)
    watch = DiskWatch(every=0.05)
    watch.watch(1, [DiskLimit([tree], BIG, "x")])
    time.sleep(2.0)
    watch.close()
    assert len(calls) >= 4, calls

    monkeypatch.setattr(disk_limits, "measure", real)
    monkeypatch.setattr(open_files, "held", lambda *a, **k: open_files.Held(complete=False))
    assert measure([DiskLimit([tree], BIG, "x")], [os.getpid()]) == (None, disk_limits.UNCOUNTED)
    watch = DiskWatch(every=0.05)
    watch.watch(2, [DiskLimit([tree], BIG, "x")], type("H", (), {"held_still": contextlib.nullcontext,
                                                                "pids": lambda self: [os.getpid()],
                                                                "places": lambda self: None})())
    deadline = time.monotonic() + 30
    while watch.verdict(2) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.close()
    assert watch.verdict(2) == f"{disk_limits.UNCOUNTED} of {disk_limits.MOVING_SCANS} scans in a row: the run's " \
                               f"disk cannot be checked"


def test_a_run_whose_measure_is_slow_never_delays_the_other_runs_measures(tmp_path, monkeypatch):
    """One thread measured every run in turn: a run that made its own measure take 10-15 s delayed every other run's
    by as much, scan after scan (attacker review). WATCHERS runs are measured at once, and a run being measured is
    never queued twice."""
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    slow.mkdir()
    fast.mkdir()
    calls = {slow: [], fast: []}

    def measured(limits, pids, places):
        path = limits[0].paths[0]
        calls[path].append(time.monotonic())
        if path == slow:
            time.sleep(3.0)
        return None, ""
    monkeypatch.setattr(disk_limits, "measure", measured)
    watch = DiskWatch(every=0.05)
    watch.watch(1, [DiskLimit([slow], BIG, "x")])
    watch.watch(2, [DiskLimit([fast], BIG, "x")])
    time.sleep(2.5)
    watch.close()
    assert len(calls[slow]) == 1 and len(calls[fast]) >= 5, {p.name: len(c) for p, c in calls.items()}


def test_a_folder_gone_between_its_look_and_its_walk_is_no_verdict(tmp_path, monkeypatch):
    """The harness removes an ended run's folders while a watcher may be measuring it: a folder that is gone by
    the time the walk opens it is measured again later (as one not there), never `cannot be measured`."""
    tree = tmp_path / "tmp"
    tree.mkdir()
    real_lstat = os.lstat

    def remove_after_look(path, *args, **kwargs):
        st = real_lstat(path, *args, **kwargs)
        if str(path) == str(tree):
            tree.rmdir()
        return st
    monkeypatch.setattr(tree_usage.os, "lstat", remove_after_look)
    used = tree_usage.usage(tree)
    assert used.retry and not used.complete
    assert measure([DiskLimit([tree], BIG, "limits.scratch_bytes")])[0] is None
