"""What the benchmark suite measures on: participant folders, a big board, evaluator inputs, a queue of runs."""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from pathlib import Path

# A session that sleeps one second, saying when it held which GPUs (so sharing is judged from what the code saw).
SLEEP_ONE = '''
import os, time
print("start", time.time(), os.environ.get("CUDA_VISIBLE_DEVICES", ""), flush=True)
time.sleep(1.0)
print("end", time.time(), flush=True)
'''


def entry_folder(folder: Path, code: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(code)
    return folder


def big_board(root: Path, n_subs: int, n_users: int, seed: int = 1) -> None:
    """A task "big" (higher is better) with N_SUBS submissions from N_USERS users: scores with ties, failures,
    dry runs and harness faults mixed in, as a long contest leaves them."""
    from sqlalchemy import insert

    from harness.core.enums import Direction, FailureReason, RunKind, RunStatus
    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Run, Submission, Task, User

    rng = random.Random(seed)
    h = Harness(load_settings(root=root, user="bench"))
    with h.tx() as db:
        task = Task(name="big", path=str(root / "nowhere"), metric="accuracy", direction=Direction.HIGHER)
        users = [User(name=f"user{i:04d}") for i in range(n_users)]
        run = Run(kind=RunKind.SUBMIT, runtime="process", status=RunStatus.SUCCEEDED, gpu_ids=[])
        db.add_all([task, run, *users])
        db.flush()
        task_id, run_id, user_ids = task.id, run.id, [u.id for u in users]
    t0 = datetime(2026, 1, 1)
    reasons = [None] * 8 + [FailureReason.EXIT_CODE, FailureReason.INVALID_PREDICTION, FailureReason.LOST]
    rows = []
    for _ in range(n_subs):
        reason = rng.choice(reasons)
        ok = reason is None
        rows.append(dict(user_id=rng.choice(user_ids), task_id=task_id, run_id=run_id, session_name="u/big/1",
                         checkpoint=str(rng.randrange(50)), dry_run=rng.random() < 0.05,
                         status=RunStatus.SUCCEEDED if ok else RunStatus.FAILED, reason=reason,
                         score=round(rng.random(), 3) if ok else None, selected=False, provenance={},
                         created_at=t0 + timedelta(seconds=rng.randrange(10 ** 7))))
    with h.tx() as db:
        db.execute(insert(Submission), rows)
    h.store.close()


def accuracy_files(folder: Path, n: int, seed: int = 3) -> tuple[Path, Path]:
    """garbage-docs' test_label (a CSV with a label column) and a prediction of N lines."""
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    labels, pred = folder / "test_label", folder / "prediction"
    labels.write_text("label\n" + "\n".join(map(str, rng.integers(0, 2, n))) + "\n")
    pred.write_text("\n".join(map(str, rng.integers(0, 2, n))) + "\n")
    return labels, pred


def makespan(root: Path, code: Path, n: int) -> tuple[float, int, dict]:
    """Queue N one-GPU sessions while holding the scheduler's lease (so none starts early), hand it over, and
    wait. Returns the makespan (first admission to last recorded end, from the store), how many runs' code held a
    GPU another run's code held at the same time (a GPU is a node and an id: on a cluster, the node Ray chose and
    the id it gave; times and ids as each run's code saw them), and how many runs each node ran."""
    from sqlalchemy import select

    from harness.client.service import stop_services
    from harness.core.settings import load_settings
    from harness.runs.create import RunOptions
    from harness.scheduler.lease import FileLock, ensure_running
    from harness.service.sessions import start_session
    from harness.state import Harness
    from harness.store.models import Run

    settings = load_settings(root=root, user="bench")
    stop_services(settings.state_dir)  # the commands that prepared the root left a service (and its scheduler)
    lock = FileLock(settings.lock_path)
    for _ in range(400):  # a scheduler process (the Ray executor's) leaves when idle
        if lock.acquire():
            break
        time.sleep(0.05)
    else:
        raise SystemExit("a scheduler is already running on the schedule root")
    h = Harness(settings)
    try:
        ids = [start_session(h, "garbage-docs", str(code), opts=RunOptions(gpus=1)) for _ in range(n)]
    finally:
        lock.release()
    ensure_running(settings)
    while True:
        with h.tx() as db:
            runs = db.execute(select(Run.id, Run.started_at, Run.ended_at, Run.status, Run.spec, Run.message,
                                     Run.run_dir)).all()
        if len(runs) >= len(ids) and all(r.status.terminal for r in runs):
            break
        time.sleep(0.5)
    h.store.close()
    bad = [r for r in runs if r.status.value != "succeeded"]
    if bad:
        raise SystemExit(f"{len(bad)} of the {n} sessions did not succeed; the first: {bad[0].message}")
    span = (max(r.ended_at for r in runs) - min(r.started_at for r in runs)).total_seconds()
    by_gpu: dict[tuple, list] = {}
    per_node: dict[str, int] = {}
    for r in runs:
        where = ((r.spec or {}).get("node") or {}).get("id", "local")[:12]
        per_node[where] = per_node.get(where, 0) + 1
        start, end, gpus = _code_span(Path(r.run_dir) / "log.txt")
        for g in gpus:
            by_gpu.setdefault((where, g), []).append((start, end))
    shared = 0
    for spans in by_gpu.values():
        spans.sort()
        shared += sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
    return span, shared, per_node


def _code_span(log: Path) -> tuple[float, float, list[str]]:
    """When SLEEP_ONE's code started and ended, and the GPU ids it was given, from its own log."""
    lines = [line.split() for line in log.read_text().splitlines()]
    start = next(parts for parts in lines if parts[:1] == ["start"])
    end = next(parts for parts in lines if parts[:1] == ["end"])
    return float(start[1]), float(end[1]), start[2].split(",") if len(start) > 2 else []
