"""JSON of finite numbers only: NaN and ±inf become null wherever the harness writes JSON that others read (the
store's JSON columns, the HTTP API's answers). PostgreSQL's json type and Starlette's encoder refuse them, so one
crafted value that reached either would stop a board, a close or a page for everyone; scoring keeps them out
first (harness.scoring.score_interval), and this is the gate where they would leave."""
from __future__ import annotations

import json
import math


def finite(value):
    """VALUE with every float that is not finite replaced by None (dicts, lists and tuples walked; depth is the
    caller's, whose values the harness built)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value, **kwargs) -> str:
    """json.dumps of VALUE with non-finite floats as null; the fast path when there are none."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **kwargs)
