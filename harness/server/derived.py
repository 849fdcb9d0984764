"""The routes of /api/v1 made from the declarations (harness.api.operations): for each CALL and STREAM operation
one route, its path and verb as declared, its arguments from the path, the query (GET, DELETE) or a JSON body,
checked against the declared bounds by pydantic before the caller's `LocalApi` method runs. Paged results take
`limit` and `offset`; notes come back beside the result. The CUSTOM operations' routes are in transfers.py.
"""
from __future__ import annotations

import inspect
import typing
from typing import Annotated, Optional

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, create_model

from harness.api import OPERATIONS, Arg, Kind, Operation, Paging
from harness.api.declare import REQUIRED
from harness.core.names import NAME_PATTERN, SESSION_NUMBER_MAX, session_name
from harness.service.local import LocalApi
from harness.web.streaming import ClosingStreamingResponse

from .deps import Caller

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
SessionUser = Annotated[str, PathParam(pattern=f"^{NAME_PATTERN}$")]
SessionTask = Annotated[str, PathParam(min_length=1, max_length=200)]
SessionNumber = Annotated[int, PathParam(ge=0, le=SESSION_NUMBER_MAX)]
SESSION_PARAMS = {"user": SessionUser, "task": SessionTask, "number": SessionNumber}


class RunOpts(BaseModel):
    """A run's options over HTTP (`opts` of start_session and fork_session); a key it does not declare is named
    and refused (`opts.gpu`: a typo never runs with the default instead)."""
    model_config = ConfigDict(extra="forbid")
    gpus: int = Field(0, ge=0, le=1024)
    cpus: Optional[float] = Field(None, gt=0, le=4096)
    memory: Optional[Annotated[str, Field(max_length=32)]] = None
    shm_size: Optional[Annotated[str, Field(max_length=32)]] = None
    time_limit: Optional[float] = Field(None, gt=0, le=10 ** 8)
    runtime: Optional[Annotated[str, Field(max_length=64)]] = None
    gpu_model: Optional[Annotated[str, Field(max_length=64)]] = None
    esm: Optional[Annotated[str, Field(max_length=64)]] = None
    datasets: Optional[list[Annotated[str, Field(min_length=1, max_length=200)]]] = Field(None, max_length=8)


WIRE_TYPES = {"opts": RunOpts}  # arguments whose declared type is a plain dict, checked field by field here


def wire_type(kind, exact: bool = False):
    """A declared result type as pydantic takes it: the api's typing.TypedDicts become typing_extensions ones
    (pydantic's requirement before Python 3.12), inside lists, tuples, dicts and Optionals too. EXACT: a key the
    type does not declare is an error (the results test)."""
    import typing

    import typing_extensions
    if kind is None or kind is type(None):
        return type(None)
    if typing.is_typeddict(kind):
        hints = typing.get_type_hints(kind, include_extras=True)
        fields = {}
        for name, hint in hints.items():
            if typing.get_origin(hint) is typing.NotRequired:
                fields[name] = typing_extensions.NotRequired[wire_type(typing.get_args(hint)[0], exact)]
            else:
                fields[name] = wire_type(hint, exact)
        made = typing_extensions.TypedDict(kind.__name__, fields)
        made.__doc__ = kind.__doc__
        if exact:
            made.__pydantic_config__ = {"extra": "forbid"}
        return made
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is None or not args:
        return kind
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        return typing.Union[tuple(wire_type(a, exact) for a in args)]
    made = tuple(wire_type(a, exact) for a in args)
    return origin[made] if len(made) > 1 else origin[made[0]]


def route_path(op: Operation) -> str:
    """OP's path as the server routes it: a session is three path parameters."""
    return op.path.replace("{session}", "/{user}/{task}/{number}")


def _param(name: str, annotation, default=REQUIRED) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _typed(a: Arg):
    """A's type at the HTTP gate: a list's elements carry their declared bounds (Arg.items)."""
    item = a.item_arg()
    if item is None:
        return a.type
    listed = list[Annotated[item.type, Field(**item.bounds())]]
    return Optional[listed] if type(None) in typing.get_args(a.type) else listed


