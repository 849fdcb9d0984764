"""The runtime interface: start a run from a spec, get back a handle with poll/wait/status/cancel/logs.

The scheduler only talks to this interface; it never asks which runtime it has.
"""
from __future__ import annotations

import abc
import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.core.enums import FailureReason, RunStatus
from harness.core.names import parse_session_name
from harness.core.safefs import remove_tree


class LaunchRefused(RuntimeError):
    """A runtime will not start this run here, through no fault of its code (the run fails as REASON, which
    counts against no quota)."""

    reason = FailureReason.HARNESS_ERROR


@dataclass
class Mount:
    """A host folder the run is given, and where a container runtime places it."""

    host: Path
    target: str
    read_only: bool = True


@dataclass
class RunPaths:
    """The host folders and files a run is given (harness.runs.spec makes them; a runtime maps them in)."""

    run: Path  # the run's own folder, runs/ID: its pid file, and the parents of what follows
    log: Path  # what the code prints, runs/ID/log.txt
    app: Path | None = None  # the run's copy of the code (its working directory)
    events: Path | None = None  # the events file nsml.report / nsml.save append to
    data: Path | None = None  # the data view behind DATASET_PATH (never the test labels)
    checkpoints: Path | None = None  # the session's checkpoint folder
    sessions: Path | None = None  # the user's own sessions, for nsml.load(session=...)
    output: Path | None = None  # a submit's prediction folder
    loader: Path | None = None  # a submit's copy of the task's data_loader.py


@dataclass
class RunSpec:
    """Everything a runtime needs to execute one run of participant code."""

    run_id: int
    name: str  # the session name, for labels and messages
    argv: list[str]  # the entry file and its arguments (the interpreter is the runtime's)
    workdir: Path  # the run's copy of the code: the working directory
    paths: RunPaths  # the host folders and files the run is given
    env: dict[str, str] = field(default_factory=dict)  # NSML_* variables, paths as host paths
    gpu_ids: list[int] = field(default_factory=list)
    gpu_model: str | None = None  # --gpu-model: a cluster places the run on a node with GPUs of this model
    cpus: float | None = None
    memory: int | None = None
    shm_size: int | None = None
    time_limit: float | None = None
    max_log_bytes: int | None = None
    kill_grace: float = 3.0
    mounts: list[Mount] = field(default_factory=list)  # what a container sees; the process runtime ignores it
    image: str | None = None  # the task manifest's default image (container runtimes)
    network: bool = False  # the task allows participant code on the network
    source_builds: bool = False  # the task lets session requirements build from source (docker images)
    labels: dict[str, str] = field(default_factory=dict)
    data_view: Path | None = None  # host folder behind DATASET_PATH: mount points only, filled by data mounts
    data_target: str = ""  # where a sandbox or container sees it (/data/TASK, as on NSML)
    extra_views: list = field(default_factory=list)  # (view, target) of each more task a session reads (-d a,b)
    disk_limits: list = field(default_factory=list)  # runtime.disk_limits.DiskLimit groups, measured while it runs
    confine: bool = False  # a participant asked for it over HTTP: it runs confined or not at all (process.start)

    @property
    def log_path(self) -> Path:
        return self.paths.log

    @property
    def owner(self) -> str:
        """The user whose session this is (core.names: the one grammar of a session's name)."""
        return parse_session_name(self.name)[0]

    def data_views(self) -> list[tuple[Path, str]]:
        """Each data view and where the run sees it: its task's, then each more task's (NSML's `-d a,b`)."""
        return ([(self.data_view, self.data_target)] if self.data_view and self.data_target else []) + \
            list(self.extra_views)

    def data_mounts(self) -> list[tuple[Mount, Path, str]]:
        """The organizer's folders and files placed under a data view (read-only binds of the tasks themselves),
        each with its view and where that view is seen."""
        return [(m, view, target) for view, target in self.data_views() for m in self.mounts
                if m.target.startswith(target + "/")]


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS", "RAYON_NUM_THREADS",
                    "RAYON_RS_NUM_CPUS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def thread_env(cpus: float | None) -> dict[str, str]:
    """The thread counts of every common library (OpenMP and torch, MKL, OpenBLAS, numexpr, Accelerate, BLIS,
    Rust's rayon under tokenizers and polars, TensorFlow) for a run given CPUS cores: a run sees as many threads
    as it was given, as in a container with a CPU quota (one thread per core of a busy machine is what made
    runs crawl)."""
    if not cpus:
        return {}
    n = str(max(1, int(cpus)))
    return {name: n for name in THREAD_VARIABLES}


