"""The Ray executor on a real local Ray cluster (ray.cluster_utils.Cluster): a head without GPUs and two workers
with four declared GPUs each, all on 127.0.0.1. Sessions run the process runtime (bubblewrap) on the node Ray
picked, with the GPU ids Ray assigned; the harness's scheduler admits them (FIFO, team GPU quotas)."""
import json
import os
import time

import pytest
from helpers import ORGANIZER, participant
from test_contest import CONTEST, _split_tiny

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
from ray.cluster_utils import Cluster  # noqa: E402

LOOPBACK = "127.0.0.1"  # every node of a test cluster listens on loopback only
# ...and every driver (the harness's scheduler) joins it there: Ray otherwise rewrites a 127.0.0.1 address to
# the host's outward one (services.resolve_ip_for_localhost), where a loopback-only cluster does not answer.
SINGLE_MACHINE = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def loopback_cluster(workers: int, gpus_each: int) -> Cluster:
    """A head without GPUs and WORKERS workers with GPUS_EACH declared GPUs, on 127.0.0.1 only."""
    os.environ.update(SINGLE_MACHINE)  # read by this process and by the schedulers it starts
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False,
                                                     "node_ip_address": LOOPBACK})
    c.workers = [c.add_node(num_cpus=gpus_each, num_gpus=gpus_each, node_ip_address=LOOPBACK)
                 for _ in range(workers)]
    c.wait_for_nodes()
    assert c.address.startswith(LOOPBACK + ":"), c.address
    return c

# Prints when it started and ended (wall clock) and the GPUs it was given, so overlaps are checked from what
# the code itself saw.
PROBE = '''
import argparse, os, time
p = argparse.ArgumentParser()
p.add_argument("--sleep", type=float, default=1.0)
a, _ = p.parse_known_args()
print("start", time.time(), os.environ.get("CUDA_VISIBLE_DEVICES", ""), flush=True)
time.sleep(a.sleep)
print("end", time.time(), flush=True)
'''


@pytest.fixture(scope="module")
def cluster():
    c = loopback_cluster(workers=2, gpus_each=4)
    yield c
    c.shutdown()


@pytest.fixture
def ray_root(state_root, cluster, cli, tmp_path):
    """A state root whose runs go to the cluster; the tiny task added; a probe participant folder."""
    (state_root / "harness.toml").write_text(
        f'organizers = ["org", "{ORGANIZER}"]\n[cluster]\nexecutor = "ray"\naddress = "{cluster.address}"\n'
        '[scheduler]\nidle_exit_seconds = 2\n')
    return state_root


def _start(cli, folder, *args, user="alice", task="tiny"):
    out = cli("run", "-d", task, "-e", "main.py", *args, folder, user=user).stdout
    return out.split()[1]


def _spans(cli, name, user="alice"):
    """(start, end, [gpu ids as the code saw them]) from the session's own log."""
    text = cli("logs", name, user=user).stdout
    start = next(line.split() for line in text.splitlines() if line.startswith("start "))
    end = next(line.split() for line in text.splitlines() if line.startswith("end "))
    return float(start[1]), float(end[1]), [int(g) for g in (start[2].split(",") if len(start) > 2 else [])]


def _rows(cli, user="alice"):
    return {r["name"]: r for r in cli.json("ps", "-a", user=user)}


