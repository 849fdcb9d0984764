"""Environments the harness builds for a participant's requirements (runtime.env_store): each build is bounded in
time and bytes (its process group stopped, its folders removed, one line naming the setting), and what a built
environment holds is charged to the user whose run built it, within `limits.user_storage_bytes` — their own
unused environments make room first, one that a run uses is never removed. Other users are served throughout."""
import contextlib
import fcntl
import os
import sys
import time

import pytest
from helpers import NSML_MAIN, participant, run_session
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from test_docker_runtime import docker_client  # noqa: F401 (a fixture)

from harness.core.errors import UserError
from harness.core.settings import load_settings
from harness.runs.create import check_storage, storage_changed
from harness.runtime import env_builds, env_store, environments
from harness.store.engine import open_store

MAIN = '''
import argparse
import numpy
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
print("numpy", numpy.__version__)
'''


def _code(folder, requirements="numpy\n"):
    code = participant(folder, MAIN)
    (code / "requirements.txt").write_text(requirements)  # (satisfied by the harness's own numpy: nothing fetched)
    return code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z")


def test_a_step_past_its_bytes_is_stopped_with_its_whole_group(tmp_path):
    folder, pidfile = tmp_path / "env", tmp_path / "child"
    folder.mkdir()
    writer = (f"import os, subprocess, sys, time\n"  # a child left behind, then a folder that keeps growing
              f"open({str(pidfile)!r}, 'w').write(str(subprocess.Popen(['sleep', '300']).pid))\n"
              f"for i in range(10**6):\n"
              f"    open(os.path.join({str(folder)!r}, str(i)), 'wb').write(os.urandom(1 << 20)); time.sleep(0.05)\n")
    started = time.monotonic()
    with pytest.raises(UserError) as refused:
        env_builds.bounded_step([sys.executable, "-c", writer], "installing", "requirements.txt",
                               env_builds.Bounds(bytes=20 << 20, seconds=60), [folder])
    said = str(refused.value)
    assert said.startswith("requirements.txt: installing stopped:") and "limits.env_bytes = 20971520" in said
    assert "\n" not in said and time.monotonic() - started < 30
    assert not _alive(int(pidfile.read_text()))  # the step's group went with it


def test_a_step_past_its_time_is_stopped(tmp_path):
    started = time.monotonic()
    with pytest.raises(UserError, match=r"still running after limits.env_build_seconds = 1 s"):
        env_builds.bounded_step(["sleep", "60"], "installing", "requirements.txt", env_builds.Bounds(seconds=1))
    assert time.monotonic() - started < 10


def test_a_failed_step_is_one_line_with_the_tools_last_words(tmp_path):
    with pytest.raises(UserError) as failed:
        env_builds.bounded_step([sys.executable, "-c", "import sys; print('no such package: x', file=sys.stderr); "
                                "sys.exit(2)"], "installing", "requirements.txt", env_builds.Bounds())
    assert str(failed.value) == "requirements.txt: installing failed: no such package: x"


def test_run_past_env_bytes_is_refused_and_leaves_nothing(cli, tiny_task, tmp_path, state_root):
    (state_root / "harness.toml").write_text("[limits]\nenv_bytes = 4096\n")
    r = cli("run", "-d", "tiny", _code(tmp_path / "big"), code=2)
    assert "limits.env_bytes = 4096" in r.stderr and "requirements.txt" in r.stderr and "Traceback" not in r.output
    envs = state_root / ".harness" / "envs"
    assert not [p.name for p in envs.iterdir() if not p.name.endswith((".lock", ".use", ".users", ".builders"))]  # no folder,
    assert not list((envs / ".users").glob("alice/*"))  # no cache, no charge
    assert not list((state_root / ".harness" / "sessions").rglob("code"))  # and no session
    (state_root / "harness.toml").write_text("")
    assert "numpy" in cli("logs", run_session(cli, _code(tmp_path / "fine"))).stdout  # the same code, allowed


