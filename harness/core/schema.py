"""One small schema for the TOML files people write (harness.toml, task.toml, contest.toml): every key, its table
and its type.

`check(data, schema, where)` refuses an unknown key or a value of the wrong type with one line that names the
file, the table and the key, and says the closest valid key — or the table where that key belongs, for the
common slip of putting a key under the wrong [table].
"""
from __future__ import annotations

import datetime
import difflib

from .errors import UserError

TOP = ""  # the top level of the file, above any [table]
NUMBER = (int, float)
ANY = "*"  # in a table's schema: any key name, values of this type
TYPE_NAMES = {str: "text", int: "an integer", float: "a number", bool: "true or false", list: "a list",
              dict: "a table"}


def _names(types) -> str:
    if types == NUMBER:
        return "a number"
    return " or ".join(TYPE_NAMES.get(t, t.__name__) for t in (types if isinstance(types, tuple) else (types,)))


def _label(table: str, key: str) -> str:
    return f"[{table}] {key}" if table else key


def check(data: dict, schema: dict[str, dict[str, object]], where: str) -> None:
    """SCHEMA: table name (TOP for the top level) → key → the type(s) its value may have."""
    tables = [t for t in schema if t != TOP]
    for key, value in data.items():
        if key in tables:
            if not isinstance(value, dict):
                raise UserError(f"{where}: [{key}] must be a table, got {value!r}")
            _check_table(value, key, schema, where)
        else:
            _check_key(key, value, TOP, schema, where)


def _check_table(values: dict, table: str, schema: dict, where: str) -> None:
    for key, value in values.items():
        _check_key(key, value, table, schema, where)


def _check_key(key: str, value, table: str, schema: dict, where: str) -> None:
    keys = schema.get(table, {})
    if key not in keys and ANY in keys:  # a table of free names (e.g. [runtimes])
        keys = {key: keys[ANY]}
    if key not in keys:
        home = [t for t, ks in schema.items() if key in ks]
        if home:
            place = "at the top level" if home[0] == TOP else f"under [{home[0]}]"
            raise UserError(f"{where}: {_label(table, key)}: this key belongs {place}")
        known = sorted(set(keys) | ({t for t in schema if t != TOP} if table == TOP else set()))
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"{where}: {_label(table, key)}: unknown key{hint} (known: {', '.join(known)})")
    types = keys[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise UserError(f"{where}: {_label(table, key)}: expected {_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise UserError(f"{where}: {_label(table, key)}: expected {_names(types)}, got {value!r}")


SETTINGS = {
    TOP: {"gpus": (int, list), "user": str, "db": str, "task_paths": list, "runtime": str, "runtime_choices": list,
          "organizers": list, "evaluator_isolation": str},
    "scheduler": {"max_concurrent_runs": int, "lease_seconds": NUMBER, "tick_seconds": NUMBER,
                  "idle_exit_seconds": NUMBER, "service_idle_exit_seconds": NUMBER,
                  "private_hold_seconds": NUMBER, "private_halves_at_close": bool},
    "process": {"sandbox": str},
    "cluster": {"executor": str, "address": str},
    "runtimes": {ANY: str},
    "eras": {ANY: dict},  # [eras.NAME] tables: harness.runtime.eras checks their keys (ERA)
    "docker": {"image": str, "images": list, "user": str, "pids_limit": int, "file_bytes": int, "hf_cache": str},
    "limits": {"session_seconds": NUMBER, "submit_seconds": NUMBER, "scorer_seconds": NUMBER, "log_bytes": int,
               "queued_per_user": int, "running_per_user": int, "checkpoint_bytes": int, "scratch_bytes": int,
               "user_storage_bytes": int, "code_bytes": int, "prediction_bytes": int, "scorer_memory_bytes": int,
               "pids": int, "run_memory_bytes": int, "env_bytes": int, "env_build_seconds": NUMBER,
               "env_index_hosts": list},
}

ANY_VALUE = (str, int, float, bool, list, dict)

ERA = {  # one [eras.NAME] table (harness.runtime.eras.toml, or an organizer's harness.toml)
    TOP: {"description": str, "base": str, "python": str, "packages": list, "images": list, "torch": str,
          "tensorflow": str, "python_tags": str, "on_demand": bool, "imports": list},
}

TASK = {  # task.toml (harness.taskpacks.registry); [rules] is the organizers' own (e.g. a model-size cap their scripts read)
    TOP: {"name": str, "title": str, "metric": str, "direction": str, "builder": str, "image": str,
          "network": bool, "source_builds": bool},
    "limits": {"session_seconds": NUMBER, "submit_seconds": NUMBER, "scorer_seconds": NUMBER, "cpus": NUMBER,
               "memory": (str, int)},
    "submit": {"quota": int, "period_seconds": NUMBER},
    "split": {"label": str, "prediction": str, "key": str, "label_field": str, "prediction_field": str,
              "confidence_field": str},
    "evaluator": {"args": list, "requirements": list, "per_example": str},
    "simulate": {"baselines": list},  # contest simulate's synthetic teams (harness.sim.baselines checks the entries)
    "rules": {ANY: ANY_VALUE},
}

WHEN = (datetime.datetime, datetime.date, str)  # a TOML date-time, or text parsed by the contest module

CONTEST = {  # contest.toml (harness.contest checks the meaning: times, tasks, teams, rules)
    TOP: {"name": str, "title": str, "rounds": list},
    "teams": {ANY: list},
}
ROUND = {  # each [[rounds]] table of a contest.toml
    TOP: {"name": str, "tasks": list, "start": WHEN, "end": WHEN, "submit": dict, "gpu_quota": int,
          "gpu_quota_teams": dict, "gpu_policy": str, "public_fraction": NUMBER, "split_seed": int, "select": int,
          "qualify": dict, "entry": str, "public_board": str, "reveal": str},
}
