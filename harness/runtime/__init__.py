"""Runtimes by name: a dict of built-ins, imported lazily."""
from __future__ import annotations

import difflib
import importlib

from ..errors import UserError
from .base import Handle, Outcome, Runtime, RunSpec  # noqa: F401

BUILTIN = {"process": "harness.runtime.process:ProcessRuntime"}


def get_runtime(name: str) -> Runtime:
    if name not in BUILTIN:
        close = difflib.get_close_matches(name, list(BUILTIN), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UserError(f"--runtime: unknown runtime {name!r}.{hint} (known: {', '.join(sorted(BUILTIN))})")
    module, _, attr = BUILTIN[name].partition(":")
    return getattr(importlib.import_module(module), attr)()
