"""The runtime interface: start a run from a spec, get back a handle with poll/wait/status/cancel/logs.

The scheduler only talks to this interface; it never asks which runtime it has.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..enums import FailureReason, RunStatus


@dataclass
class Mount:
    """A host folder the run is given, and where a container runtime places it."""

    host: Path
    target: str
    read_only: bool = True


@dataclass
class RunSpec:
    """Everything a runtime needs to execute one run of participant code."""

    run_id: int
    name: str  # the session name, for labels and messages
    argv: list[str]  # the entry file and its arguments (the interpreter is the runtime's)
    workdir: Path  # the run's copy of the code: the working directory
    paths: dict[str, Path]  # named host folders/files the run is given (dataset view, checkpoints, ...)
    env: dict[str, str] = field(default_factory=dict)  # NSML_* variables, paths as host paths
    gpu_ids: list[int] = field(default_factory=list)
    cpus: float | None = None
    memory: int | None = None
    shm_size: int | None = None
    time_limit: float | None = None
    max_log_bytes: int | None = None
    kill_grace: float = 3.0
    mounts: list[Mount] = field(default_factory=list)  # what a container sees; the process runtime ignores it
    image: str | None = None  # the task manifest's default image (container runtimes)
    network: bool = False  # the task allows participant code on the network (container runtimes)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.paths["log"]


@dataclass
class Outcome:
    status: RunStatus
    reason: FailureReason | None = None
    exit_code: int | None = None
    message: str = ""


class Handle(Protocol):
    pid: int | None
    environment: str | None  # what ran the code (interpreter, or image and digest), once known

    def poll(self) -> Outcome | None:
        """Enforce limits; return the outcome once the run has ended, else None."""

    def wait(self, timeout: float | None = None) -> Outcome | None: ...

    def status(self) -> RunStatus: ...

    def cancel(self, reason: FailureReason = FailureReason.STOPPED, message: str = "") -> None: ...

    def logs(self) -> Path: ...


class Runtime(Protocol):
    name: str

    def start(self, spec: RunSpec) -> Handle: ...


def wait_by_polling(handle: Handle, timeout: float | None, interval: float = 0.05) -> Outcome | None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        outcome = handle.poll()
        if outcome is not None:
            return outcome
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def truncate_log(path: Path, limit: int | None) -> None:
    """Keep a log under its limit: cut it at the limit and mark the cut (writers append, so output goes on)."""
    if not limit:
        return
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    marker = f"\n[harness] log truncated: over {limit} bytes\n".encode()
    if size > limit + len(marker):
        with open(path, "r+b") as fh:
            fh.truncate(limit)
            fh.seek(limit)
            fh.write(marker)
