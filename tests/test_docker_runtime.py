"""The docker runtime, for real: a Docker engine and the offline session image (scripts/setup-docker.sh).

In CI these tests never skip: a missing engine or image fails them.
"""
import json
import os
import time

import pytest
from helpers import ORGANIZER, REPO, participant, run_session

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def docker_client():
    from harness.runtime.docker_runtime import client, engine_answers
    if not engine_answers():
        if os.environ.get("CI"):
            pytest.fail("CI must provide a Docker engine (scripts/setup-docker.sh)")
        pytest.skip("no Docker engine answers (scripts/setup-docker.sh starts one)")
    c = client()
    try:
        c.images.get("nsml-harness/session:latest")
    except Exception:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail("CI must build nsml-harness/session:latest (scripts/setup-docker.sh)")
        pytest.skip("no nsml-harness/session:latest image (scripts/setup-docker.sh builds it)")
    return c


@pytest.fixture
def docker_root(state_root, docker_client, monkeypatch):
    monkeypatch.setenv("HARNESS_RUNTIME", "docker")
    return state_root


def _settings(root, **docker):
    lines = ["[docker]"] + [f"{k} = {json.dumps(v)}" for k, v in docker.items()]
    (root / "harness.toml").write_text("\n".join(lines) + "\n")


def _ps(cli, name):
    return [r for r in cli.json("ps", "-a") if r["name"] == name][0]


def test_garbage_docs_baselines_run_submit_rank_in_containers(cli, docker_root, docker_client):
    cli("dataset", "prepare", "garbage-docs", "--scale", "0.2", user=ORGANIZER)
    names = {}
    for user, baseline, args in (("maj", "garbage_docs_majority", ""),
                                 ("lstm", "garbage_docs_lstm", "--epochs 1 --hidden_dim 16 --max_words 50")):
        out = cli("run", "-d", "garbage-docs", "-e", "main.py", "-a", args, REPO / "submissions" / baseline,
                  user=user).stdout
        name = out.split()[1]
        cli("logs", "-f", name, user=user)
        result = cli.json("submit", name, "0", user=user)
        assert result["status"] == "succeeded", result
        names[user] = (name, result["score"])
        from harness.state import Harness
        from harness.store.models import Submission
        h = Harness()
        with h.tx() as db:  # provenance names the image the code ran in, by id
            prov = db.get(Submission, result["id"]).provenance
        h.store.close()
        assert prov["runtime"] == "docker" and "(sha256:" in prov["environment"], prov
        assert prov["code"].startswith("sha256:") and prov["evaluator"].startswith("sha256:")
    assert names["maj"][1] == 0.5
    board = cli.json("board", "garbage-docs")
    assert {r["user"] for r in board} == {"maj", "lstm"}
    assert _no_containers(docker_client, lambda c: c.labels.get("nsml-harness.session", "").startswith(
        ("maj/", "lstm/")), {"label": "nsml-harness.instance"})


def _no_containers(docker_client, which, filters, timeout=30.0) -> bool:
    """No container left (a run's container is removed just after its outcome is recorded: wait for that)."""
    deadline = time.time() + timeout
    while [c for c in docker_client.containers.list(all=True, ignore_removed=True, filters=filters) if which(c)]:
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