def _body_model(op: Operation, args) -> type[BaseModel]:
    fields = {}
    for a in args:
        kind = WIRE_TYPES.get(a.name, _typed(a))
        default = ... if a.default is REQUIRED else a.default
        if a.name in WIRE_TYPES:
            fields[a.name] = (kind, Field(default_factory=kind, alias=a.alias))
        else:
            fields[a.name] = (kind, Field(default, alias=a.alias, **a.bounds()))
    return create_model("".join(w.title() for w in op.name.split("_")), __config__=ConfigDict(extra="forbid"),
                        **fields)  # (an argument it does not declare: named and refused, 422)


def documented(op: Operation) -> dict:
    """The OpenAPI description of OP's answer: its declared result type (notes beside it where it takes them;
    paged rows with their total). Documented, not enforced here: tests/test_api_results.py holds real results to
    the declared types."""
    if op.kind is Kind.STREAM or op.result is None:
        return {}
    kind = wire_type(op.result)
    if op.notes:
        import typing_extensions
        kind = typing_extensions.TypedDict(f"{op.name}_answer", {"result": kind, "notes": list[str]})
    return {200: {"model": kind}}


def endpoint_for(op: Operation):
    """A FastAPI endpoint for OP, its signature made from the declaration."""
    in_path = op.path_args()
    rest = [a for a in op.args if a.name not in in_path and not a.local_only]
    params = []
    for name in in_path:
        if name == "session":
            params += [_param(n, t) for n, t in SESSION_PARAMS.items()]
        else:
            arg = next(a for a in op.args if a.name == name)
            params.append(_param(name, Annotated[_typed(arg), PathParam(**arg.bounds())]))
    model = None
    if op.verb in ("GET", "DELETE"):
        params += [_param(a.name, Annotated[_typed(a), Query(alias=a.alias, **a.bounds())],
                          ... if a.default is REQUIRED else a.default) for a in rest]
    elif rest:
        model = _body_model(op, rest)
        params.append(_param("body", model))
    if op.paging is not Paging.NONE:
        params += [_param("limit", Limit, 1000), _param("offset", Offset, 0)]
    params.append(_param("api", LocalApi, Caller))

    def endpoint(**kw):
        api: LocalApi = kw.pop("api")
        limit, offset = kw.pop("limit", None), kw.pop("offset", None)
        values = {a.name: a.default for a in op.args if a.local_only}
        if "session" in in_path:
            values["session"] = session_name(kw.pop("user"), kw.pop("task"), kw.pop("number"))
        body = kw.pop("body", None)
        if body is not None:
            for a in rest:
                value = getattr(body, a.name)
                values[a.name] = value.model_dump() if isinstance(value, BaseModel) else value
        values.update(kw)
        notes: list[str] = []
        if op.notes:
            values["note"] = notes.append
        result = getattr(api, op.name)(**values)
        if op.kind is Kind.STREAM:
            return ClosingStreamingResponse(result, media_type="text/plain; charset=utf-8")
        if op.paging is Paging.LIST:
            result = result[offset:offset + limit]
        elif op.paging is Paging.ROWS:
            result = {**result, "rows": result["rows"][offset:offset + limit], "total": len(result["rows"])}
        return {"result": result, "notes": notes} if op.notes else result

    endpoint.__name__ = op.name
    endpoint.__doc__ = op.doc + (f"\n\nWho may call it: {op.right.value}." if op.doc else "")
    endpoint.__signature__ = inspect.Signature(params)
    return endpoint


for _op in OPERATIONS.values():
    if _op.kind is not Kind.CUSTOM:
        router.add_api_route(route_path(_op), endpoint_for(_op), methods=[_op.verb], operation_id=_op.name,
                             response_model=None, summary=_op.name, responses=documented(_op))
