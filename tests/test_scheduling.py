"""GPU allocation from a declared 4-GPU inventory: concurrent sessions, never oversubscribed, FIFO waits."""
import json
import time

import pytest
from helpers import participant, run_session, web_login

GPU_MAIN = '''
import argparse, json, os, time
import nsml
p = argparse.ArgumentParser()
p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
p.add_argument("--iteration", default="0"); p.add_argument("--hold", type=float, default=1.0)
p.add_argument("--out")
cfg = p.parse_args()
start = time.time()
time.sleep(cfg.hold)
with open(cfg.out, "a") as fh:
    fh.write(json.dumps({"session": nsml.SESSION_NAME, "cuda": os.environ["CUDA_VISIBLE_DEVICES"],
                         "order": os.environ.get("CUDA_DEVICE_ORDER"), "gpu_num": nsml.GPU_NUM, "start": start,
                         "end": time.time()}) + "\\n")
'''


@pytest.fixture
def gpu_folder(tmp_path, monkeypatch, state_root):
    """A declared 4-GPU inventory and an entry that records its devices and when it held them (in a file of the
    test's, so these runs go unsandboxed: the sandbox would rightly keep them from writing there)."""
    monkeypatch.setenv("HARNESS_GPUS", "4")
    (state_root / "harness.toml").write_text('[process]\nsandbox = "none"\n')
    return participant(tmp_path / "gpu", GPU_MAIN)


def _launch(cli, folder, gpus, hold, out):
    return run_session(cli, folder, "-g", gpus, "-a", f"--hold {hold} --out {out}", wait=False)


def test_concurrent_sessions_never_share_a_gpu(cli, tiny_task, tmp_path, gpu_folder):
    folder = gpu_folder
    out = tmp_path / "gpu.jsonl"
    names = [_launch(cli, folder, g, 1.0, out) for g in (2, 1, 2, 1, 3, 1, 4, 2)]
    for name in names:
        cli("logs", "-f", name)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(names)
    for r in rows:
        ids = [int(i) for i in r["cuda"].split(",")]
        assert len(ids) == r["gpu_num"] and len(set(ids)) == len(ids) and all(0 <= i < 4 for i in ids)
        assert r["order"] == "PCI_BUS_ID"  # CUDA numbers devices as NVML (the inventory) does
        r["ids"] = set(ids)
    for a in rows:
        for b in rows:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert not (a["ids"] & b["ids"]), (a, b)  # overlapping in time → disjoint devices
    concurrent = max(sum(1 for b in rows if b["start"] <= a["start"] < b["end"]) for a in rows)
    assert concurrent >= 2  # sessions really ran side by side
    ps = {r["name"]: r for r in cli.json("ps", "-a")}
    assert sorted(len(ps[n]["gpu_ids"]) for n in names) == sorted([2, 1, 2, 1, 3, 1, 4, 2])


def test_waiting_sessions_start_in_fifo_order(cli, tiny_task, tmp_path, gpu_folder):
    folder = gpu_folder
    out = tmp_path / "gpu.jsonl"
    first = _launch(cli, folder, 3, 2.0, out)
    time.sleep(0.5)
    second = _launch(cli, folder, 2, 0.5, out)  # must wait for the first
    third = _launch(cli, folder, 1, 0.5, out)  # would fit now, but must not overtake the second
    zero = _launch(cli, folder, 0, 0.1, out)  # needs no GPU: not held up
    for name in (first, second, third, zero):
        cli("logs", "-f", name)
    rows = {json.loads(line)["session"]: json.loads(line) for line in out.read_text().splitlines()}
    assert rows[second]["start"] >= rows[first]["end"] - 0.05
    # the third would have fit beside the first (1 GPU free) but must not overtake the waiting second
    assert rows[third]["start"] >= rows[first]["end"] - 0.05
    assert rows[zero]["start"] < rows[first]["end"] and rows[zero]["cuda"] == "" and rows[zero]["gpu_num"] == 0