def _use(settings, user, **kw):
    return environments.Use(env_builds.Bounds.of(settings, user), **kw)


def test_environments_count_toward_the_storage_of_every_user_who_uses_them(tmp_path, state_root):
    settings = load_settings()
    envs, store = settings.envs_dir, open_store(settings.db_url)
    first = environments.for_code(envs, _code(tmp_path / "a"), None, use=_use(settings, "alice"))
    charged = env_store.charged(envs, "alice")
    assert [key for _, key, _ in charged] == [first.key] and charged[0][2] > 100_000
    size = charged[0][2]
    assert env_store.charged(envs, "bob") == []
    again = environments.for_code(envs, _code(tmp_path / "b"), None, use=_use(settings, "bob"))
    assert again.key == first.key and [c[1:] for c in env_store.charged(envs, "bob")] == [(first.key, size)]

    settings.user_storage_bytes = size  # the environment alone fills a user's storage
    check_storage(settings, "alice", store)  # alice's charge goes; bob still uses it, so it stays
    assert env_store.charged(envs, "alice") == [] and (envs / f"{first.key}.ready").exists()
    held = environments.for_code(envs, _code(tmp_path / "c"), None, use=_use(settings, "bob", hold=True))
    with pytest.raises(UserError, match="environments of your requirements that runs use now"):
        check_storage(settings, "bob", store)  # his run holds it: never removed from under a run
    assert (envs / f"{first.key}.ready").exists()
    check_storage(settings, "carol", store)  # others are served
    held.release()
    storage_changed(settings, "bob")
    check_storage(settings, "bob", store)  # unused now and nobody else's: removed to make room, and he is let in
    assert not (envs / first.key).exists() and env_store.charged(envs, "bob") == []
    assert not list(envs.glob(f"{first.key}*"))  # its lock files too
    rebuilt = environments.for_code(envs, _code(tmp_path / "d"), None, use=_use(settings, "bob"))
    assert rebuilt.key == first.key and (envs / f"{first.key}.ready").exists()  # used again: built again


def test_a_launch_never_builds_and_one_user_builds_one_at_a_time(tmp_path, state_root):
    settings = load_settings()
    envs = settings.envs_dir
    with pytest.raises(UserError, match="requirements.txt: the environment for these requirements is not on this "
                                        "machine now"):
        environments.for_code(envs, _code(tmp_path / "a"), None, use=_use(settings, "alice", hold=True, build=False))
    with env_store.building(envs, "alice", "x"):  # alice's first build is still going
        with pytest.raises(UserError, match="requirements.txt: another environment of yours is being built now"):
            environments.for_code(envs, _code(tmp_path / "b"), None, use=_use(settings, "alice"))
        environments.for_code(envs, _code(tmp_path / "c"), None, use=_use(settings, "bob"))  # others build
    found = environments.for_code(envs, _code(tmp_path / "d"), None, use=_use(settings, "alice", hold=True,
                                                                               build=False))
    assert found.held is not None and not env_store.remove_unused(envs, found.key)
    found.release()


def test_a_million_empty_files_are_not_free_and_output_is_measured(tmp_path):
    env = tmp_path / "env"
    many = f"import os\nfor i in range(60000): open(os.path.join({str(env)!r}, str(i)), 'w').close()\n"
    with pytest.raises(UserError, match="limits.env_bytes = 500000000"):  # 60,000 entries at 16 KiB each
        env_builds.bounded_step([sys.executable, "-c", many], "installing", "requirements.txt",
                                env_builds.Bounds(bytes=500_000_000), [env], env)
    loud = "import sys\nwhile True: sys.stdout.write('x' * 65536)\n"
    with pytest.raises(UserError, match="limits.env_bytes = 20000000"):  # its output is its own disk
        env_builds.bounded_step([sys.executable, "-c", loud], "installing", "requirements.txt",
                                env_builds.Bounds(bytes=20_000_000, seconds=60), [tmp_path / "env2"],
                                tmp_path / "env2")