HOSTILE = r'''
import argparse, os, socket, sys, time
import nsml
from nsml import DATASET_PATH

p = argparse.ArgumentParser()
p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
p.add_argument("--iteration", default="0"); p.add_argument("--attack", default="none")
cfg = p.parse_args()

def try_write(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__

def infer(path, **kw):
    n = len(open(path).read().split())
    if cfg.attack == "labels":
        found = [os.path.join(d, f) for root in ("/data", "/nsml", "/app", "/tmp")
                 for d, _, fs in os.walk(root) for f in fs if "label" in f]
        print("label files:", found, "exists:", os.path.exists(os.path.join(DATASET_PATH, "test", "test_label")))
    if cfg.attack == "big_prediction":
        with open(os.environ["NSML_OUTPUT_FILE"], "wb") as fh:
            chunk = b"0" * (1 << 20)
            for _ in range(10 * 1024):  # 10 GB
                fh.write(chunk)
    if cfg.attack == "write_outside":  # in the submit run
        for path in ("/nsml/checkpoints/0/x", os.path.join(DATASET_PATH, "test", "x"), "/nsml/loader/x"):
            print("write", path, try_write(path))
    return [0] * n

nsml.bind(save=lambda d: open(os.path.join(d, "m"), "w").write("x"), load=lambda d: None, infer=infer)
if cfg.pause:
    nsml.paused(scope=locals())
if cfg.mode == "train":
    nsml.save(0)
    if cfg.attack == "network":
        for host, port in (("127.0.0.1", 22), ("1.1.1.1", 443), ("8.8.8.8", 53)):
            try:
                socket.create_connection((host, port), timeout=3).close()
                print("connect", host, "OK")
            except OSError as exc:
                print("connect", host, "failed:", type(exc).__name__, exc.errno)
        try:
            socket.getaddrinfo("example.com", 443)
            print("dns OK")
        except OSError as exc:
            print("dns failed:", type(exc).__name__)
    if cfg.attack == "fork_bomb":
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print("fork refused after", children, "children:", type(exc).__name__, flush=True)
    if cfg.attack == "memory":
        blocks = [bytearray(16 << 20) for _ in range(64)]  # 1 GiB
        print("allocated", len(blocks))
    if cfg.attack == "write_outside":
        for path in ("/etc/evil", "/usr/lib/evil", "/opt/nsml-sdk/nsml/evil.py", os.path.join(DATASET_PATH, "x"),
                     "/root/evil", "/app/ok.txt", "/tmp/ok.txt", "/nsml/checkpoints/ok.txt"):
            print("write", path, try_write(path))
        print("uid", os.getuid())
    if cfg.attack == "logs":
        line = "y" * 1023 + "\n"
        block = line * 1024
        for _ in range(1024):  # 1 GiB
            sys.stdout.write(block)
        sys.stdout.flush()
    if cfg.attack == "sleep":
        time.sleep(10 ** 6)
    print("train done", flush=True)
'''


@pytest.fixture
def hostile(tmp_path, tiny_task):
    folder = participant(tmp_path / "hostile", HOSTILE)
    (tiny_task / "task.toml").write_text((tiny_task / "task.toml").read_text().replace("quota = 1", "quota = 0"))
    return folder


def test_hostile_reads_test_labels(cli, docker_root, hostile):
    name = run_session(cli, hostile, "-a", "--attack labels")
    result = cli.json("submit", name, "0")
    assert result["status"] == "succeeded"
    (docker_root / "harness.toml").write_text('organizers = ["alice"]\n')
    log = cli("logs", "--submission", result["id"]).stdout
    assert "label files: [] exists: False" in log


def test_hostile_network_is_off(cli, docker_root, hostile):
    name = run_session(cli, hostile, "-a", "--attack network")
    log = cli("logs", name).stdout
    assert "connect 127.0.0.1 failed" in log and "connect 1.1.1.1 failed" in log and "connect 8.8.8.8 failed" in log
    assert "dns failed" in log and " OK" not in log


def test_hostile_fork_bomb_hits_the_pids_limit(cli, docker_root, hostile):
    _settings(docker_root, pids_limit=64)
    name = run_session(cli, hostile, "-a", "--attack fork_bomb", "--time-limit", "30")
    log = cli("logs", name).stdout
    refused = int(log.split("fork refused after ")[1].split()[0])
    assert refused < 64 and "train done" in log


