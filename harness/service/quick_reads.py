"""The fast reads of `ps` and `board`: on an SQLite store whose schema is current and where nothing needs
recovering, stdlib sqlite3 through store.quick (no SQLAlchemy is imported). Each returns None where the library
must answer instead (a run to recover, an old schema, an unknown task, a round's task); the rows are the same
either way (store.listing builds both). Only the caller's own sessions are read; boards are public."""
from __future__ import annotations

from harness.store import read_sql
from harness.store.quick import QuickReader


def title(task: str, metric: str, direction: str) -> str:
    return f"{task} — {metric} ({direction} is better)"


def quick_ps(settings, all_, last, task, with_inventory: bool):
    """`ps` by the quick path, through one reader: (the sessions, the GPU inventory when asked for), or None where
    the library must answer (recovery, an unknown task)."""
    reader = QuickReader.open(settings)
    if reader is None:
        return None
    try:
        task_id = None
        if task:
            found = read_sql.task_of(reader.rows, task)
            if found is None or read_sql.in_a_round(reader.rows, task):
                return None  # the library says why ("not prepared yet", "did you mean", not revealed yet)
            task_id = found[0]
        uid = read_sql.user_id(reader.rows, settings.user)
        rows = [] if uid is None else read_sql.session_rows(reader.rows, uid, task_id, all_, last)
        return rows, inventory(settings, reader.rows) if with_inventory else None
    finally:
        reader.close()


def quick_board(settings, task):
    """(title, rows) by the quick path, or None where the library must answer (a round's task, errors)."""
    reader = QuickReader.open(settings)
    if reader is None:
        return None
    try:
        found = read_sql.task_of(reader.rows, task)
        if found is None or read_sql.in_a_round(reader.rows, task):
            return None
        task_id, metric, direction = found
        rows = read_sql.board_rows(reader.rows, task_id, direction)
        from harness.scoring.board_ties import mark_board  # numpy only when the board has intervals
        mark_board(rows, reader.rows, direction, "rank", "submission")
        return title(task, metric, direction.value), rows
    finally:
        reader.close()


def inventory(settings, rows) -> dict:
    """The GPUs runs of this root may get and how many are in use: this machine's, or a cluster's node by node (as
    its scheduler last saw them). Counts only: whose runs hold them is not said; nor, but to organizers, the
    cluster's host names and addresses. NVML's readings of a device (its memory and utilisation show what the
    run on it does) go to organizers, and to a participant only for the devices their own running runs hold."""
    from harness.runtime import gpus  # here: `board` and `ps -j` need none of it

    held = read_sql.gpus_in_use(rows)
    if settings.executor == "local":
        models = gpus.local_models(settings)
        nodes = [{"id": "", "node": "this machine", "gpus": len(models), "models": sorted({m for m in models if m}),
                  "in_use": sum(held.values())}]
        if settings.is_organizer:
            devices = gpus.readings(len(models))
        else:  # NVML is asked only when the participant holds a device
            uid = read_sql.user_id(rows, settings.user)
            mine = set() if uid is None else read_sql.gpus_held_by(rows, uid)
            devices = [d for d in gpus.readings(len(models)) if d["index"] in mine] if mine else []
    else:
        hosts = settings.is_organizer
        nodes = [{"id": n.get("id", ""), "node": n.get("address", "") if hosts else "", "gpus": int(n.get("gpus", 0)),
                  "models": [n["model"]] if n.get("model") else [], "in_use": held.get(n.get("id", ""), 0)}
                 for n in gpus.published(settings) or [] if n.get("alive")]
        if held.get(""):  # admitted, not placed yet
            nodes.append({"id": "", "node": "being placed", "gpus": 0, "models": [], "in_use": held[""]})
        devices = []  # a cluster's nodes publish no readings
    return {"executor": settings.executor, "gpus": sum(n["gpus"] for n in nodes),
            "in_use": sum(n["in_use"] for n in nodes), "nodes": nodes, "devices": devices}


def describe(inv: dict) -> str | None:
    """`ps`'s lines: "GPUs: 3 of 8 in use" and, on a cluster, each node's share; then NVML's readings of each
    device of this machine (model, utilisation, memory); None when there are no GPUs to speak of."""
    if not inv["gpus"] and not inv["in_use"]:
        return None
    line = f"GPUs: {inv['in_use']} of {inv['gpus']} in use"
    if inv["executor"] != "local":
        parts = [_node_share(n) for n in inv["nodes"]]
        line += f" on {inv['executor']}: {', '.join(parts)}" if parts else f" ({inv['executor']}: no node seen yet)"
    from harness.runtime.gpus import describe_reading
    return "\n".join([line] + [f"  {describe_reading(d)}" for d in inv.get("devices") or []])


def _node_share(node: dict) -> str:
    if not node["id"]:  # runs admitted but not placed yet
        return f"{node['node']} {node['in_use']}"
    host = f" ({node['node']})" if node["node"] else ""
    return f"node {node['id'][:8]}{host} {node['in_use']}/{node['gpus']}"
