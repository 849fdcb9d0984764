"""Executors: where runs are placed. `local` (this machine: its runtimes, its GPU inventory) is the default and
needs nothing more; `ray` (harness.runtime.ray_executor, the `cluster` extra) places each run on a node of a Ray
cluster. Chosen by ``[cluster] executor`` in harness.toml; the scheduler and recovery take theirs from
`get_executor` and use only what harness.runtime.base.Executor declares."""
from __future__ import annotations

import importlib

from harness.core.errors import UserError

from . import gpus
from .base import Executor, Runtime

BUILTIN = {"ray": "harness.runtime.ray_executor:RayExecutor"}


class LocalExecutor(Executor):
    """Runs on this machine, with the runtimes by name (harness.runtime.get_runtime)."""

    def __init__(self, settings):
        super().__init__(settings)
        self._runtimes: dict[str, Runtime] = {}

    def runtime(self, name: str) -> Runtime:
        from . import get_runtime
        if name not in self._runtimes:
            self._runtimes[name] = get_runtime(name, self.settings)
        return self._runtimes[name]

    def reload(self, settings) -> None:
        super().reload(settings)
        self._runtimes.clear()

    def gpu_models(self) -> list[str]:
        return gpus.local_models(self.settings)

    def reap_orphans(self, names) -> list[str]:
        from . import reap_orphans
        return reap_orphans(self.settings, names)


def get_executor(settings) -> Executor:
    if settings.executor == "local":
        return LocalExecutor(settings)
    module, _, attr = BUILTIN[settings.executor].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise UserError(f"[cluster] executor = {settings.executor!r} needs the cluster extra "
                        f"(pip install 'nsml-harness[cluster]'): {exc}") from None
    return cls(settings)