def test_hostile_memory_is_oom(cli, docker_root, hostile):
    name = run_session(cli, hostile, "-a", "--attack memory", "--memory", "128M", code=1)
    row = _ps(cli, name)
    assert (row["status"], row["reason"]) == ("failed", "oom"), row
    assert cli.json("model", "ls", name)[0]["checkpoint"] == "0"  # saved before: nothing lost


def test_hostile_writes_outside_its_folders_fail(cli, docker_root, hostile):
    name = run_session(cli, hostile, "-a", "--attack write_outside")
    log = cli("logs", name).stdout
    for path in ("/etc/evil", "/usr/lib/evil", "/opt/nsml-sdk/nsml/evil.py", "/root/evil"):
        assert f"write {path} OSError" in log or f"write {path} PermissionError" in log, log
    assert "write /data/tiny/x OSError" in log
    assert "write /app/ok.txt written" in log and "write /tmp/ok.txt written" in log
    assert "write /nsml/checkpoints/ok.txt written" in log  # its own checkpoints: writable while training
    assert "uid 0" not in log
    result = cli.json("submit", name, "0")
    (docker_root / "harness.toml").write_text('organizers = ["alice"]\n')
    sub_log = cli("logs", "--submission", result["id"]).stdout
    assert "write /nsml/checkpoints/0/x OSError" in sub_log  # read-only in a submit
    assert "written" not in sub_log


def test_hostile_gigabyte_of_logs_is_truncated(cli, docker_root, hostile):
    (docker_root / "harness.toml").write_text("[limits]\nlog_bytes = 1048576\n")
    start = time.time()
    name = run_session(cli, hostile, "-a", "--attack logs")
    log = cli("logs", name).stdout
    assert "[harness] log truncated: over 1048576 bytes" in log
    assert len(log) < 2 * 1048576
    assert time.time() - start < 300
    assert _ps(cli, name)["status"] == "succeeded"


def test_hostile_sleeps_forever_is_timeout(cli, docker_root, hostile):
    name = run_session(cli, hostile, "-a", "--attack sleep", "--time-limit", "3", code=1)
    row = _ps(cli, name)
    assert (row["status"], row["reason"]) == ("failed", "timeout")


def test_hostile_ten_gigabyte_prediction_is_limited(cli, docker_root, hostile, state_root):
    _settings(docker_root, file_bytes=64 << 20)
    name = run_session(cli, hostile, "-a", "--attack big_prediction")
    result = cli.json("submit", name, "0", code=1)
    assert (result["status"], result["reason"]) == ("failed", "exit_code"), result  # (stopped at 64 MiB: EFBIG)
    deadline = time.time() + 30  # and what it wrote goes with the run (in the background)
    while list((state_root / ".harness" / "runs").glob("*/output/prediction")):
        assert time.time() < deadline
        time.sleep(0.2)


def test_two_gpu_sessions_get_different_device_ids(docker_root, docker_client, tmp_path, monkeypatch):
    """With a declared inventory, allocations differ and are pinned in device_requests (the container's config)."""
    from harness.core.settings import load_settings
    from harness.runtime import gpus
    from harness.runtime.base import Mount, RunPaths, RunSpec
    from harness.runtime.docker_runtime import container_config
    monkeypatch.setenv("HARNESS_GPUS", "4")
    settings = load_settings()
    busy: set[int] = set()
    created = []
    try:
        for run_id in (1, 2):
            ids = gpus.allocate(gpus.models(settings), busy, 1)
            busy.update(ids)
            app = tmp_path / f"app{run_id}"
            app.mkdir()
            spec = RunSpec(run_id=run_id, name=f"alice/t/{run_id}", argv=["main.py"], workdir=app,
                           paths=RunPaths(run=tmp_path, log=tmp_path / "log"), gpu_ids=ids, mounts=[Mount(app, "/app", False)])
            created.append(docker_client.containers.create(**container_config(settings, spec,
                                                                               "nsml-harness/session:latest")))
        requests = [c.attrs["HostConfig"]["DeviceRequests"] for c in created]
        device_ids = [r[0]["DeviceIDs"] for r in requests]
        assert device_ids == [["0"], ["1"]]
        assert all(r[0]["Capabilities"] == [["gpu"]] for r in requests)
        env = [dict(e.split("=", 1) for e in c.attrs["Config"]["Env"]) for c in created]
        assert [e["CUDA_VISIBLE_DEVICES"] for e in env] == ["0", "0"]  # each sees its one device as cuda:0
        assert {e["CUDA_DEVICE_ORDER"] for e in env} == {"PCI_BUS_ID"}
    finally:
        for c in created:
            c.remove(force=True)


