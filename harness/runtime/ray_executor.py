"""The Ray executor (``[cluster] executor = "ray"``; the `cluster` extra): each admitted run becomes one Ray task
that asks for the run's GPUs, CPUs and memory (and, for ``--gpu-model``, the node's accelerator type), and runs
the node-local runtime on the node Ray chose (harness.runtime.ray_node) with the GPU ids Ray assigned.

The harness's scheduler stays the source of truth for admission (FIFO, team GPU quotas, submit quotas, its
lease): it admits runs against the cluster's GPU count (`gpu_models`, published for the CLI in
``.harness/cluster.json``), and Ray only places and runs them. The scheduler process is the Ray driver: when it
dies, Ray ends its tasks, and the next scheduler recovers their runs (cleaning up on their nodes).

Nothing outside this module and ray_node imports ray (an import-linter contract says so)."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from harness.core import doorbell
from harness.core.enums import FailureReason, RunStatus
from harness.core.errors import ClusterUnavailable

from . import gpus, ray_node
from .base import Executor, Handle, LaunchRefused, Outcome, Placement, RunSpec, Runtime

NAMESPACE = "nsml-harness"
INVENTORY_EVERY = 2.0  # seconds a seen inventory is reused before asking the cluster again
CLEANUP_TIMEOUT = 30.0
RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # where `ray start` notes a local cluster's address


def resolve_address(address: str) -> str:
    """ADDRESS as Ray takes it, after checking something listens there (a dead address makes ray.init wait for
    minutes; this says so in two seconds)."""
    if address == "auto":
        try:
            address = RAY_CURRENT_CLUSTER.read_text().strip()
        except OSError:
            raise ClusterUnavailable("no Ray cluster runs on this machine ([cluster] address = \"auto\"; start one "
                                     "with `ray start --head`, or give its address)") from None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2.0):
            pass
    except (OSError, ValueError) as exc:
        raise ClusterUnavailable(f"the Ray cluster at {address} does not answer ({exc})") from None
    return address


def connect(settings) -> None:
    """Join the cluster as a driver, once per process."""
    if ray.is_initialized():
        return
    address = resolve_address(settings.cluster_address)
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="WARNING")
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the cluster is not there for us
        raise ClusterUnavailable(f"the Ray cluster at {address} refused the connection: {exc}") from None


def cluster_nodes() -> list[dict]:
    """Every node Ray knows, alive or not: its id, address, GPUs (and their model), CPUs and memory."""
    nodes = []
    for n in ray.nodes():
        res = n.get("Resources", {})
        model = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), "")
        nodes.append({"id": n["NodeID"], "address": n.get("NodeManagerAddress", ""), "alive": bool(n.get("Alive")),
                      "gpus": int(res.get("GPU", 0)), "model": model, "cpus": res.get("CPU", 0),
                      "memory": int(res.get("memory", 0))})
    return nodes


class RayExecutor(Executor):
    def __init__(self, settings):
        super().__init__(settings)
        self._runtimes: dict[str, RayRuntime] = {}
        self._nodes: list[dict] = []
        self._seen = 0.0
        # one task per run, in reused workers (max_calls=0: the worker itself never holds a CUDA context), never
        # retried by Ray (a lost run is the scheduler's to name or requeue)
        self.run_task = ray.remote(max_calls=0)(ray_node.run)

    def runtime(self, name: str) -> Runtime:
        from . import check_name
        check_name(name, self.settings)
        if name not in self._runtimes:
            self._runtimes[name] = RayRuntime(self, name)
        return self._runtimes[name]

    def nodes(self) -> list[dict]:
        if time.monotonic() - self._seen > INVENTORY_EVERY:
            connect(self.settings)
            try:
                nodes = cluster_nodes()
            except Exception as exc:  # noqa: BLE001 - the cluster went away under us
                raise ClusterUnavailable(f"the Ray cluster at {self.settings.cluster_address} went away: {exc}") \
                    from None
            if nodes != self._nodes or not self.settings.cluster_file.exists():
                gpus.publish(self.settings, nodes)
            self._nodes, self._seen = nodes, time.monotonic()
        return self._nodes

    def gpu_models(self) -> list[str]:
        return gpus.node_models(self.nodes())

    def on_node(self, node_id: str, fn, *args):
        """Call FN(*ARGS) on that node (if it is alive), bounded in time; None when it could not be reached."""
        task = ray.remote(fn).options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, False))
        try:
            return ray.get(task.remote(*args), timeout=CLEANUP_TIMEOUT)
        except Exception:  # noqa: BLE001 - a dead node has nothing left to clean up
            return None

    def reap_orphans(self, names) -> list[str]:
        try:
            nodes = [n for n in self.nodes() if n["alive"]]
        except ClusterUnavailable:
            return []
        reaped = []
        for node in nodes:
            reaped += self.on_node(node["id"], ray_node.reap, self.settings, sorted(names)) or []
        return reaped


class RayRuntime(Runtime):
    """The runtime NAME, run on a node of the cluster."""

    def __init__(self, executor: RayExecutor, name: str):
        super().__init__(executor.settings)
        self.executor, self.name = executor, name

    def accelerator(self, model: str | None) -> str | None:
        """The cluster's accelerator type for --gpu-model MODEL (a case-insensitive part of its name; of several,
        the one with the most GPUs)."""
        if not model:
            return None
        counts: dict[str, int] = {}
        for node in self.executor.nodes():
            if node["alive"] and node["model"] and model.lower() in node["model"].lower():
                counts[node["model"]] = counts.get(node["model"], 0) + node["gpus"]
        return max(counts, key=counts.get) if counts else None

    def start(self, spec: RunSpec) -> RayHandle:
        connect(self.executor.settings)
        options = {"num_gpus": len(spec.gpu_ids), "num_cpus": spec.cpus or 1, "max_retries": 0,
                   "retry_exceptions": False, "num_returns": "streaming",
                   "name": f"run-{self.executor.settings.instance}-{spec.run_id}"}
        if spec.memory:
            options["memory"] = spec.memory
        accelerator = self.accelerator(spec.gpu_model)
        if accelerator:
            options["accelerator_type"] = accelerator
        items = self.executor.run_task.options(**options).remote(self.executor.settings, self.name, spec)
        return RayHandle(items, spec)

    def cleanup(self, run) -> bool:
        """A dead scheduler's run: clean up on its node (its task died with the scheduler, but a process group
        or container may be left there). True when its code had started."""
        node = (run.spec or {}).get("node") or {}
        started = bool(node) or (Path(run.run_dir) / "pid").exists()
        if node.get("id"):
            try:
                connect(self.executor.settings)
            except ClusterUnavailable:
                return started  # the cluster is gone, and what ran on it with it
            info = {"id": run.id, "run_dir": run.run_dir, "pid": run.pid, "spec": run.spec}
            self.executor.on_node(node["id"], ray_node.cleanup, self.executor.settings, self.name, info)
        return started


def _short(node_id: str | None) -> str:
    return (node_id or "?")[:12]


class RayHandle(Handle):
    """A run as a Ray task (ray_node.run): a watcher thread takes its two items (where it landed, how it ended)
    and rings `exit_fd` once the outcome is known."""

    isolation = "ray"

    def __init__(self, items, spec: RunSpec):
        self.items, self.spec = items, spec
        self.pid = None
        self.environment = None
        self._placement: Placement | None = None
        self._outcome: Outcome | None = None
        self._cancel: tuple[FailureReason, str] | None = None
        self._kill_at: float | None = None
        self._done = threading.Event()
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        threading.Thread(target=self._watch, name=f"ray-run-{spec.run_id}", daemon=True).start()

    # -- the watcher thread ---------------------------------------------------------------------------------
    def _code_started(self) -> bool:
        return self._placement is not None or (self.spec.paths.run / "pid").exists()

    def _lost(self, what: str) -> Outcome:
        """The task or its node is gone: LOST once the code had started, else back to the queue."""
        where = f"node {_short(self._placement.node_id)} ({self._placement.node})" if self._placement else "its node"
        if self._code_started():
            return Outcome(RunStatus.FAILED, FailureReason.LOST, None, f"Ray lost {where} while it ran: {what}")
        return Outcome(RunStatus.QUEUED, None, None, f"requeued: Ray lost {where} before the code started: {what}")

    def _watch(self) -> None:
        try:
            self._outcome = self._follow()
        except Exception as exc:  # noqa: BLE001 - the cluster itself went away: never leave the run running
            self._outcome = self._lost(f"the Ray cluster went away ({type(exc).__name__}: {_first_line(exc)})")
        self._done.set()
        try:
            os.write(self._write, b".")
        except OSError:
            pass

    def _follow(self) -> Outcome:
        try:
            started = self._next()
        except TaskCancelledError:
            return self._cancelled()
        except RayTaskError as exc:  # the runtime could not start the code on the node
            cause = exc.cause or exc  # (LaunchRefused: not the code's fault, as at this machine)
            return Outcome(RunStatus.FAILED, cause.reason if isinstance(cause, LaunchRefused) else
                           FailureReason.LAUNCH_ERROR, None, f"could not start: {_first_line(cause)}")
        except RayError as exc:  # its worker or node died
            return self._lost(_first_line(exc))
        if started is None:  # stopped while Ray was still placing it
            return self._cancelled()
        self.isolation, self.environment = started["isolation"], started["environment"]
        self.pid = started["placement"].pid
        self._placement = started["placement"]  # last: the scheduler records the isolation with the placement
        try:
            ended = self._next()
        except TaskCancelledError:
            return self._cancelled()
        except RayError as exc:
            return self._lost(_first_line(exc))
        if ended is None:
            return self._cancelled()
        self.isolation, self.environment = ended["isolation"], ended["environment"]
        return ended["outcome"]

    def _next(self):
        """The task's next item, cancelling the task if a stop was not honoured within the grace period (None
        then)."""
        while True:
            ready, _ = ray.wait([self.items], timeout=0.5)
            if ready:
                return ray.get(next(self.items))
            if self._kill_at is not None and time.monotonic() > self._kill_at:
                ray.cancel(self.items, force=self._code_started())
                return None

    def _cancelled(self) -> Outcome:
        reason, message = self._cancel or (FailureReason.STOPPED, "stopped")
        return Outcome(RunStatus.STOPPED if reason is FailureReason.STOPPED else RunStatus.FAILED, reason, None,
                       message)

    # -- the Handle contract ---------------------------------------------------------------------------------
    def placement(self) -> Placement | None:
        return self._placement

    def poll(self) -> Outcome | None:
        return self._outcome if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> Outcome | None:
        self._done.wait(timeout)
        return self.poll()

    def status(self) -> RunStatus:
        outcome = self.poll()
        return outcome.status if outcome else RunStatus.RUNNING

    def cancel(self, reason: FailureReason = FailureReason.STOPPED, message: str = "") -> None:
        if self._done.is_set() or self._cancel is not None:
            return
        self._cancel = (reason, message or reason.value)
        # the task stops the code (SIGTERM, then SIGKILL after the grace period); past that, or at once when
        # Ray has not placed it yet, the task itself is cancelled
        started = self._code_started()
        if started:
            try:
                ray_node.request_cancel(self.spec, reason, message or reason.value)
            except OSError:
                started = False  # the run folder is gone: nothing left to ask politely
        self._kill_at = time.monotonic() + (self.spec.kill_grace + 10.0 if started else 0.0)

    def exit_fd(self) -> int | None:
        return self._read

    def close(self) -> None:
        doorbell.close_fds(self._read, self._write)


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