def test_forged_charges_are_ignored(tmp_path, state_root):
    envs = load_settings().envs_dir
    folder = envs / ".users" / "mallory"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "0123456789abcdef")  # would block a reader
    (envs / "0123456789abcdef").mkdir()
    (envs / "0123456789abcdef.ready").write_text("7")
    (folder / "evaluator-0123456789abcdef").write_text("1")
    (envs / "evaluator-0123456789abcdef").mkdir()
    (envs / "evaluator-0123456789abcdef.ready").write_text("1")
    assert env_store.charged(envs, "mallory") == [(pytest.approx(time.time(), abs=60), "0123456789abcdef", 0)]
    env_store.evict(envs, "mallory", 1 << 40)
    assert (envs / "evaluator-0123456789abcdef.ready").exists()  # an organizer's: never a user's to evict


def test_collection_leaves_a_held_environment_and_takes_dead_builds(tmp_path, state_root):
    envs = load_settings().envs_dir
    held = environments.for_code(envs, _code(tmp_path / "a"), None, use=environments.Use(hold=True))
    old = time.time() - 30 * 86400
    os.utime(envs / f"{held.key}.ready", (old, old))
    (envs / "deadbeef00000000").mkdir()  # a build that died half-way, and its cache
    (envs / "deadbeef00000000.cache").mkdir()
    (envs / "deadbeef00000000.lock").touch()
    assert env_store.collect_garbage(envs) == ["deadbeef00000000"]
    assert (envs / f"{held.key}.ready").exists() and not (envs / "deadbeef00000000.cache").exists()
    held.release()
    assert env_store.collect_garbage(envs) == [held.key] and not (envs / held.key).exists()


def test_a_run_holds_its_environment_until_it_ends(cli, tiny_task, tmp_path, state_root):
    code = participant(tmp_path / "slow", MAIN.replace('print("numpy"', 'import time; print("started", flush=True); '
                                                                       'time.sleep(6); print("numpy"'))
    (code / "requirements.txt").write_text("numpy\n")
    name = cli("run", "-d", "tiny", code).stdout.split()[1]
    envs = state_root / ".harness" / "envs"
    key = next(envs.glob("*.ready")).name.removesuffix(".ready")
    deadline = time.monotonic() + 30
    while "started" not in cli("logs", name).stdout:  # (its code runs: launched, and holding its environment)
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not env_store.remove_unused(envs, key)  # running: held
    cli("logs", "-f", name)
    deadline = time.monotonic() + 20
    while not env_store.remove_unused(envs, key):  # ended: released with its handle
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.fixture
def slow_or_big(monkeypatch, tmp_path, docker_client):  # noqa: F811
    """A derived image's install step replaced by one that is slow or big (requirement lines cannot say so)."""
    from harness.runtime import images
    code = _code(tmp_path / "docker", f"numpy!=0.{time.time_ns()}\n")  # a hash never built before

    def build(script, bounds):
        monkeypatch.setattr(images, "INSTALL_SCRIPT", script)
        return images.session_image(docker_client, code, None, "nsml-harness/session:latest", bounds=bounds)
    return build


def test_a_derived_image_past_its_time_is_stopped(slow_or_big):
    from harness.runtime.images import ImageError
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"stopped: still running after limits.env_build_seconds = 2 s"):
        slow_or_big("sleep 120 # {binary}\n", env_builds.Bounds(seconds=2))
    assert time.monotonic() - started < 60


