"""The API and CLI reference, written from the declarations: `python -m harness.api.reference > docs/api.md`
(tests/test_api_declared.py checks that docs/api.md is what this writes)."""
from __future__ import annotations

from .declare import REQUIRED, Arg, Kind, Operation, Paging
from .operations import LOCAL_COMMANDS, OPERATIONS


def type_name(kind) -> str:
    if kind is None:
        return "nothing"
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).replace("typing.", "").replace(" | ", " or ")


def _bounds(arg: Arg) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "min_length": "length ≥", "max_length": "length ≤",
             "pattern": "matches"}
    parts = [f"{words[k]} `{v}`".replace("|", "\\|") for k, v in arg.bounds().items()]
    if (item := arg.item_arg()) is not None:
        parts.append("each " + " ".join(f"{words[k]} `{v}`".replace("|", "\\|") for k, v in item.bounds().items()))
    if arg.local_only:
        parts.append("this machine only")
    return ", ".join(parts)


def _where(op: Operation, arg: Arg) -> str:
    if arg.name in op.path_args():
        return "path"
    if arg.local_only:
        return "—"
    return "query" if op.verb in ("GET", "DELETE") else "body"


def operation(op: Operation) -> list[str]:
    path = op.path.replace("{session}", "/{user}/{task}/{number}")
    out = [f"### `{op.name}`", "", op.doc, "",
           f"- HTTP: `{op.verb} /api/v1{path}`" + {Kind.STREAM: " (a byte stream)", Kind.CUSTOM: " (a file "
                                                    "transfer: see the server's transfers)"}.get(op.kind, ""),
           f"- Who: {op.right.value}",
           f"- Result: {type_name(op.result) if op.kind is not Kind.STREAM else 'bytes'}"
           + {Paging.LIST: " (paged: `limit`, `offset`)", Paging.ROWS: " (rows paged: `limit`, `offset`)"}
           .get(op.paging, "") + ("; with `notes`" if op.notes else ""),
           f"- CLI: {', '.join(f'`nsml {c}`' for c in op.cli) or '— (the dashboard and the HTTP API)'}"]
    if op.args:
        out += ["", "| argument | type | default | where | bounds |", "|---|---|---|---|---|"]
        for a in op.args:
            default = "required" if a.default is REQUIRED else f"`{a.default!r}`"
            name = a.name + (f" (`{a.alias}`)" if a.alias else "")
            out.append(f"| {name} | {type_name(a.type)} | {default} | {_where(op, a)} | {_bounds(a)} |")
    return out + [""]


def render() -> str:
    lines = ["# API and CLI reference", "",
             "Written from the declarations in `harness/api/operations.py` by `python -m harness.api.reference`; "
             "do not edit by hand. Every operation is the same locally and over HTTP (`nsml login`); the "
             "OpenAPI document of a server is `/api/v1/openapi.json`.", ""]
    groups: dict[str, list[Operation]] = {}
    for op in OPERATIONS.values():
        groups.setdefault(op.path.split("/")[1].split("{")[0] or "other", []).append(op)
    for group, ops in groups.items():
        lines += [f"## {group}", ""]
        for op in ops:
            lines += operation(op)
    lines += ["## CLI commands that are not operations", "", "| command | why |", "|---|---|"]
    lines += [f"| `nsml {c}` | {why} |" for c, why in LOCAL_COMMANDS.items()]
    return "\n".join(lines) + "\n"



if __name__ == "__main__":
    print(render(), end="")