def gpu_env(ids) -> dict[str, str]:
    """A run's devices: CUDA_VISIBLE_DEVICES with IDS, numbered in PCI bus order — the order of NVML's indices,
    which the inventory allocates by (CUDA's own default puts the fastest device first, which on a machine of
    mixed GPUs would hand a run another device than the one it was given)."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in ids), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def target_env(spec: RunSpec, mounts: list[Mount]) -> dict[str, str]:
    """The spec's environment with host paths replaced by where a sandbox or container sees them."""
    pairs = []
    for m in mounts:
        pairs.append((str(m.host), m.target))
        if m.host.name == PurePosixPath(m.target).name:  # a mount keeps its folder name: its parent maps too
            pairs.append((str(m.host.parent), str(PurePosixPath(m.target).parent)))
    pairs.sort(key=lambda p: len(p[0]), reverse=True)
    env = {}
    for key, value in spec.env.items():
        for host, target in pairs:
            if value == host or value.startswith(host + "/"):
                value = target + value[len(host):]
                break
        env[key] = value
    return env


@dataclass
class Placement:
    """Where a run landed: the node (a cluster's node id and address; None on this machine), the GPU ids it was
    given there, and its process id on that node."""

    node_id: str | None
    node: str | None
    gpu_ids: list[int]
    pid: int | None = None

    def record(self) -> dict:
        return {"id": self.node_id, "address": self.node, "gpu_ids": list(self.gpu_ids)}


@dataclass
class Outcome:
    status: RunStatus
    reason: FailureReason | None = None
    exit_code: int | None = None
    message: str = ""


class Handle(abc.ABC):
    """One run as its runtime started it. The scheduler uses exactly what is declared here."""

    pid: int | None  # the process (group) id when the runtime has one, for recovery
    environment: str | None  # what ran the code (interpreter, or image and digest), once known
    isolation: str  # how the code was confined: "docker", "bwrap", or "none" (not isolated)
    spec: RunSpec  # what it was started with

    @abc.abstractmethod
    def poll(self) -> Outcome | None:
        """Enforce limits; return the outcome once the run has ended, else None."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the outcome (or TIMEOUT); None on timeout."""

    @abc.abstractmethod
    def status(self) -> RunStatus: ...

    @abc.abstractmethod
    def cancel(self, reason: FailureReason = FailureReason.STOPPED, message: str = "") -> None:
        """End the run (its whole process group or container); poll() then reports REASON."""

    def logs(self) -> Path:
        return self.spec.log_path

    @abc.abstractmethod
    def exit_fd(self) -> int | None:
        """A file descriptor that becomes readable once the run has ended (so the scheduler sleeps in select
        instead of polling); None: the scheduler polls this handle on its tick."""

    @abc.abstractmethod
    def close(self) -> None:
        """Called once the outcome is recorded: release what the run held (a container, a descriptor, its
        folder's scratch: `remove_scratch`)."""

    def placement(self) -> Placement | None:
        """Where the run landed, once a cluster has placed it (the scheduler records it with the run's GPU ids).
        None: on this machine, with the GPU ids of its spec."""
        return None

    def held_still(self) -> contextlib.AbstractContextManager:
        """A block in which the run's processes are frozen, for measuring its folders (a run cannot move its bytes
        behind the walk); a runtime that cannot freeze its runs holds nothing (the walk's own defences remain)."""
        return contextlib.nullcontext(False)

    def pids(self) -> list[int]:
        """This machine's ids of the run's processes, for counting what they hold open (runtime.open_files);
        empty where the runtime cannot list them (the run is then measured by its folders alone)."""
        return []

    def places(self) -> list[tuple[str, bool]] | None:
        """The paths the run sees its mounts at, each with whether the run may write there (a deleted file counts
        against the run only where it could have made it: not a library of the harness's replaced while the run
        mapped it); None: every deleted file on the run's file systems counts."""
        return None


