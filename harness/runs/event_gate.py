"""The one gate of a run's events file: each line the run wrote becomes a typed event or a named refusal.

The file is written by participant code (the in-session `nsml` module, or anything the code chooses to append),
so every line is hostile. Only two kinds of event exist: a report (metrics) and a checkpoint. Nothing else — no
verdict, no failure reason, no score — is read from a run. The bounds:

- a report holds 1 to MAX_KEYS metrics; each key is 1–MAX_KEY_CHARS characters of KEY_ALPHABET; each value is a
  number (a bool counts as 0/1) that is finite and within ±MAX_ABS (NaN, infinities, 10**400, strings, lists
  are refused); `step` an integer within ±2**31 or absent; `scope` a short name or absent;
- a checkpoint names one safe path component (`safefs.checkpoint_name_problem`);
- `time` and `elapsed`, when given, finite and within range (`time` no later than now), else the harness's clock.

A refused line is one short note for the session's log; the run goes on.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from harness.core.safefs import checkpoint_name_problem

MAX_KEYS = 100
MAX_KEY_CHARS = 64
MAX_ABS = 1e30
MAX_SCOPE_CHARS = 64
KEY_ALPHABET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/:@%]{0,63}")
_LATEST_TIME = 4102444800.0  # 2100-01-01


@dataclass(frozen=True)
class Report:
    metrics: dict[str, float]
    step: int | None
    scope: str | None
    summary: bool
    at: datetime


@dataclass(frozen=True)
class Checkpoint:
    name: str
    elapsed: float
    at: datetime


class Refused(ValueError):
    """A line that is not an event the harness accepts (the message is one short line)."""


def _shown(value: object) -> str:
    text = repr(value)
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", text)
    return text[:40] + ("..." if len(text) > 40 else "")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)):
        raise Refused(f"{what} is {type(value).__name__}, not a number")
    try:
        number = float(value)
    except OverflowError:
        raise Refused(f"{what} is out of range") from None
    if not math.isfinite(number) or abs(number) > MAX_ABS:
        raise Refused(f"{what} is {'not a finite number' if not math.isfinite(number) else 'out of range'}")
    return number


def _time(event: dict) -> datetime:
    """The event's own time, never later than the harness reads it (a run cannot date its checkpoint in the future
    to keep it newest), else the harness's clock."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    value = event.get("time")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < _LATEST_TIME:  # NaN fails
        return min(datetime.fromtimestamp(float(value), tz=timezone.utc).replace(tzinfo=None), now)
    return now


def key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not KEY_ALPHABET.fullmatch(key):
        return (f"metric key {_shown(key)} is not 1-{MAX_KEY_CHARS} characters of letters, digits and _ . - / : @ %"
                " (starting with a letter, digit or _)")
    return None


def _report(event: dict) -> Report:
    metrics = event.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise Refused("a report without metrics")
    if len(metrics) > MAX_KEYS:
        raise Refused(f"a report of {len(metrics)} metrics (at most {MAX_KEYS})")
    clean = {}
    for key, value in metrics.items():
        problem = key_problem(key)
        if problem:
            raise Refused(problem)
        clean[key] = _number(value, f"metric {key!r}")
    step = event.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or abs(step) >= 2 ** 31):
        raise Refused(f"step {_shown(step)} is not an integer within ±2**31")
    scope = event.get("scope")
    if not isinstance(scope, str) or not KEY_ALPHABET.fullmatch(scope) or len(scope) > MAX_SCOPE_CHARS:
        scope = None  # NSML code passes scope=locals(); only a short name is kept
    return Report(clean, step, scope, event.get("summary") is True, _time(event))


def _checkpoint(event: dict) -> Checkpoint:
    name = event.get("name")
    problem = checkpoint_name_problem(name)
    if problem:
        raise Refused(problem)
    elapsed = event.get("elapsed", 0.0)
    try:
        elapsed = _number(elapsed, "elapsed") if elapsed is not None else 0.0
    except Refused:
        elapsed = 0.0
    return Checkpoint(name, max(elapsed, 0.0), _time(event))


def parse(line: bytes) -> Report | Checkpoint:
    """One line of the events file → an event, or Refused naming why."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        raise Refused("event refused: a line that is not JSON") from None
    if not isinstance(event, dict):
        raise Refused("event refused: a line that is not a JSON object")
    kind = event.get("type")
    try:
        if kind == "report":
            return _report(event)
        if kind == "checkpoint":
            return _checkpoint(event)
    except Refused as exc:
        raise Refused(f"{kind} refused: {exc}") from None
    raise Refused(f"event refused: type {_shown(kind)} (a run reports metrics and checkpoints only)")
