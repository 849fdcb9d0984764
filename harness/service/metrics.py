"""What `nsml.report` recorded for a session, as chart series: one per metric key, x by step or by wall time
(seconds since the session started), downsampled on the server to at most MAX_POINTS points (NSML's limit):
each bucket keeps its first point's x and the mean of its values, and the last point is always kept. At most
MAX_SERIES metrics (the first reported, unless the caller names its keys): a run may report up to 100 keys at a
time and 100,000 points, one new key each — a hundred thousand charts for whoever opens its page.

Reading 100,000 points takes a fraction of a second of the server's one interpreter; a page polled in many tabs,
or a script asking again and again, would spend it on every request. So the series of a (session, question)
are kept until the session records a new point (MEMO answers: one indexed look at its newest point decides)."""
from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import func, select

from harness.core.errors import UserError
from harness.state import Harness
from harness.store.models import Metric

from . import permissions

MAX_POINTS = 1000
MAX_SERIES = 100  # metrics one answer holds (the page draws a chart for each)
XS = ("step", "time")
MEMO, MEMO_POINTS = 64, 1_000_000  # answers kept, and their points in all (the least recently asked go first)
_MEMO: OrderedDict[tuple, tuple[dict, int]] = OrderedDict()
_MEMO_LOCK = threading.Lock()


def downsample(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    n = len(xs)
    if n <= limit:
        return xs, ys
    size = n / (limit - 1)
    out_x, out_y = [], []
    for b in range(limit - 1):
        lo, hi = int(b * size), max(int((b + 1) * size), int(b * size) + 1)
        chunk = ys[lo:hi]
        out_x.append(xs[lo])
        out_y.append(sum(chunk) / len(chunk))
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y


def series(h: Harness, name: str, x: str = "step", keys: list[str] | None = None,
           limit: int = MAX_POINTS) -> dict:
    """{"session", "x", "series": {key: {"x": [...], "y": [...], "points": n before downsampling}},
    "metrics": how many metrics the session has (more than in "series" past MAX_SERIES)}. KEYS: these only (at
    most 100: api.operations declares the bound)."""
    if x not in XS:
        raise UserError(f"x: one of {', '.join(XS)}, got {x!r}")
    if not 2 <= limit <= MAX_POINTS:
        raise UserError(f"points: between 2 and {MAX_POINTS}, got {limit}")
    with h.tx() as db:
        sess = permissions.own_session(h, db, name)
        start = sess.run.started_at or sess.created_at
        newest = db.scalar(select(func.max(Metric.id)).where(Metric.session_id == sess.id))
        asked = (h.settings.db_url, sess.id, sess.created_at, start, x, tuple(sorted(keys or ())), limit)
        with _MEMO_LOCK:
            kept = _MEMO.get(asked)
            if kept is not None and kept[1] == newest:
                _MEMO.move_to_end(asked)
        if kept is None or kept[1] != newest:
            kept = (_series(db, sess.id, start, x, keys, limit), newest)
            with _MEMO_LOCK:
                _MEMO[asked] = kept
                while len(_MEMO) > MEMO or sum(_points(k[0][0]) for k in _MEMO.values()) > MEMO_POINTS:
                    _MEMO.popitem(last=False)
        out, seen = kept[0]
        return {"session": sess.name, "args": list(sess.args or []), "status": sess.run.status.value, "x": x,
                "series": {k: {"x": list(v["x"]), "y": list(v["y"]), "points": v["points"]} for k, v in out.items()},
                "metrics": seen}  # (the caller's own lists: the kept ones never change)


def _points(series: dict) -> int:
    return sum(len(v["x"]) for v in series.values())


def _series(db, session_id: int, start, x: str, keys: list[str] | None, limit: int) -> tuple[dict, int]:
    """(series by key, how many metrics) of one session (see series)."""
    query = select(Metric.key, Metric.step, Metric.created_at, Metric.value).where(
        Metric.session_id == session_id, Metric.value.is_not(None)).order_by(Metric.id)
    if keys:  # as shown ("train/loss") or as recorded ("train__loss")
        query = query.where(Metric.key.in_(set(keys) | {k.replace("/", "__") for k in keys}))
    raw: dict[str, tuple[list, list]] = {}
    seen: set[str] = set()
    for key, step, at, value in db.execute(query):
        key = key.replace("__", "/")
        if key not in raw:
            seen.add(key)
            if len(raw) >= MAX_SERIES:
                continue
        xs, ys = raw.setdefault(key, ([], []))
        xv = (step if step is not None else len(xs)) if x == "step" else (at - start).total_seconds()
        xs.append(xv)
        ys.append(value)
    out = {}
    for key, (xs, ys) in sorted(raw.items()):
        order = sorted(range(len(xs)), key=xs.__getitem__)  # by x; reports may come out of order
        dx, dy = downsample([xs[i] for i in order], [ys[i] for i in order], limit)
        out[key] = {"x": dx, "y": dy, "points": len(xs)}
    return out, len(seen)