class Runtime(abc.ABC):
    """Where participant code runs. Built-ins and plugins (harness.runtime.BUILTIN) implement all of this."""

    name: str

    def __init__(self, settings=None):
        self.settings = settings

    @abc.abstractmethod
    def start(self, spec: RunSpec) -> Handle:
        """Start the run (or begin to: an image may be built first); never blocks on the participant's code."""

    @abc.abstractmethod
    def cleanup(self, run) -> bool:
        """After a scheduler died: remove what RUN left behind. True when its participant code had started."""

    def reap_orphans(self) -> list[str]:
        """Remove what a dead scheduler of this state root left with no run to own it; the names removed."""
        return []


class Executor(abc.ABC):
    """Where runs are placed: this machine (harness.runtime.executors.LocalExecutor) or a cluster
    (harness.runtime.ray_executor). The scheduler admits runs against its GPU inventory, starts them with its
    runtimes, and never asks which executor it has."""

    def __init__(self, settings):
        self.settings = settings

    @abc.abstractmethod
    def runtime(self, name: str) -> Runtime:
        """The runtime NAME as this executor runs it (on a node a cluster picks, for a cluster)."""

    @abc.abstractmethod
    def gpu_models(self) -> list[str]:
        """One entry per GPU the scheduler may hand out: its model name ("" when unknown). Raises
        harness.core.errors.ClusterUnavailable when the cluster does not answer."""

    @abc.abstractmethod
    def reap_orphans(self, names) -> list[str]:
        """Remove what a dead scheduler left behind in the runtimes NAMES; the names of what was removed."""

    def reload(self, settings) -> None:
        """harness.toml changed: runs started from now on use SETTINGS."""
        self.settings = settings

    def close(self) -> None:
        """The scheduler is done with it."""


def mount_places(mounts: list[Mount], host_view: bool = False) -> list[tuple[str, bool]]:
    """Where a run sees each of MOUNTS (its target; HOST_VIEW: its host path, for a run that is not confined) and
    whether it may write there (Handle.places). A read-only mount that shows a folder a writable mount also shows
    counts as writable: the user's sessions, read-only, show the checkpoints being written, and a file reopened
    through that view is still one the run made."""
    writable = [m.host.resolve() for m in mounts if not m.read_only]

    def shows_writable(host: Path) -> bool:
        return any(host == w or host in w.parents or w in host.parents for w in writable)
    return [(str(m.host.resolve()) if host_view else m.target, not m.read_only or shows_writable(m.host.resolve()))
            for m in mounts]


RUN_SCRATCH = ("app", "tmp", "nfs", "data", "sessions")  # what a run's folder holds only while it runs (runs.spec)
RUN_OUTPUT = "output"  # a submit run's writable output folder: its prediction, taken by scoring.grade.take_prediction
RUN_GRADED = "graded"  # the harness's copy of a submit run's prediction (scoring.grade.prediction_path), kept


def remove_scratch(run_dir: Path) -> threading.Thread:
    """Remove, in the background, what RUN_DIR holds only while its run runs — its code copy, /tmp, data view (a
    copy where it runs unsandboxed) and sessions link — once its outcome is recorded: kept, they would pile up on
    the machine's disk run after run, under no limit. Its events folder and a submit's output folder go when its
    end is recorded (runs.ending.mark: the events read to their end, the prediction taken); its log and the
    harness's copy of its prediction stay."""
    return remove_later(*(Path(run_dir) / name for name in RUN_SCRATCH))


def remove_later(*paths: Path) -> threading.Thread:
    """PATHS removed in the background, one by one; never follows a link, whatever the depth (core.safefs)."""
    def remove() -> None:
        for path in paths:
            remove_tree(path)  # (raises nothing: one path's trouble never leaves the others)
    worker = threading.Thread(target=remove, name=f"remove-{paths[0].parent.name if paths else ''}", daemon=True)
    worker.start()
    return worker


def wait_by_polling(handle: Handle, timeout: float | None, interval: float = 0.05) -> Outcome | None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        outcome = handle.poll()
        if outcome is not None:
            return outcome
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def kill_group(pid: int) -> None:
    """SIGKILL a whole process group; one that is already gone is fine."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
