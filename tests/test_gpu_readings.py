"""NVML's readings (model, utilisation, memory) of this machine's GPUs in `ps` and the dashboard's GPU table — a
stand-in NVML here (no GPU on the CI machine); scripts/gpu-check.sh reads the real one on a GPU machine."""
import sys
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


def test_ps_and_the_dashboard_show_the_readings(fake_nvml, cli, state_root):
    err = cli("ps").stderr
    assert err.splitlines() == ["GPUs: 0 of 2 in use", "  gpu 0 NVIDIA H200: 87% busy, 12.5 of 140.0 GiB",
                                "  gpu 1 NVIDIA H200: 0% busy, 0.5 of 140.0 GiB"], err
    from harness.core.settings import load_settings
    from harness.service.local import LocalApi
    from harness.state import Harness
    h = Harness(load_settings())
    try:
        inventory = LocalApi(h).inventory()
    finally:
        h.store.close()
    assert [d["utilization"] for d in inventory["devices"]] == [87, 0]
    assert quick_reads.describe(inventory) == err.strip("\n")
    from dataclasses import replace

    from starlette.testclient import TestClient  # the sessions page renders the same readings as a table

    from harness.server.app import create_app
    from harness.service import accounts
    from harness.web import security
    h = Harness(replace(load_settings(), organizers=["alice"]))  # as the host's organizer makes accounts
    try:
        token = accounts.add_user(h, "alice")
    finally:
        h.store.close()
    client = TestClient(create_app(load_settings()), cookies={security.COOKIE: token})
    html = client.get("/sessions").text
    assert 'id="gpu-readings"' in html and "<td>87%</td><td>12.5 GiB</td><td>140.0 GiB</td>" in html, html[-2000:]
