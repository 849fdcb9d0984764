"""What runs on a Ray node for the Ray executor (harness.runtime.ray_executor): one `RunActor` per run, which
starts the node-local runtime (the sandboxed process, or docker) with the GPU ids Ray assigned, watches it
(its limits, a stop) and returns its outcome; and the clean-up a recovering scheduler asks of a node.

The node needs the harness installed (``pip install 'nsml-harness[cluster]'``) and the state root mounted at
the same path as on the head: code copies, checkpoints, logs and predictions are written there."""
from __future__ import annotations

import dataclasses
import socket
import threading
from types import SimpleNamespace

import ray

from harness.core import notify

from .base import Handle, Placement, RunSpec

WATCH_EVERY = 0.25  # seconds between the node-local handle's polls (limits); its end wakes the watcher at once


def node_settings(settings):
    """The settings a node's runtime runs with: the same root and limits, placing nothing further."""
    return dataclasses.replace(settings, executor="local")


def here() -> tuple[str, str]:
    """This node's Ray id and address."""
    return ray.get_runtime_context().get_node_id(), f"{socket.gethostname()} {ray.util.get_node_ip_address()}"


class RunActor:
    """One run on the node Ray placed it on. Its methods run on threads of their own (max_concurrency): `start`
    once, then `wait` until the outcome while `cancel` may come at any time; only `wait`'s thread touches the
    node-local handle."""

    def __init__(self, settings, runtime_name: str):
        from . import get_runtime
        self.runtime = get_runtime(runtime_name, node_settings(settings))
        self.handle: Handle | None = None
        self.started = threading.Event()
        self.cancel_request: tuple | None = None

    def start(self, spec: RunSpec) -> dict:
        """Start the code with the GPUs Ray gave this actor; where it landed."""
        try:
            spec.gpu_ids = [int(g) for g in ray.get_gpu_ids()]
            self.handle = self.runtime.start(spec)
        finally:
            self.started.set()
        node_id, address = here()
        return {"placement": Placement(node_id, address, list(spec.gpu_ids), self.handle.pid),
                "isolation": self.handle.isolation, "environment": self.handle.environment}

    def wait(self) -> dict | None:
        """The run's outcome, with what the runtime learnt while it ran (a container's image digest, say); None
        when it never started."""
        self.started.wait()
        handle = self.handle
        if handle is None:
            return None
        try:
            while True:
                if self.cancel_request is not None:
                    request, self.cancel_request = self.cancel_request, None
                    handle.cancel(*request)
                outcome = handle.poll()
                if outcome is not None:
                    return {"outcome": outcome, "isolation": handle.isolation, "environment": handle.environment}
                fd = handle.exit_fd()
                if fd is not None:
                    notify.wait_readable([fd], WATCH_EVERY)
                else:
                    handle.wait(WATCH_EVERY)
        finally:
            handle.close()

    def cancel(self, reason, message: str = "") -> None:
        self.cancel_request = (reason, message)


def cleanup(settings, runtime_name: str, run: dict) -> bool:
    """On the node a dead scheduler's run was placed on: remove what it left (True when its code had started)."""
    from . import get_runtime
    return get_runtime(runtime_name, node_settings(settings)).cleanup(SimpleNamespace(**run))


def reap(settings, names: list[str]) -> list[str]:
    """On one node: what the runtimes NAMES left with no run to own it."""
    from . import reap_orphans
    return reap_orphans(node_settings(settings), names)
