"""runtime: where a run's process lives. base (the contract: `Runtime` start/cleanup/reap_orphans/
environment and the `Handle` poll/wait/status/cancel/logs/exit_fd/close it returns; `RunSpec`), process (a
process group, in a bubblewrap sandbox via sandbox), docker_runtime (a container), images (the session image),
environments (per-session virtualenvs from requirements.txt), gpus (inventory and allocation), disk_limits,
memory_use (a run's memory where it has no control group), entry_flags (which of NSML's flags an entry accepts).
May import: core.

Runtimes by name: a dict of built-ins, plus the `harness.runtimes` entry point group, plus `[runtimes]` in
harness.toml (NAME = "module:Class"), all imported lazily; `auto` picks docker when an engine answers. Unknown
names get a "did you mean".
"""
from __future__ import annotations

import difflib
import functools
import importlib
from typing import TYPE_CHECKING

from harness.core.errors import UserError

if TYPE_CHECKING:
    from .base import Runtime

# from .base, when first asked for
_CONTRACT = ("Handle", "LaunchRefused", "Mount", "Outcome", "RunPaths", "RunSpec", "Runtime")


def __getattr__(name: str):
    """The contract's names, imported on first use (`ps` reads the GPU inventory and never needs them)."""
    if name in _CONTRACT:
        from . import base
        return getattr(base, name)
    raise AttributeError(f"module 'harness.runtime' has no attribute {name!r}")

BUILTIN = {"process": "harness.runtime.process:ProcessRuntime",
           "docker": "harness.runtime.docker_runtime:DockerRuntime"}
ENTRY_POINT_GROUP = "harness.runtimes"


@functools.lru_cache(maxsize=1)
def _entry_points() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import entry_points  # only when a name is looked up: `ps` and `board` never do
    return tuple((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))


def registry(settings=None) -> dict[str, str]:
    """Every runtime by name → "module:Class": built-ins, then entry points, then the settings' own."""
    found = dict(BUILTIN)
    for name, value in _entry_points():
        found.setdefault(name, value)
    if settings is not None:
        found.update(settings.runtime_plugins)
    return found


def check_name(name: str, settings=None, where: str = "--runtime") -> None:
    """NAME is a runtime (or `auto`); WHERE says where it was given, for the one-line error."""
    choices = [*registry(settings), "auto"]
    if name not in choices:
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UserError(f"{where}: unknown runtime {name!r}.{hint} (known: {', '.join(choices)})")


def check_settings(settings) -> None:
    """The settings' own runtime and runtime_choices name runtimes (a typo in harness.toml is named there, not
    blamed on a --runtime nobody gave)."""
    from harness.core.settings import ENV_RUNTIME, SETTINGS_FILE
    check_name(settings.runtime, settings, f"{SETTINGS_FILE}: runtime (or {ENV_RUNTIME})")
    for i, choice in enumerate(settings.runtime_choices):
        check_name(choice, settings, f"{SETTINGS_FILE}: runtime_choices[{i}]")


def resolve(name: str, settings=None) -> tuple[str, str]:
    """The runtime a run will use, and a note saying why when `auto` chose it."""
    check_name(name, settings)
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
    from .base import Runtime
    check_name(name, settings)
    module, _, attr = registry(settings)[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"runtime {name!r}: cannot load {registry(settings)[name]!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Runtime)):
        raise UserError(f"runtime {name!r}: {registry(settings)[name]!r} is not a harness.runtime.Runtime")
    return cls(settings)


def reap_orphans(settings, names=None) -> list[str]:
    """Ask every runtime (or those NAMES) to remove what a dead scheduler of this instance left behind."""
    reaped = []
    for name in registry(settings):
        if names is not None and name not in names:
            continue
        try:
            reaped += get_runtime(name, settings).reap_orphans()
        except Exception:  # noqa: BLE001 - an unavailable runtime has nothing to reap
            continue
    return reaped