def test_container_is_locked_down(docker_root, docker_client, tmp_path):
    from harness.core.settings import load_settings
    from harness.runtime.base import Mount, RunPaths, RunSpec
    from harness.runtime.docker_runtime import container_config
    app = tmp_path / "app"
    app.mkdir()
    spec = RunSpec(run_id=1, name="alice/t/1", argv=["main.py"], workdir=app, paths=RunPaths(run=tmp_path, log=tmp_path / "log"),
                   memory=256 << 20, cpus=1.5, shm_size=64 << 20, mounts=[Mount(app, "/app", False)])
    c = docker_client.containers.create(**container_config(load_settings(), spec, "nsml-harness/session:latest"))
    try:
        host = c.attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"] and host["ReadonlyRootfs"] is True
        assert host["Memory"] == 256 << 20 and host["MemorySwap"] == 256 << 20 and host["NanoCpus"] == 1_500_000_000
        assert host["ShmSize"] == 64 << 20 and host["PidsLimit"] == 512
        assert c.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
        binds = " ".join(host["Binds"])
        assert "docker.sock" not in binds and "test_label" not in binds
    finally:
        c.remove(force=True)


def test_image_resolution_missing_base_and_cached_requirements(cli, docker_root, tiny_task, nsml_folder,
                                                               docker_client):
    # an image that is not here and matches no era: the harness's own environment (the default image)
    (nsml_folder / "requirements.txt").write_text("#nsml: nowhere/missing-image:1.0\nnumpy\n")
    name = run_session(cli, nsml_folder)
    assert _ps(cli, name)["status"] == "succeeded"
    # one that resolves to an era not built on this machine (torch1 is built on demand, never in CI)
    (nsml_folder / "requirements.txt").write_text("#nsml: nsml/default_ml:cuda9_torch1.0\n")
    name = run_session(cli, nsml_folder, code=1)
    row = _ps(cli, name)
    assert row["reason"] == "launch_error"
    assert "era torch1" in row["message"] and "harness image build --era torch1" in row["message"], row

    # a fresh hash (comments are stripped before hashing; an exclusion that excludes nothing is not): the first
    # session builds, the second reuses
    (nsml_folder / "requirements.txt").write_text(f"# cache check\nnumpy!=0.{int(time.time() * 1000)}\n")
    before = {i.id for i in docker_client.images.list(name="nsml-harness/env")}
    t0 = time.time()
    run_session(cli, nsml_folder)
    first = time.time() - t0
    built = {i.id for i in docker_client.images.list(name="nsml-harness/env")} - before
    assert len(built) == 1
    t0 = time.time()
    run_session(cli, nsml_folder)
    second = time.time() - t0
    assert {i.id for i in docker_client.images.list(name="nsml-harness/env")} - before == built  # nothing new
    assert second < first + 5


