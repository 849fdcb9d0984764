"""NVML's readings (model, utilisation, memory) of this machine's GPUs in `ps` and the dashboard's GPU table — a
stand-in NVML here (no GPU on the CI machine); scripts/gpu-check.sh reads the real one on a GPU machine."""
import sys
import time
import types

import pytest

from harness.runtime import gpus
from harness.service import quick_reads

GIB = 1024 ** 3


@pytest.fixture
def fake_nvml(tmp_path, monkeypatch):
    """An NVML with two H200s, the first 87% busy with 12.5 GiB of 140 GiB used, and a driver to ask it."""
    used = {0: (12.5 * GIB, 87), 1: (0.5 * GIB, 0)}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetName=lambda h: b"NVIDIA H200",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=int(used[h][0]), total=140 * GIB),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=used[h][1], memory=0))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    (tmp_path / "nvidiactl").touch()
    monkeypatch.setattr(gpus, "DRIVER_PATHS", (str(tmp_path / "nvidiactl"),))
    monkeypatch.setattr(gpus, "READ_EVERY", 0.0)  # each call reads (the flood test sets the real reuse back)
    monkeypatch.setattr(gpus, "_last_read", None)
    gpus._driver_models.cache_clear()
    yield fake
    gpus._driver_models.cache_clear()


def test_readings_of_the_devices_the_harness_hands_out(fake_nvml, tmp_path, monkeypatch):
    assert gpus.readings(1) == [{"index": 0, "model": "NVIDIA H200", "memory_used": int(12.5 * GIB),
                                 "memory_total": 140 * GIB, "utilization": 87}]
    assert len(gpus.readings(8)) == 2  # no more than the driver has
    assert gpus.readings(0) == []
    monkeypatch.setattr(gpus, "DRIVER_PATHS", (str(tmp_path / "absent"),))
    assert gpus.readings(2) == []  # no driver: nothing asked


def test_a_failing_nvml_gives_no_readings_not_a_failed_ps(fake_nvml, monkeypatch):
    def broken(handle):
        raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetUtilizationRates", broken)
    assert gpus.readings(2) == []


def test_readings_go_to_organizers_and_to_a_participant_for_their_own_devices(fake_nvml, cli, state_root,
                                                                               tmp_path, monkeypatch):
    """A device's memory and utilisation show what the run on it does: an organizer reads every device, a
    participant only those their own running runs hold (everyone still reads the counts); the dashboard follows."""
    from helpers import ORGANIZER, make_tiny_task, participant
    from test_scheduling import GPU_MAIN
    monkeypatch.setenv("HARNESS_GPUS", "2")  # the scheduler (its own process) allocates from a declared inventory
    (state_root / "harness.toml").write_text('[process]\nsandbox = "none"\n')
    err = cli("ps", user=ORGANIZER).stderr
    assert err.splitlines() == ["GPUs: 0 of 2 in use", "  gpu 0 NVIDIA H200: 87% busy, 12.5 of 140.0 GiB",
                                "  gpu 1 NVIDIA H200: 0% busy, 0.5 of 140.0 GiB"], err
    assert cli("ps").stderr.splitlines() == ["GPUs: 0 of 2 in use"]  # alice holds nothing
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    folder = participant(tmp_path / "gpu", GPU_MAIN)
    name = cli("run", "-d", "tiny", "-g", "1", "-a", f"--hold 60 --out {tmp_path / 'gpu.jsonl'}",
               folder).stdout.split()[1]
    deadline = time.time() + 60
    while time.time() < deadline and cli.json("ps")[0]["status"] != "running":
        time.sleep(0.2)
    try:
        assert cli("ps").stderr.splitlines() == ["GPUs: 1 of 2 in use",
                                                 "  gpu 0 NVIDIA H200: 87% busy, 12.5 of 140.0 GiB"]
        assert cli("ps", user="bob").stderr.splitlines() == ["GPUs: 1 of 2 in use"]
        from harness.core.settings import load_settings
        from harness.service.local import LocalApi
        from harness.state import Harness
        h = Harness(load_settings())
        try:
            inventory = LocalApi(h).inventory()
        finally:
            h.store.close()
        assert [d["index"] for d in inventory["devices"]] == [0]
        assert quick_reads.describe(inventory) == "\n".join(cli("ps").stderr.splitlines())
        assert 'id="gpu-readings"' not in _sessions_page("bob")
        html = _sessions_page("alice")  # the sessions page renders the same readings as a table
        assert 'id="gpu-readings"' in html and "<td>87%</td><td>12.5 GiB</td><td>140.0 GiB</td>" in html
        assert "<td>0%</td>" not in html
    finally:
        cli("stop", name)