def test_request_beyond_the_inventory_is_a_clear_error(cli, tiny_task, nsml_folder, monkeypatch):
    monkeypatch.setenv("HARNESS_GPUS", "4")
    r = cli("run", "-d", "tiny", "-g", "5", nsml_folder, code=2)
    assert r.stderr.strip() == ("Error: -g/--gpus: 5 GPU(s) requested but this machine's inventory has 4 "
                                "(declare one with 'gpus = N' in harness.toml or HARNESS_GPUS)")


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_ps_ends_with_the_gpus_in_use(cli, tiny_task, tmp_path, gpu_folder, mode, request):
    """`ps` says how many of the inventory's GPUs running runs hold (everyone's, as a count); -j stays the rows."""
    if mode == "remote":
        cli = request.getfixturevalue("remote_cli")  # after gpu_folder: the server sees the declared inventory
    out = tmp_path / "gpu.jsonl"
    assert cli("ps").stderr.strip() == "GPUs: 0 of 4 in use"
    held = _launch(cli, gpu_folder, 3, 30.0, out)
    deadline = time.time() + 30
    while time.time() < deadline and cli.json("ps")[0]["status"] != "running":
        time.sleep(0.2)
    assert cli("ps").stderr.strip() == "GPUs: 3 of 4 in use"
    assert cli("ps", user="bob").stderr.strip() == "GPUs: 3 of 4 in use"  # another user: the count, no names
    if mode == "remote":  # the dashboard's sessions page has the same inventory
        import httpx
        with httpx.Client(base_url=cli.url, follow_redirects=True) as web:
            web_login(web, cli.token("bob"), "/sessions")
            html = web.get("/sessions").text
        assert 'id="inventory"' in html and "<td>3</td><td>4</td>" in html and "3 of 4 in use" in html
    assert "GPUs" not in cli("ps", "-j").stderr
    cli("stop", held)
    cli("logs", "-f", held, code=1)
    assert cli("ps").stderr.strip() == "GPUs: 0 of 4 in use"


def test_a_clusters_inventory_names_hosts_to_organizers_only(cli, state_root):
    """On a cluster, `ps` reads the nodes its scheduler last published: node by node with the GPUs in use; a
    participant gets the node ids and counts, an organizer also each node's host."""
    from helpers import ORGANIZER

    from harness.core.settings import load_settings
    from harness.runtime import gpus
    from harness.service import quick_reads
    from harness.service.local import LocalApi
    from harness.state import Harness
    (state_root / "harness.toml").write_text(f'organizers = ["{ORGANIZER}"]\n'
                                             '[cluster]\nexecutor = "ray"\naddress = "10.0.0.1:6379"\n')
    nodes = [{"id": "a" * 40, "address": "gpu-01 10.0.0.7", "alive": True, "gpus": 4, "model": "H200"},
             {"id": "b" * 40, "address": "gpu-02 10.0.0.8", "alive": True, "gpus": 4, "model": "H200"},
             {"id": "c" * 40, "address": "gpu-03 10.0.0.9", "alive": False, "gpus": 4, "model": "H200"}]
    settings = load_settings(user=ORGANIZER)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    gpus.publish(settings, nodes)
    seen = {}
    for who in ("alice", ORGANIZER):
        h = Harness(load_settings(user=who))
        try:
            seen[who] = quick_reads.describe(LocalApi(h).inventory())
        finally:
            h.store.close()
    assert seen["alice"] == "GPUs: 0 of 8 in use on ray: node aaaaaaaa 0/4, node bbbbbbbb 0/4"  # the dead node: none
    assert seen[ORGANIZER] == ("GPUs: 0 of 8 in use on ray: node aaaaaaaa (gpu-01 10.0.0.7) 0/4, "
                               "node bbbbbbbb (gpu-02 10.0.0.8) 0/4")
    assert cli("ps", user=ORGANIZER).stderr.strip() == seen[ORGANIZER]  # the quick path says the same
    assert cli("ps", user="alice").stderr.strip() == seen["alice"]


def test_the_driver_is_asked_only_where_one_is_loaded(tmp_path, monkeypatch):
    """No NVIDIA driver (no /dev/nvidiactl, no /proc/driver/nvidia): no NVML call, an empty inventory. With one,
    the models NVML reports (a stand-in NVML here)."""
    import sys
    import types

    from harness.runtime import gpus
    calls = []
    fake = types.SimpleNamespace(nvmlInit=lambda: calls.append("init"), nvmlShutdown=lambda: None,
                                 nvmlDeviceGetCount=lambda: 2, nvmlDeviceGetHandleByIndex=lambda i: i,
                                 nvmlDeviceGetName=lambda h: b"NVIDIA H200")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(gpus, "DRIVER_PATHS", (str(tmp_path / "nvidiactl"),))
    gpus._driver_models.cache_clear()
    assert gpus._driver_models() == () and calls == []
    (tmp_path / "nvidiactl").touch()
    gpus._driver_models.cache_clear()
    assert gpus._driver_models() == ("NVIDIA H200", "NVIDIA H200") and calls == ["init"]
    gpus._driver_models.cache_clear()