def test_hf_cache_is_mounted_read_only_and_offline(cli, docker_root, tiny_task, tmp_path):
    cache = tmp_path / "hf"
    snap = cache / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (cache / "hub" / "models--org--tiny" / "refs").mkdir()
    (cache / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                                  "num_attention_heads": 2, "intermediate_size": 37}))
    (docker_root / "harness.toml").write_text(f'[docker]\nhf_cache = "{cache}"\n')
    folder = tmp_path / "hf-user"
    folder.mkdir()
    (folder / "main.py").write_text(
        "import os\nfrom transformers import AutoConfig\n"
        "cfg = AutoConfig.from_pretrained('org/tiny')\n"
        "print('hidden', cfg.hidden_size, 'offline', os.environ['HF_HUB_OFFLINE'])\n"
        "try:\n    open(os.path.join(os.environ['HF_HOME'], 'x'), 'w')\nexcept OSError as e:\n"
        "    print('cache write', type(e).__name__)\n")
    name = run_session(cli, folder)
    log = cli("logs", name).stdout
    assert "hidden 32 offline 1" in log and "cache write OSError" in log


def test_orphaned_containers_are_reaped_and_sessions_marked(cli, docker_root, hostile, docker_client, state_root):
    import signal

    import psutil
    name = run_session(cli, hostile, "-a", "--attack sleep", wait=False)
    deadline = time.time() + 60
    while time.time() < deadline and not docker_client.containers.list(ignore_removed=True,
            filters={"label": f"nsml-harness.session={name}"}):
        time.sleep(0.2)
    assert docker_client.containers.list(ignore_removed=True, filters={"label": f"nsml-harness.session={name}"})
    schedulers = [p for p in psutil.process_iter(["cmdline"])
                  if "harness.scheduler" in " ".join(p.info["cmdline"] or []) and str(state_root) in
                  " ".join(p.info["cmdline"] or [])]
    assert len(schedulers) == 1
    schedulers[0].send_signal(signal.SIGKILL)
    schedulers[0].wait(10)
    cli("logs", "-f", name, code=1)  # any CLI call starts a new scheduler, which recovers
    row = _ps(cli, name)
    assert (row["status"], row["reason"]) == ("failed", "lost")
    assert _no_containers(docker_client, lambda c: True, {"label": f"nsml-harness.session={name}"})


def test_auto_picks_docker_and_says_so_and_stop_kills_the_container(cli, state_root, docker_client, hostile):
    (state_root / "harness.toml").write_text('runtime_choices = ["auto"]\n')  # (alice may pick it)
    r = cli("run", "-d", "tiny", "-e", "main.py", "--runtime", "auto", "-a", "--attack sleep", hostile)
    assert "runtime: docker (auto: a Docker engine answered)" in r.stderr
    name = r.stdout.split()[1]
    label = {"label": f"nsml-harness.session={name}"}
    deadline = time.time() + 60
    while time.time() < deadline and not docker_client.containers.list(ignore_removed=True, filters=label):
        time.sleep(0.2)
    assert docker_client.containers.list(ignore_removed=True, filters=label)
    cli("stop", name)
    cli("logs", "-f", name, code=1)
    assert _ps(cli, name)["status"] == "stopped"
    assert _no_containers(docker_client, lambda c: True, label)


VOLUME_PROBE = r'''
import os
print("shipped", open("/data2/shipped").read().strip(), "task", sorted(os.listdir("/data/tiny")))
for path in ("/data2/more", "/data2/sub/more", "/data/more"):
    try:
        open(path, "w").write("x" * 1000)
        print("write", path, "written")
    except OSError as exc:
        print("write", path, type(exc).__name__, exc.errno)
'''