def test_a_derived_image_past_its_bytes_is_removed(slow_or_big, docker_client):  # noqa: F811
    from harness.runtime.images import ImageError
    before = {i.id for i in docker_client.images.list(name="nsml-harness/env")}
    with pytest.raises(ImageError, match=r"it wrote \d+ bytes .*, over limits.env_bytes = 10000000"):
        slow_or_big("head -c 30000000 /dev/urandom > /big.bin # {binary}\n", env_builds.Bounds(bytes=10_000_000))
    assert {i.id for i in docker_client.images.list(name="nsml-harness/env")} == before  # not kept
    tag = slow_or_big("true # {binary}\n", env_builds.Bounds(bytes=10_000_000, seconds=60))  # within both: built
    assert tag.startswith("nsml-harness/env:")
    docker_client.images.remove(tag, force=True)


def test_a_sessions_build_sees_nothing_of_the_harness(tmp_path):
    """A source build runs a package's own code: confined, it reads no task labels, writes only its own folders,
    and its /tmp is one of them (measured, removed with the build)."""
    from harness.runtime import sandbox
    if not sandbox.works():
        pytest.skip("needs bubblewrap (CI installs it)")
    labels = tmp_path / "state" / "datasets" / "tiny" / "test_label"
    labels.parent.mkdir(parents=True)
    labels.write_text("the answers\n")
    env = tmp_path / "state" / "envs" / "k"
    os.environ["HARNESS_DB"] = "postgresql://harness:secret@127.0.0.1/db"  # (the service's own: never a build's)
    probe = (f"import os\n"
             f"out = [sorted(k for k in os.environ if k.startswith(('HARNESS', 'AWS', 'RAY')))]\n"
             f"try: open('/dev/planted', 'w'); out.append('wrote')\n"
             f"except OSError as e: out.append(type(e).__name__)\n"
             f"for path in ({str(labels)!r}, '/root/.ssh/id_rsa'):\n"
             f"    try: out.append(open(path).read())\n"
             f"    except OSError as e: out.append(type(e).__name__)\n"
             f"for path in ({str(tmp_path / 'outside')!r}, {str(env / 'inside')!r}, '/tmp/scratch'):\n"
             f"    try: open(path, 'w').write('x'); out.append('wrote')\n"
             f"    except OSError as e: out.append(type(e).__name__)\n"
             f"open({str(env / 'report')!r}, 'w').write(repr(out))\n")
    try:
        env_builds.bounded_step([sys.executable, "-c", probe], "building", "requirements.txt",
                                env_builds.Bounds(bytes=1 << 30, confined=True), [env], env)
    finally:
        del os.environ["HARNESS_DB"]
    seen, dev, *report = eval((env / "report").read_text())
    assert seen == [] and dev != "wrote"  # no secret of the harness's; /dev read-only (unmeasured tmpfs)
    assert report[0] in ("FileNotFoundError", "PermissionError") and report[1] in ("FileNotFoundError",
                                                                                   "PermissionError")
    assert report[3:] == ["wrote", "wrote"], report  # (a write elsewhere lands in its own /tmp, or fails)
    assert not (tmp_path / "outside").exists() and (env_builds.tmp_of(env) / "scratch").exists()
    assert (env / "inside").exists()


def test_a_crowd_of_builders_holds_at_most_max_builds(tmp_path, state_root):
    envs = load_settings().envs_dir
    with contextlib.ExitStack() as stack:
        for i in range(env_store.MAX_BUILDS):
            stack.enter_context(env_store.building(envs, f"user{i}", "x"))
        with pytest.raises(UserError, match=r"requirements.txt: 4 environments are being built now"):
            environments.for_code(envs, _code(tmp_path / "a"), None,
                                  use=environments.Use(env_builds.Bounds(owner="late")))
    environments.for_code(envs, _code(tmp_path / "b"), None, use=environments.Use(env_builds.Bounds(owner="late")))


