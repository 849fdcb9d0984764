"""Environments the harness builds for a participant's requirements (runtime.env_store): each build is bounded in
time and bytes (its process group stopped, its folders removed, one line naming the setting), and what a built
environment holds is charged to the user whose run built it, within `limits.user_storage_bytes` — their own
unused environments make room first, one that a run uses is never removed. Other users are served throughout."""
import os
import sys
import time

import pytest
from helpers import participant, run_session
from test_docker_runtime import docker_client  # noqa: F401 (a fixture)

from harness.core.errors import UserError
from harness.core.settings import load_settings
from harness.runs.create import check_storage
from harness.runtime import env_store, environments

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
        env_store.bounded_step([sys.executable, "-c", writer], "installing", "requirements.txt",
                               env_store.Bounds(bytes=20 << 20, seconds=60), [folder])
    said = str(refused.value)
    assert said.startswith("requirements.txt: installing stopped:") and "limits.env_bytes = 20971520" in said
    assert "\n" not in said and time.monotonic() - started < 30
    assert not _alive(int(pidfile.read_text()))  # the step's group went with it


def test_a_step_past_its_time_is_stopped(tmp_path):
    started = time.monotonic()
    with pytest.raises(UserError, match=r"still running after limits.env_build_seconds = 1 s"):
        env_store.bounded_step(["sleep", "60"], "installing", "requirements.txt", env_store.Bounds(seconds=1))
    assert time.monotonic() - started < 10


def test_a_failed_step_is_one_line_with_the_tools_last_words(tmp_path):
    with pytest.raises(UserError) as failed:
        env_store.bounded_step([sys.executable, "-c", "import sys; print('no such package: x', file=sys.stderr); "
                                "sys.exit(2)"], "installing", "requirements.txt", env_store.Bounds())
    assert str(failed.value) == "requirements.txt: installing failed: no such package: x"


def test_run_past_env_bytes_is_refused_and_leaves_nothing(cli, tiny_task, tmp_path, state_root):
    (state_root / "harness.toml").write_text("[limits]\nenv_bytes = 4096\n")
    r = cli("run", "-d", "tiny", _code(tmp_path / "big"), code=2)
    assert "limits.env_bytes = 4096" in r.stderr and "requirements.txt" in r.stderr and "Traceback" not in r.output
    envs = state_root / ".harness" / "envs"
    assert not [p.name for p in envs.iterdir() if not p.name.endswith((".lock", ".use"))]  # no folder, no cache
    assert not list((state_root / ".harness" / "sessions").rglob("code"))  # and no session
    (state_root / "harness.toml").write_text("")
    assert "numpy" in cli("logs", run_session(cli, _code(tmp_path / "fine"))).stdout  # the same code, allowed


def test_environments_count_toward_their_builders_storage(tmp_path, state_root):
    settings = load_settings()
    settings.user_storage_bytes = 1 << 30
    first = environments.for_code(settings.envs_dir, _code(tmp_path / "a"), None,
                                  bounds=env_store.Bounds.of(settings, "alice"))
    charged = env_store.charged(settings.envs_dir, "alice")
    assert [key for _, key, _ in charged] == [first.key] and charged[0][2] > 100_000
    assert env_store.charged(settings.envs_dir, "bob") == []
    again = environments.for_code(settings.envs_dir, _code(tmp_path / "b"), None,
                                  bounds=env_store.Bounds.of(settings, "bob"))  # bob reuses it: not charged twice
    assert again.key == first.key and env_store.charged(settings.envs_dir, "bob") == []

    settings.user_storage_bytes = charged[0][2]  # alice's environment alone fills her storage
    held = environments.for_code(settings.envs_dir, _code(tmp_path / "c"), None, hold=True,
                                 bounds=env_store.Bounds.of(settings, "alice"))  # a run of hers uses it
    with pytest.raises(UserError, match="environments built for your requirements that your runs use now"):
        check_storage(settings, "alice")
    assert (settings.envs_dir / first.key / ".ready").exists()  # never removed from under a run
    check_storage(settings, "bob")  # others are served
    held.release()
    from harness.runs.create import storage_freed
    storage_freed(settings, "alice")
    check_storage(settings, "alice")  # unused now: removed to make room, and she is let in
    assert not (settings.envs_dir / first.key).exists() and env_store.charged(settings.envs_dir, "alice") == []
    rebuilt = environments.for_code(settings.envs_dir, _code(tmp_path / "d"), None,
                                    bounds=env_store.Bounds.of(settings, "bob"))  # used again: built again
    assert rebuilt.key == first.key and (settings.envs_dir / first.key / ".ready").exists()


def test_collection_leaves_a_held_environment_and_takes_dead_builds(tmp_path, state_root):
    envs = load_settings().envs_dir
    held = environments.for_code(envs, _code(tmp_path / "a"), None, hold=True)
    old = time.time() - 30 * 86400
    os.utime(envs / held.key / ".ready", (old, old))
    (envs / "deadbeef00000000").mkdir()  # a build that died half-way, and its cache
    (envs / "deadbeef00000000.cache").mkdir()
    (envs / "deadbeef00000000.lock").touch()
    assert env_store.collect_garbage(envs) == ["deadbeef00000000"]
    assert (envs / held.key / ".ready").exists() and not (envs / "deadbeef00000000.cache").exists()
    held.release()
    assert env_store.collect_garbage(envs) == [held.key] and not (envs / held.key).exists()


def test_a_run_holds_its_environment_until_it_ends(cli, tiny_task, tmp_path, state_root):
    code = participant(tmp_path / "slow", MAIN.replace('print("numpy"', 'import time; time.sleep(6); print("numpy"'))
    (code / "requirements.txt").write_text("numpy\n")
    name = cli("run", "-d", "tiny", code).stdout.split()[1]
    envs = state_root / ".harness" / "envs"
    key = next(envs.glob("*/.ready")).parent.name
    deadline = time.monotonic() + 30
    while cli.json("ps", "-a")[0]["status"] != "running":
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
        slow_or_big("sleep 120 # {binary}\n", env_store.Bounds(seconds=2))
    assert time.monotonic() - started < 60


def test_a_derived_image_past_its_bytes_is_removed(slow_or_big, docker_client):  # noqa: F811
    from harness.runtime.images import ImageError
    before = {i.id for i in docker_client.images.list(name="nsml-harness/env")}
    with pytest.raises(ImageError, match=r"they add \d+ bytes to the image, over limits.env_bytes = 10000000"):
        slow_or_big("head -c 30000000 /dev/urandom > /big.bin # {binary}\n", env_store.Bounds(bytes=10_000_000))
    assert {i.id for i in docker_client.images.list(name="nsml-harness/env")} == before  # not kept
    tag = slow_or_big("true # {binary}\n", env_store.Bounds(bytes=10_000_000, seconds=60))  # within both: built
    assert tag.startswith("nsml-harness/env:")
    docker_client.images.remove(tag, force=True)