def test_a_real_submits_device_is_never_read_by_its_participant(cli, tiny_task, state_root):
    """A real submit's infer reads the hidden test inputs: its device's memory use, read every second, could carry
    them. Its owner reads a dry run's device, never a real submit's (organizers read every device)."""
    from harness.core.enums import RunKind, RunStatus
    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store import read_sql
    from harness.store.models import Run, Submission, Task
    from harness.store.quick import sa_rows
    h = Harness(load_settings(user="alice"))
    try:
        with h.tx() as db:
            user, task = h.user(db), db.query(Task).one()
            for gpu, dry in ((0, True), (1, False)):
                run = Run(kind=RunKind.SUBMIT, runtime="process", gpus=1, gpu_ids=[gpu], status=RunStatus.RUNNING)
                db.add(run)
                db.flush()
                db.add(Submission(user_id=user.id, task_id=task.id, session_name="alice/tiny/1", checkpoint="0",
                                  run_id=run.id, dry_run=dry, status=RunStatus.RUNNING))
            db.flush()
            assert read_sql.gpus_held_by(sa_rows(db), user.id) == {0}
    finally:
        h.store.close()


def test_a_hostile_model_name_reaches_no_terminal_or_page_as_markup(fake_nvml, cli, monkeypatch):
    from helpers import ORGANIZER
    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetName", lambda h: b"\x1b]0;pwned\x07<script>x</script>\xff\x1b[2J\ngpu 9 FAKE")
    err = cli("ps", user=ORGANIZER).stderr
    assert "\x1b" not in err and "\x07" not in err and "<script>x</script>\ufffd" in err, repr(err)
    assert len(err.splitlines()) == 3 and not any(line.startswith("gpu 9") for line in err.splitlines())
    assert "&lt;script&gt;x&lt;/script&gt;" in _sessions_page(ORGANIZER)


def _sessions_page(user: str) -> str:
    from dataclasses import replace

    from helpers import ORGANIZER
    from starlette.testclient import TestClient

    from harness.core.settings import load_settings
    from harness.server.app import create_app
    from harness.service import accounts
    from harness.state import Harness
    from harness.web import security
    h = Harness(replace(load_settings(user=ORGANIZER), organizers=[ORGANIZER]))  # the host's organizer makes it
    try:
        token = accounts.add_user(h, user, organizer=user == ORGANIZER)
    finally:
        h.store.close()
    client = TestClient(create_app(load_settings(user=user)), cookies={security.COOKIE: token})
    return client.get("/sessions").text


def test_a_flood_of_inventory_reads_asks_nvml_once_a_second_and_hostile_values_are_bounded(fake_nvml, cli,
                                                                                          monkeypatch):
    """NVML can take a second to start without persistence mode: 300 dashboard/API reads of the inventory in a
    burst ask it about once, and the service keeps answering others. A driver's NaN or 10**400 is bounded or
    the device left out, never a failed page."""
    from helpers import ORGANIZER

    from harness.core.settings import load_settings
    from harness.service.local import LocalApi
    from harness.state import Harness
    reads = []  # NVML's memory readings asked for (the model names are read once, and cached for good)
    monkeypatch.setattr(gpus, "READ_EVERY", 1.0)
    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetMemoryInfo", lambda h: reads.append(h) or types.SimpleNamespace(
        used=10 ** 400 if h == 0 else float("nan"), total=10 ** 400))
    h = Harness(load_settings(user=ORGANIZER))
    try:
        api = LocalApi(h)
        start = time.monotonic()
        seen = [api.inventory()["devices"] for _ in range(300)]
        took = time.monotonic() - start
    finally:
        h.store.close()
    assert len(reads) <= 2 * (1 + int(took / gpus.READ_EVERY))  # each device once, again only as seconds pass
    assert seen[-1] == [{"index": 0, "model": "NVIDIA H200", "memory_used": 1 << 60, "memory_total": 1 << 60,
                         "utilization": 87}]  # device 1's NaN: left out
    assert cli("ps", user="bob").stderr.splitlines() == ["GPUs: 0 of 2 in use"]  # others still served