def test_sessions_land_on_both_workers_and_no_gpu_is_held_twice(cli, ray_root, cluster, tmp_path, tiny_task):
    probe = participant(tmp_path / "probe", PROBE)
    names = [_start(cli, probe, "-g", "1", "-a", "--sleep 1.5") for _ in range(12)]
    names += [_start(cli, probe, "-g", "2", "-a", "--sleep 1.5") for _ in range(3)]
    for name in names:
        cli("logs", "-f", name)
    rows = _rows(cli)
    held: dict[tuple, list] = {}
    for name in names:
        row = rows[name]
        assert row["status"] == "succeeded", row
        start, end, seen = _spans(cli, name)
        assert row["node"] and row["node"]["id"], row  # the node Ray chose is recorded with the run
        assert sorted(row["gpu_ids"]) == sorted(row["node"]["gpu_ids"]) and len(row["gpu_ids"]) == row["gpus"], row
        sandboxed = row["isolation"].startswith("bwrap")  # (its own device nodes only, numbered from 0)
        assert sorted(seen) == (list(range(row["gpus"])) if sandboxed else sorted(row["gpu_ids"])), (seen, row)
        for gpu in row["gpu_ids"]:
            held.setdefault((row["node"]["id"], gpu), []).append((start, end, name))
    workers = {w.node_id for w in cluster.workers}
    assert {node for node, _ in held} == workers  # both workers ran sessions, the head none
    assert all(0 <= gpu < 4 for _, gpu in held)
    for (node, gpu), spans in held.items():  # no GPU id of a node held by two running sessions at once
        spans.sort()
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            assert s2 >= e1, f"GPU {gpu} of node {node[:8]}: {n1} ({s1:.2f}-{e1:.2f}) and {n2} ({s2:.2f}-{e2:.2f})"
    # the inventory the CLI checks against is the cluster's, as its scheduler published it
    published = json.loads((ray_root / ".harness" / "cluster.json").read_text())
    assert sum(n["gpus"] for n in published["nodes"] if n["alive"]) == 8
    r = cli("run", "-d", "tiny", "-g", "9", probe, code=2)
    assert "9 GPU(s) requested but the cluster's inventory has 8" in r.stderr
    # the session page and ps name the node
    assert "@node:" + rows[names[0]]["node"]["id"][:8] in cli("ps", "-a").stdout  # one token: never wrapped
    name = _start(cli, probe, "-g", "1", "-a", "--sleep 6")  # while it runs, ps says how the node confined it
    deadline = time.monotonic() + 60
    while not (row := _rows(cli)[name]).get("node") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert row["status"] == "running" and row["isolation"] != "ray" and row["isolation"], row
    cli("stop", name)


def test_team_gpu_quota_holds_across_nodes(cli, ray_root, cluster, tmp_path):
    for name in ("tiny", "tiny2"):
        cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
    spec = tmp_path / "contest.toml"
    spec.write_text(CONTEST.format(gpu_quota=2, policy="wait"))
    cli("contest", "clock", "2026-07-01T01:00:00", user="org")
    cli("contest", "create", spec, user="org")
    probe = participant(tmp_path / "probe", PROBE)
    red = [(u, _start(cli, probe, "-g", "1", "-a", "--sleep 2", user=u)) for u in ("alice", "bob") for _ in range(2)]
    green = [("dave", _start(cli, probe, "-g", "1", "-a", "--sleep 2", user="dave")) for _ in range(4)]
    for user, name in red + green:
        cli("logs", "-f", name, user=user)

    def most_at_once(runs):
        spans = [_spans(cli, name, user) for user, name in runs]
        return max(sum(1 for s, e, _ in spans if s <= t < e) for t, _, _ in spans)

    assert most_at_once(red) == 2  # red's quota of 2 GPUs, across both workers
    assert most_at_once(green) == 3  # green's own quota is 3; red's waiting runs held nobody else back
    nodes = {_rows(cli, u)[n]["node"]["id"] for u, n in red + green}
    assert nodes <= {w.node_id for w in cluster.workers}


def test_stop_cancels_the_ray_task_and_reaps_its_processes(cli, ray_root, tmp_path, tiny_task):
    import psutil
    probe = participant(tmp_path / "probe", PROBE)
    name = _start(cli, probe, "-g", "4", "-a", "--sleep 120")
    deadline = time.time() + 60
    while time.time() < deadline and not _rows(cli)[name].get("node"):
        time.sleep(0.2)
    row = _rows(cli)[name]
    assert row["status"] == "running" and row["node"], row
    run_dir = next((ray_root / ".harness" / "runs").iterdir())
    pid = int((run_dir / "pid").read_text())
    assert psutil.pid_exists(pid)
    cli("stop", name)
    cli("logs", "-f", name, code=1)
    assert _rows(cli)[name]["status"] == "stopped"
    deadline = time.time() + 15
    while time.time() < deadline and psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        time.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    # its four GPUs are free again: two 4-GPU sessions run at once
    names = [_start(cli, probe, "-g", "4", "-a", "--sleep 2") for _ in range(2)]
    for n in names:
        cli("logs", "-f", n)
    a, b = (_spans(cli, n) for n in names)
    assert a[0] < b[1] and b[0] < a[1]  # they overlapped: one per worker


