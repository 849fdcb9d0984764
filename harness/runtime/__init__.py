"""Runtimes by name: a dict of built-ins, imported lazily, plus `auto`."""
from __future__ import annotations

import difflib
import importlib

from ..errors import UserError
from .base import Handle, Mount, Outcome, Runtime, RunSpec  # noqa: F401

BUILTIN = {"process": "harness.runtime.process:ProcessRuntime",
           "docker": "harness.runtime.docker_runtime:DockerRuntime"}
CHOICES = [*BUILTIN, "auto"]


def check_name(name: str) -> None:
    if name not in CHOICES:
        close = difflib.get_close_matches(name, CHOICES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UserError(f"--runtime: unknown runtime {name!r}.{hint} (known: {', '.join(CHOICES)})")


def resolve(name: str) -> tuple[str, str]:
    """The runtime a run will use, and a note saying why when `auto` chose it."""
    check_name(name)
    if name != "auto":
        if name == "docker":
            from .docker_runtime import engine_answers
            if not engine_answers():
                raise UserError("--runtime docker: no Docker engine answers (start dockerd, or see "
                                "scripts/setup-docker.sh)")
        return name, ""
    from .docker_runtime import engine_answers
    if engine_answers():
        return "docker", "runtime: docker (auto: a Docker engine answered)"
    return "process", "runtime: process (auto: no Docker engine answered)"


def get_runtime(name: str, settings) -> Runtime:
    check_name(name)
    module, _, attr = BUILTIN[name].partition(":")
    return getattr(importlib.import_module(module), attr)(settings)


def reap_orphans(settings, names=None) -> list[str]:
    """Ask every runtime (or those NAMES) to remove what a dead scheduler of this instance left behind."""
    reaped = []
    for name in BUILTIN:
        if names is not None and name not in names:
            continue
        try:
            runtime = get_runtime(name, settings)
            reaped += runtime.reap_orphans()
        except Exception:  # noqa: BLE001 - an unavailable runtime has nothing to reap
            continue
    return reaped
