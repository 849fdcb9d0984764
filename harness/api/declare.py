"""What an operation declaration is: its name, its typed arguments (with the bounds the HTTP gate enforces), the
right it needs, its HTTP verb and path, and how its result travels. Plain dataclasses and typing only: the CLI
imports this on every command, so no pydantic here (the server builds its models from these, harness.server).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from enum import Enum
from typing import Any

from harness.core.errors import UserError

REQUIRED = inspect.Parameter.empty


class Right(str, Enum):
    """Who may call an operation (the service layer checks it; this is what the docs, tests and matrix read)."""
    ANYONE = "anyone"          # any account; it sees and acts on its own things
    OWNER = "owner"            # the session's or submission's owner, or an organizer
    OWNER_ONLY = "owner-only"  # the owner alone: nobody submits another's session, organizers included
    ORGANIZER = "organizer"    # organizers only


class Kind(str, Enum):
    """How an operation travels over HTTP."""
    CALL = "call"          # arguments in, one JSON result out: route and client are derived
    STREAM = "stream"      # arguments in, a byte stream out (chunked): route and client are derived
    CUSTOM = "custom"      # a folder or file travels (tar upload/download, a file's text) or a client-side loop:
    #                        the route (operation_id = name) and the client method are written by hand


class Paging(str, Enum):
    """How the server pages a large result (limit, offset); the derived client reads every page."""
    NONE = "none"
    LIST = "list"  # the result is a list
    ROWS = "rows"  # the result is a dict whose "rows" are paged; "total" is added


@dataclass(frozen=True)
class Arg:
    """One argument: its Python name and type, its default, its bounds at the HTTP gate, and its HTTP name."""
    name: str
    type: Any
    default: Any = REQUIRED
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    alias: str | None = None     # its name over HTTP, where the Python name is a keyword (`all_`, `round_ref`)
    local_only: str | None = None  # never sent: why, for a remote caller that gave it (a path on this machine)
    path: bool = False  # a path on the caller's machine (or a list of them): made absolute before it leaves
    items: tuple[tuple[str, Any], ...] = ()  # a list's bounds for each of its elements (each(ge=1, ...))

    @property
    def wire(self) -> str:
        return self.alias or self.name

    def item_arg(self) -> "Arg | None":
        """The declaration each element of a list argument is held to (None: its elements have no bounds)."""
        if not self.items:
            return None
        import typing
        (listed,) = [t for t in _options(self.type) if typing.get_origin(t) is list]
        return Arg(f"{self.name}[]", typing.get_args(listed)[0], **dict(self.items))

    def check(self, value, where: str) -> None:
        """VALUE (decoded JSON) against this argument's type and bounds: the local service's gate (the HTTP one
        is pydantic's, built from the same declaration in harness.server.derived)."""
        options = _options(self.type)
        if value is None and type(None) in options:
            return
        if not any(_is(value, t) for t in options if t is not type(None)):
            raise UserError(f"{where}: {self.name}: expected {getattr(self.type, '__name__', self.type)}")
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            raise UserError(f"{where}: {self.name}: not a finite number")  # (NaN passes every comparison)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for name, fails in (("ge", value < (self.ge if self.ge is not None else value)),
                                ("gt", self.gt is not None and value <= self.gt),
                                ("le", value > (self.le if self.le is not None else value))):
                if fails:
                    raise UserError(f"{where}: {self.name}: out of bounds ({name} {getattr(self, name)})")
        if isinstance(value, (str, list)):
            if self.min_length is not None and len(value) < self.min_length or \
                    self.max_length is not None and len(value) > self.max_length:
                raise UserError(f"{where}: {self.name}: length out of bounds")
        if isinstance(value, str) and self.pattern is not None:
            import re
            if not re.fullmatch(self.pattern, value):
                raise UserError(f"{where}: {self.name}: does not match {self.pattern}")
        if isinstance(value, list) and (item := self.item_arg()) is not None:
            for v in value:
                item.check(v, where)

    def bounds(self) -> dict:
        return {k: v for k in ("ge", "gt", "le", "min_length", "max_length", "pattern")
                if (v := getattr(self, k)) is not None}


def _options(t) -> tuple:
    """The types a declared type T allows: its members if it is a union (X | Y, Optional[X]), else T."""
    import types
    import typing
    return typing.get_args(t) if typing.get_origin(t) in (typing.Union, types.UnionType) else (t,)


def each(**bounds) -> tuple[tuple[str, Any], ...]:
    """Bounds for each element of a list argument: Arg("ids", list[int], items=each(ge=1))."""
    return tuple(sorted(bounds.items()))


def _is(value, t) -> bool:
    """Whether decoded JSON VALUE is of declared type T (bool is not a number; an int is a float)."""
    import typing
    if typing.get_origin(t) is list:
        (item,) = typing.get_args(t)
        return isinstance(value, list) and all(_is(v, item) for v in value)
    if t is bool:
        return isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, t) if isinstance(t, type) else False


@dataclass(frozen=True)
class Operation:
    """One operation of the API: declared once, in harness.api.operations."""
    name: str
    verb: str                       # GET, POST, PUT, DELETE
    path: str                       # under /api/v1; {session} stands for /USER/TASK/N, {x} for an argument
    args: tuple[Arg, ...] = ()
    result: Any = None              # the result's type (a TypedDict, a list of one, str, int or None)
    right: Right = Right.ANYONE
    kind: Kind = Kind.CALL
    paging: Paging = Paging.NONE
    notes: bool = False             # takes a `note` callable; over HTTP its lines come back as "notes"
    progress: bool = False          # takes a `progress(step, total, text)` callable for a long wait (keyword only;
    #                                 the local service sends its calls as they happen; HTTP keeps them)
    cli: tuple[str, ...] = ()       # the CLI commands that call it ("session run", "board")
    doc: str = ""

    def path_args(self) -> list[str]:
        import string
        return [f for _, f, _, _ in string.Formatter().parse(self.path) if f]

    def signature(self) -> inspect.Signature:
        """The Python signature every implementation has: (self, *args, [note], [*, progress])."""
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=a.default,
                                     annotation=a.type) for a in self.args]
        if self.notes:
            params.append(inspect.Parameter("note", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
        if self.progress:
            params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None))
        return inspect.Signature(params)

    def bind(self, args: tuple, kwargs: dict) -> dict:
        """The call's arguments by name, defaults applied (a wrong call is the caller's bug: TypeError)."""
        bound = self.signature().bind(None, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        return values


class Registry(dict):
    """The declared operations by name; a wrong name gets a 'did you mean'."""

    def add(self, op: Operation) -> Operation:
        assert op.name not in self, f"operation {op.name} declared twice"
        self[op.name] = op
        return op

    def __missing__(self, name: str):
        import difflib
        near = difflib.get_close_matches(name, list(self), n=1)
        raise UserError(f"operation {name!r} is not declared" + (f"; did you mean {near[0]!r}?" if near else ""))
