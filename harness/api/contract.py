"""`Api`: the base class every implementation derives from, its abstract methods made from the declarations (so
the base class *is* the contract: a method a caller uses is declared in harness.api.operations, or it is not
there). `service.local.LocalApi` implements each one; `client.RemoteApi` gets each CALL and STREAM operation made
from its declaration, and writes the CUSTOM ones by hand.
"""
from __future__ import annotations

import abc

from .declare import Operation
from .operations import OPERATIONS


class Api(abc.ABC):
    """Every operation of the CLI and the web. Identity is the caller's: a local user, or a server token's
    account. Results are plain JSON-able data (harness.api.wire), so every front end prints the same."""

    remote = False

    def close(self) -> None:
        """Release what the implementation holds (an HTTP connection pool); a no-op locally."""


def _abstract(op: Operation):
    def method(self, *args, **kwargs):
        raise NotImplementedError(op.name)
    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = op.doc
    method.__signature__ = op.signature()
    return abc.abstractmethod(method)


for _op in OPERATIONS.values():
    setattr(Api, _op.name, _abstract(_op))
abc.update_abstractmethods(Api)


def implements(cls: type) -> list[str]:
    """What CLS (an implementation) gets wrong: a declared operation whose signature differs, or a public method
    that no declaration names (tests/test_api_declared.py asserts this is empty)."""
    import inspect
    problems = []
    for name, value in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name == "close":
            continue
        if name not in OPERATIONS:
            problems.append(f"{cls.__name__}.{name}: no declaration")
            continue
        want = [p for p in OPERATIONS[name].signature().parameters]
        got = [p for p in inspect.signature(value).parameters]
        if want != got:
            problems.append(f"{cls.__name__}.{name}{tuple(got)}: declared as {tuple(want)}")
    return problems


def derived(cls: type, make) -> type:
    """CLS with a method made by MAKE(op) for each declared operation it does not write by hand."""
    for op in OPERATIONS.values():
        if op.name not in vars(cls):
            fn = make(op)
            if fn is not None:
                fn.__name__, fn.__qualname__, fn.__doc__ = op.name, f"{cls.__name__}.{op.name}", op.doc
                fn.__signature__ = op.signature()
                fn.derived_from = op
                setattr(cls, op.name, fn)
    abc.update_abstractmethods(cls)
    return cls