def test_derived_images_are_charged_and_go_only_when_no_container_uses_them(cli, tiny_task, tmp_path, state_root,
                                                                         docker_client, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HARNESS_RUNTIME", "docker")
    run_session(cli, _code(tmp_path / "d", f"numpy!=0.{time.time_ns()}\n"))  # a new derived image
    envs = load_settings().envs_dir
    [(_, key, size)] = env_store.charged(envs, "alice")
    tag = "nsml-harness/env:" + key.removeprefix("image-")
    assert key.startswith("image-") and size >= 0 and docker_client.images.get(tag)
    container = docker_client.containers.create(tag, command=["true"])  # something still uses it
    try:
        assert env_store.evict(envs, "alice", 1) == 0 and docker_client.images.get(tag)
    finally:
        container.remove(force=True)
    assert env_store.evict(envs, "alice", 1) == size and env_store.charged(envs, "alice") == []
    with pytest.raises(Exception, match="No such image|not found"):
        docker_client.images.get(tag)


def test_a_stamp_planted_by_the_build_is_never_followed(tmp_path, state_root):
    envs = load_settings().envs_dir
    victim = tmp_path / "victim"
    victim.write_text("the harness's file\n")

    def hostile(env):  # what a wheel's data files or a source build may leave in the folder it builds
        env.mkdir(parents=True)
        (env / ".ready").symlink_to(victim)
        (env / "bin").mkdir()
    env, _ = environments._built_once(envs, "00000000000000aa", hostile,
                                      environments.Use(env_builds.Bounds(owner="mallory")), "requirements.txt")
    assert victim.read_text() == "the harness's file\n"  # never written through
    assert env_store.used_at(envs, "00000000000000aa") is not None and (envs / "00000000000000aa.ready").is_file()
    assert env_store.charged(envs, "mallory")[0][2] > 0  # charged what it holds, not what a link says


def test_another_build_of_the_same_environment_is_waited_on_briefly(tmp_path, state_root, monkeypatch):
    monkeypatch.setattr(environments, "LOCK_WAIT", 0.5)
    envs = load_settings().envs_dir
    code = _code(tmp_path / "a")
    key = environments.env_hash(environments.wanted(code), False)
    envs.mkdir(parents=True)
    with env_store.locked(envs / f"{key}.lock", fcntl.LOCK_EX):  # another request is building it
        with pytest.raises(UserError, match="being built for another run now: run again when it is done"):
            environments.for_code(envs, code, None, use=environments.Use(env_builds.Bounds(owner="bob")))
    environments.for_code(envs, code, None, use=environments.Use(env_builds.Bounds(owner="bob")))


def _removed_soon(envs, key, within=15.0) -> bool:
    end = time.monotonic() + within
    while not env_store.remove_unused(envs, key):
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def test_submit_and_fork_build_an_environment_that_went(cli, tiny_task, tmp_path, state_root):
    code = participant(tmp_path / "p", NSML_MAIN)
    (code / "requirements.txt").write_text("numpy\n")
    name = run_session(cli, code)
    envs = state_root / ".harness" / "envs"
    [key] = [p.name.removesuffix(".ready") for p in envs.glob("*.ready")]
    # evicted, or collected, after the session ended (the scheduler lets go of it right after recording the end)
    assert _removed_soon(envs, key)
    r = cli("submit", name, "nope", code=2)
    assert "has no checkpoint 'nope'" in r.stderr and not list(envs.glob("*.ready"))  # checked before any build
    (state_root / "harness.toml").write_text("[limits]\nuser_storage_bytes = 1000\n")
    r = cli("submit", name, "1", code=2)  # a build needs room in the user's storage; a reuse would not
    assert "limits.user_storage_bytes = 1000" in r.stderr and not list(envs.glob("*.ready"))
    (state_root / "harness.toml").write_text("")
    storage_changed(load_settings(), "alice")
    assert cli("submit", name, "1").stdout.splitlines()[-1] == "Done"  # built again before the submit queued
    assert _removed_soon(envs, key)
    forked = cli("fork", name, "-c", "1").stdout.split()[1]
    cli("logs", "-f", forked)
    assert [r for r in cli.json("ps", "-a") if r["name"] == forked][0]["status"] == "succeeded"


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["use", "hold", "release", "evict", "collect"]),
                          st.sampled_from(["alice", "bob"]), st.integers(0, 2)), max_size=30))
