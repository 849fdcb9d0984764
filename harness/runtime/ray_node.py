"""What runs on a Ray node for the Ray executor (harness.runtime.ray_executor): `run`, one Ray task per run, which
starts the node-local runtime (the sandboxed process, or docker) with the GPU ids Ray assigned, says where the
code landed, watches it (its limits, a stop) and returns its outcome; and the clean-up a recovering scheduler
asks of a node.

`run` is a generator task: its first item is the placement, its second the outcome. Ray reuses the worker
processes that run it (`max_calls=0`: the worker never touches a GPU itself, the participant's code runs in a
process of its own), so a run costs a task, not a new Python process. A stop travels through the run folder on
the shared state root (`cancel.json`, written by the scheduler), which the task looks at while it waits.

The node needs the harness installed (``pip install 'nsml-harness[cluster]'``) and the state root mounted at
the same path as on the head: code copies, checkpoints, logs and predictions are written there."""
from __future__ import annotations

import dataclasses
import json
import socket
from types import SimpleNamespace

import ray

from harness.core import doorbell, safefs
from harness.core.enums import FailureReason

from .base import Placement, RunSpec, Runtime

WATCH_EVERY = 0.25  # seconds between the node-local handle's polls (limits, a stop); its end wakes it at once
CANCEL_FILE = "cancel.json"  # in the run folder: {"reason": ..., "message": ...}, written by the scheduler
_runtimes: dict[str, tuple] = {}  # per worker process, by name: (the settings it was made with, the runtime)


def node_settings(settings):
    """The settings a node's runtime runs with: the same root and limits, placing nothing further."""
    return dataclasses.replace(settings, executor="local")


def here() -> tuple[str, str]:
    """This node's Ray id and address."""
    return ray.get_runtime_context().get_node_id(), f"{socket.gethostname()} {ray.util.get_node_ip_address()}"


def runtime_for(settings, name: str) -> Runtime:
    """The runtime NAME for these settings: a reused worker keeps it while the scheduler's settings stay the same
    (a changed harness.toml — limits, sandbox — gets a new one)."""
    from . import get_runtime
    settings = node_settings(settings)
    made_with, runtime = _runtimes.get(name, (None, None))
    if made_with != settings:
        runtime = get_runtime(name, settings)
        runtime.launch_builds = True  # (a node's own task: it may build an environment its interpreter needs)
        _runtimes[name] = (settings, runtime)
    return runtime


def request_cancel(spec: RunSpec, reason: FailureReason, message: str) -> None:
    """The scheduler's side: ask the run's task to stop its code (atomically: the task reads all or nothing)."""
    safefs.write_whole(spec.paths.run / CANCEL_FILE, json.dumps({"reason": reason.value, "message": message}), 0o600)


def _cancel_request(spec: RunSpec) -> tuple[FailureReason, str] | None:
    """The scheduler's request, if there is one (read without following a link or blocking on a FIFO, at most
    4 KiB: an unconfined run could plant something there)."""
    try:
        data = json.loads(safefs.read_from(spec.paths.run, CANCEL_FILE, 0, 4096))
        return FailureReason(data["reason"]), str(data.get("message", ""))[:500]
    except (OSError, safefs.UnsafeFile, ValueError, KeyError, TypeError):
        return None


def run(settings, runtime_name: str, spec: RunSpec):
    """Start the code with the GPUs Ray gave this task; yield where it landed, then (once it ended) its outcome
    with what the runtime learnt while it ran (a container's image digest, say)."""
    spec.gpu_ids = [int(g) for g in ray.get_gpu_ids()]
    handle = runtime_for(settings, runtime_name).start(spec)
    try:
        node_id, address = here()
        yield {"placement": Placement(node_id, address, list(spec.gpu_ids), handle.pid),
               "isolation": handle.isolation, "environment": handle.environment}
        asked = None
        while True:
            if asked is None:
                asked = _cancel_request(spec)
                if asked is not None:
                    handle.cancel(*asked)
            outcome = handle.poll()
            if outcome is not None:
                yield {"outcome": outcome, "isolation": handle.isolation, "environment": handle.environment}
                return
            fd = handle.exit_fd()
            if fd is not None:
                doorbell.wait_readable([fd], WATCH_EVERY)
            else:
                handle.wait(WATCH_EVERY)
    except KeyboardInterrupt:  # ray.cancel: the scheduler gave up waiting for a stop; end the code now
        handle.cancel(FailureReason.STOPPED, "cancelled")
        handle.wait(spec.kill_grace + 5.0)
        raise
    finally:
        handle.close()


def cleanup(settings, runtime_name: str, run: dict) -> bool:
    """On the node a dead scheduler's run was placed on: remove what it left (True when its code had started)."""
    from . import get_runtime
    return get_runtime(runtime_name, node_settings(settings)).cleanup(SimpleNamespace(**run))


def reap(settings, names: list[str]) -> list[str]:
    """On one node: what the runtimes NAMES left with no run to own it."""
    from . import reap_orphans
    return reap_orphans(node_settings(settings), names)