def test_an_unreachable_cluster_keeps_runs_queued_with_a_reason(cli, state_root, tmp_path, tiny_task):
    from helpers import free_port
    port = free_port()
    (state_root / "harness.toml").write_text(f'[cluster]\nexecutor = "ray"\naddress = "127.0.0.1:{port}"\n')
    name = _start(cli, participant(tmp_path / "probe", PROBE))
    deadline = time.time() + 30
    while time.time() < deadline and not _rows(cli)[name]["message"]:
        time.sleep(0.2)
    row = _rows(cli)[name]
    assert row["status"] == "queued"
    assert row["message"].startswith(f"waiting for the cluster: the Ray cluster at 127.0.0.1:{port} does not answer")
    cli("stop", name)
    cli("logs", "-f", name, code=1)
    assert _rows(cli)[name]["status"] == "stopped"


def test_cluster_settings_are_checked(cli, state_root):
    (state_root / "harness.toml").write_text('[cluster]\nexecutor = "rya"\n')
    r = cli("ps", code=2)
    assert "harness.toml: cluster.executor: expected one of local, ray, got 'rya'; did you mean 'ray'?" in r.stderr
    (state_root / "harness.toml").write_text('[cluster]\nexecuter = "ray"\n')
    assert "did you mean 'executor'?" in cli("ps", code=2).stderr
    (state_root / "harness.toml").write_text('[cluster]\nexecutor = "ray"\naddress = "ray://head:10001"\n')
    assert "cluster.address: Ray Client addresses (ray://) are not supported" in cli("ps", code=2).stderr


def test_a_worker_killed_mid_run_loses_its_run_and_names_the_node(cli, ray_root, cluster, tmp_path, tiny_task):
    """Last in this module: it takes a worker away."""
    probe = participant(tmp_path / "probe", PROBE)
    names = [_start(cli, probe, "-g", "4", "-a", "--sleep 10") for _ in range(2)]  # one per worker
    deadline = time.time() + 60
    while time.time() < deadline and not all(_rows(cli)[n].get("node") for n in names):
        time.sleep(0.2)
    rows = _rows(cli)
    victim_name, survivor_name = names
    victim_node = rows[victim_name]["node"]["id"]
    assert rows[survivor_name]["node"]["id"] != victim_node
    inventory = cli("ps").stderr  # the cluster's GPUs, node by node, as the scheduler sees them
    assert inventory.startswith("GPUs: 8 of 8 in use on ray: "), inventory
    assert f"node {victim_node[:8]} " in inventory and inventory.count(" 4/4") == 2, inventory
    cluster.remove_node(next(w for w in cluster.workers if w.node_id == victim_node), allow_graceful=False)
    for n in names:
        cli("logs", "-f", n, code=None)
    rows = _rows(cli)
    assert rows[victim_name]["status"] == "failed" and rows[victim_name]["reason"] == "lost", rows[victim_name]
    assert f"node {victim_node[:12]}" in rows[victim_name]["message"]
    assert rows[survivor_name]["status"] == "succeeded", rows[survivor_name]  # the other worker's run went on


def test_a_planted_cancel_file_never_blocks_nor_is_followed(tmp_path):
    """An unconfined run could plant a FIFO or a link where the scheduler's stop request goes: the node's task
    reads neither (it would hang on the FIFO, or read another file), and the scheduler's write replaces them."""
    from harness.core.enums import FailureReason
    from harness.runtime import ray_node
    from harness.runtime.base import RunPaths, RunSpec
    run = tmp_path / "run"
    run.mkdir()
    spec = RunSpec(run_id=1, name="alice/tiny/1", argv=["main.py"], workdir=run,
                   paths=RunPaths(run=run, log=run / "log.txt"))
    os.mkfifo(run / ray_node.CANCEL_FILE)
    assert ray_node._cancel_request(spec) is None  # returns at once: a FIFO is refused, not opened for reading
    (run / ray_node.CANCEL_FILE).unlink()
    secret = tmp_path / "secret.json"
    secret.write_text('{"reason": "timeout", "message": "forged"}')
    (run / ray_node.CANCEL_FILE).symlink_to(secret)
    assert ray_node._cancel_request(spec) is None  # a link is not followed
    os.symlink(secret, run / f".{ray_node.CANCEL_FILE}.{os.getpid()}")  # a planted link at the temporary name
    ray_node.request_cancel(spec, FailureReason.STOPPED, "stopped by the user")
    assert secret.read_text() == '{"reason": "timeout", "message": "forged"}'  # not written through
    assert ray_node._cancel_request(spec) == (FailureReason.STOPPED, "stopped by the user")