def test_a_volume_of_an_allowed_image_is_read_only_and_removed_with_the_run(cli, docker_root, docker_client, tmp_path,
                                                                          tiny_task):
    """An allowed image that declares a VOLUME (writable for everyone): the run reads what the image ships there
    but writes nothing outside its measured folders, and the run's volume goes with its container."""
    import io
    base = "nsml-harness/test-run-volume:1"
    dockerfile = (b"FROM nsml-harness/session:latest\nUSER root\n"
                  b"RUN mkdir -p /data2/sub && echo from-image > /data2/shipped && chmod -R 777 /data2\n"
                  b"VOLUME /data2\nVOLUME /tmp\nVOLUME /data\n")  # (/data holds the task's view: /data/tiny)
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=base, rm=True)
    _settings(docker_root, images=[base])
    mine = {"label": "nsml-harness.instance"}
    before = {v.name for v in docker_client.volumes.list(filters=mine)}
    folder = participant(tmp_path / "volume", VOLUME_PROBE)
    (folder / "requirements.txt").write_text(f"#nsml: {base}\n")
    try:
        name = run_session(cli, folder)
    finally:
        docker_client.images.remove(base, force=True)
    log = cli("logs", name).stdout
    assert "shipped from-image" in log
    assert "write /data2/more OSError 30" in log and "write /data2/sub/more OSError 30" in log, log  # EROFS
    assert "task ['train']" in log and "write /data/more" in log and "written" not in log  # (EACCES: root's)
    assert "written" not in log
    deadline = time.time() + 30
    while {v.name for v in docker_client.volumes.list(filters=mine)} - before and time.time() < deadline:
        time.sleep(0.2)
    assert not {v.name for v in docker_client.volumes.list(filters=mine)} - before


def test_a_crashed_runs_volume_goes_with_the_reap(docker_root, docker_client, tmp_path):
    from harness.core.settings import load_settings
    from harness.runtime.base import Mount, RunPaths, RunSpec
    from harness.runtime.docker_runtime import DockerRuntime, container_config
    app = tmp_path / "app"
    app.mkdir()
    spec = RunSpec(run_id=7, name="alice/t/7", argv=["-c", "pass"], workdir=app,
                   paths=RunPaths(run=tmp_path, log=tmp_path / "log"), mounts=[Mount(app, "/app", False)])
    settings = load_settings()
    config = container_config(settings, spec, "nsml-harness/session:latest", {"/data2": {}, "/app": {}, "/tmp/": {}})
    assert [(m["Target"], m["ReadOnly"]) for m in config["mounts"]] == [("/data2", True)]  # the rest are mounted
    over = container_config(settings, spec, "nsml-harness/session:latest", {"/": {}, "/app/cache": {}, "/opt": {}})
    assert [(m["Target"], m["Type"]) for m in over["mounts"]] == [("/app/cache", "volume"), ("/opt", "tmpfs")]
    docker_client.containers.create(**config)
    mine = {"label": f"nsml-harness.run={spec.run_id}"}
    assert len(docker_client.volumes.list(filters=mine)) == 1
    DockerRuntime(settings).reap_orphans()  # as a scheduler does when it starts after one died
    assert docker_client.volumes.list(filters=mine) == []


def test_a_run_in_a_derived_image_is_no_builds_leftover_for_the_sweep(cli, docker_root, docker_client, hostile):
    """Docker's commit passes the build container's labels (its tag, its time to live) on to the image it makes,
    and so to each run's container: a sweep of build leftovers, long past that time (an image used for days),
    leaves a running session alone (CI once saw a run's container removed between its create and its start)."""
    from harness.runtime import image_builds
    from harness.runtime.images import ENV_REPO
    (hostile / "requirements.txt").write_text(f"numpy!=0.{time.time_ns()}\n")
    name = run_session(cli, hostile, "-a", "--attack sleep", wait=False)
    label = {"label": f"nsml-harness.session={name}"}
    deadline = time.time() + 240
    while time.time() < deadline and not docker_client.containers.list(ignore_removed=True, filters=label):
        time.sleep(0.2)
    [container] = docker_client.containers.list(ignore_removed=True, filters=label)
    assert image_builds.BUILDING in container.labels  # (what the image passed on)
    image_builds.sweep(docker_client, ENV_REPO, now=time.time() + 86400 * 30)
    container.reload()
    assert container.status == "running"
    cli("stop", name)
    cli("logs", "-f", name, code=1)
    assert _ps(cli, name)["status"] == "stopped"
