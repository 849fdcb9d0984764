"""A Ray cluster that goes away as a whole while a run is on it (head and workers): the run is not left running
— it ends `lost`, naming the cluster — and its code is gone with the cluster. Its own cluster (the shared one
in test_ray_cluster must survive its tests)."""
import os
import time

import pytest
from helpers import participant
from test_ray_cluster import PROBE, _rows, _start, loopback_cluster

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")


def test_a_cluster_that_goes_away_leaves_no_run_running(cli, state_root, tmp_path, tiny_task, monkeypatch):
    import psutil
    # how long the scheduler (the Ray driver) waits for a head that went away before Ray gives up on it
    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", "5")
    cluster = loopback_cluster(workers=1, gpus_each=2)
    try:
        (state_root / "harness.toml").write_text(f'[cluster]\nexecutor = "ray"\naddress = "{cluster.address}"\n'
                                                 '[scheduler]\nidle_exit_seconds = 2\nlease_seconds = 10\n')
        name = _start(cli, participant(tmp_path / "probe", PROBE), "-g", "1", "-a", "--sleep 300")
        deadline = time.time() + 60
        while time.time() < deadline and not _rows(cli)[name].get("node"):
            time.sleep(0.2)
        assert _rows(cli)[name]["status"] == "running", _rows(cli)[name]
        run_dir = next((state_root / ".harness" / "runs").iterdir())
        pid = int((run_dir / "pid").read_text())
        assert psutil.pid_exists(pid)
    finally:
        cluster.shutdown()
    started = time.time()
    cli("logs", "-f", name, code=None)
    row = _rows(cli)[name]
    assert row["status"] == "failed" and row["reason"] == "lost", row
    assert time.time() - started < 120
    deadline = time.time() + 15
    while time.time() < deadline and psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        time.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"  # the code went with it
