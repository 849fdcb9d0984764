"""The scheduler's turn order on a busy state root: one pass of `scheduler.fair_share.Turns` (the owners of the
queued and running runs, the round robin) with HISTORY finished runs in the database, divided by the bare
equivalent timed in the same run — the first-come-first-served read it replaced (the queued runs by id).
A pass runs every scheduler tick (0.5 s) while anything is queued; goal: a few milliseconds at any history.

    python bench/fair_share.py [--history 20000 200000] [--queued 40]   → bench/results/fair_share.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fair_share.json"
USERS = 20


def _fill(h, history: int, queued: int) -> None:
    from sqlalchemy import insert

    from harness.core.enums import RunKind, RunStatus
    from harness.store.models import Run, Session, Task
    with h.tx() as db:
        users = [h.user(db, f"user{i}").id for i in range(USERS)]
        task = Task(name="tiny", path="/nowhere")
        db.add(task)
        db.flush()
        task_id = task.id
    start = datetime(2026, 1, 1)
    total = history + queued
    with h.tx() as db:
        db.execute(insert(Run), [dict(id=i + 1, kind=RunKind.TRAIN, spec={}, gpu_ids=[],
                                      status=RunStatus.FAILED if i < history else RunStatus.QUEUED,
                                      started_at=start + timedelta(seconds=i) if i < history else None)
                                 for i in range(total)])
        db.execute(insert(Session), [dict(name=f"user{i % USERS}/tiny/{i + 1}", number=i + 1, user_id=users[i % USERS],
                                          task_id=task_id, run_id=i + 1, entry="main.py", dir="/nowhere", args=[])
                                     for i in range(total)])


def _per_pass(fn, repeat: int = 20) -> float:
    fn()  # (warm)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def measure(history: int, queued: int) -> dict:
    from sqlalchemy import select

    from harness.core.enums import RunStatus
    from harness.core.settings import load_settings
    from harness.scheduler.fair_share import Turns
    from harness.state import Harness
    from harness.store.models import Run
    with tempfile.TemporaryDirectory() as root:
        os.environ.update(HARNESS_HOME=root, HARNESS_USER="user0", HARNESS_SERVICE="inprocess")
        h = Harness(load_settings())
        try:
            _fill(h, history, queued)
            with h.tx() as db:
                def bare():
                    return db.scalars(select(Run).where(Run.status == RunStatus.QUEUED).order_by(Run.id)).all()

                def turns():
                    return Turns(db, bare(), 2, {}).order
                order = turns()
                assert len(order) == queued and len({o.id for o in order}) == queued
                bare_s, turns_s = _per_pass(bare), _per_pass(turns)
        finally:
            h.store.close()
    return {"history": history, "queued": queued, "bare_ms": round(bare_s * 1000, 2),
            "turns_ms": round(turns_s * 1000, 2), "ratio": round(turns_s / bare_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--queued", type=int, default=40)
    args = parser.parse_args()
    rows = [measure(n, args.queued) for n in args.history]
    for r in rows:
        print(f"history {r['history']:>7}: bare {r['bare_ms']:.2f} ms, turns {r['turns_ms']:.2f} ms "
              f"({r['ratio']:.2f}x)")
    RESULTS.write_text(json.dumps({"command": "python bench/fair_share.py", "machine": platform.node(),
                                   "python": platform.python_version(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