def test_no_sequence_of_uses_evictions_and_collections_removes_what_a_run_holds(tmp_path_factory, ops):
    """Fuzzed over the store's operations by two users on three environments: an environment a run holds is
    never removed, every charge names an environment that is there, and each user is charged at most once each."""
    envs = tmp_path_factory.mktemp("envs")
    keys = [f"{i:016x}" for i in range(3)]
    held: list[tuple[str, object]] = []

    def build(env):
        env.mkdir(parents=True)
        (env / "lib.so").write_bytes(b"x" * 5000)
    for op, user, k in ops:
        key = keys[k]
        if op in ("use", "hold"):
            _, fh = environments._built_once(envs, key, build, environments.Use(env_builds.Bounds(owner=user),
                                                                               hold=op == "hold"), "requirements.txt")
            if fh is not None:
                held.append((key, fh))
        elif op == "release" and held:
            held.pop(0)[1].close()
        elif op == "evict":
            env_store.evict(envs, user, 1 << 40)
        elif op == "collect":
            env_store.collect_garbage(envs, max_age_days=0)  # (everything is old)
        for key_held, _ in held:
            assert (envs / key_held / "lib.so").exists() and env_store.used_at(envs, key_held) is not None
        for name in ("alice", "bob"):
            charges = env_store.charged(envs, name)
            assert all(env_store.used_at(envs, c[1]) is not None for c in charges)
            assert len({c[1] for c in charges}) == len(charges)
    for _, fh in held:
        fh.close()


def test_runs_launching_at_once_share_one_derived_image_stamp(tmp_path, state_root):
    from concurrent.futures import ThreadPoolExecutor
    envs = load_settings().envs_dir
    tag = "nsml-harness/env:00000000000000bb"
    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(lambda i: env_store.use_image(envs, tag, 1000, f"user{i % 4}"), range(200)))
    assert set(keys) == {"image-00000000000000bb"}
    assert [c[1:] for c in env_store.charged(envs, "user3")] == [("image-00000000000000bb", 1000)]


def test_a_scheduler_that_never_stops_collects_old_environments_hourly(tmp_path, state_root, monkeypatch):
    """At its first tick, then each env_store.COLLECT_EVERY seconds while it lasts (a busy contest's scheduler
    may never be idle long enough to stop and start again)."""
    from harness.scheduler.loop import Scheduler
    from harness.store.engine import open_store
    settings = load_settings()
    envs = settings.envs_dir
    for key in ("deadbeef00000001", "deadbeef00000002"):
        (envs / key).mkdir(parents=True)  # (builds that died half-way: nothing holds them)
        (envs / f"{key}.lock").touch()
    monkeypatch.setitem(env_store._collected, envs, time.monotonic() - env_store.COLLECT_EVERY - 1)
    scheduler = Scheduler(settings, open_store(settings.db_url))
    try:
        scheduler.recover()
        scheduler.tick()
        scheduler.pool.shutdown(wait=True)
        assert not (envs / "deadbeef00000001").exists()
        (envs / "deadbeef00000003").mkdir()
        (envs / "deadbeef00000003.lock").touch()
        scheduler.pool = type(scheduler.pool)(max_workers=1)
        scheduler._last_heartbeat = 0.0
        scheduler.tick()  # (within the hour: not yet)
        scheduler.pool.shutdown(wait=True)
        assert (envs / "deadbeef00000003").exists()
        monkeypatch.setitem(env_store._collected, envs, time.monotonic() - env_store.COLLECT_EVERY - 1)
        scheduler.pool = type(scheduler.pool)(max_workers=1)
        scheduler._last_heartbeat = 0.0
        scheduler.tick()
        scheduler.pool.shutdown(wait=True)
        assert not (envs / "deadbeef00000003").exists()
    finally:
        scheduler.pool.shutdown(wait=False)
