"""The order in which queued runs are offered the free slots and GPUs: round robin over their owners.

A participant may queue up to `limits.queued_per_user` runs at once; served first come first served, fifty runs
queued by one participant would hold back everyone who queued after them until the last of the fifty started.
Here the owners take turns: the next run offered is the oldest queued run of the owner who has the fewest runs
running now and, among those, was served longest ago (never, before anyone served already; then whose oldest
queued run is oldest). Each run offered counts as served for the rest of the order. Nothing running is ever
stopped for a queued run (no preemption), and the loop may still pass a run over (its GPUs are not free, its team
is at its GPU quota) without that changing whose turn is next.

`limits.running_per_user` (no cap unless set) caps the runs one user may have running at once: the owner's runs
past it wait, whatever the free slots, with a message that says why.

The owner of a run is the user of its session or its submission; a run of neither (none today) is its own owner.
"""
from __future__ import annotations

import heapq
from collections import defaultdict

from sqlalchemy import case, func, select

from harness.core.enums import RunStatus
from harness.store.models import Run, Session, Submission

_OWNER = func.coalesce(Session.user_id, Submission.user_id)


def _with_owner(query):
    return query.outerjoin(Session, Session.run_id == Run.id).outerjoin(Submission, Submission.run_id == Run.id)


def serve_order(db, queued: list[Run], cap: int | None = None) -> tuple[list[Run], list[tuple[Run, str]]]:
    """QUEUED (any order) in the order the scheduler offers them slots, and the runs held back by CAP (runs per
    user running at once) with why."""
    if not queued:
        return [], []
    owner_of = dict(db.execute(_with_owner(select(Run.id, _OWNER)).where(Run.id.in_([r.id for r in queued]))).all())
    waiting: dict[object, list[Run]] = defaultdict(list)
    for run in sorted(queued, key=lambda r: r.id):
        owner = owner_of.get(run.id)
        waiting[owner if owner is not None else ("run", run.id)].append(run)
    users = [o for o in waiting if not isinstance(o, tuple)]
    served = {}
    if users:
        running = func.sum(case((Run.status == RunStatus.RUNNING, 1), else_=0))
        rows = db.execute(_with_owner(select(_OWNER, running, func.max(Run.started_at)))
                          .where(_OWNER.in_(users)).group_by(_OWNER)).all()
        served = {owner: (int(n or 0), (1, last) if last is not None else (0,)) for owner, n, last in rows}
    turns = []
    for owner, runs in waiting.items():
        n, last = served.get(owner, (0, (0,)))
        turns.append((n, last, runs[0].id, owner))  # (run ids are unique: owners are never compared)
    heapq.heapify(turns)
    order: list[Run] = []
    held: list[tuple[Run, str]] = []
    while turns:
        n, _, _, owner = heapq.heappop(turns)
        runs = waiting[owner]
        if cap is not None and n >= cap and not isinstance(owner, tuple):
            held += [(run, f"waiting: {n} of this user's runs are running (limits.running_per_user = {cap})")
                     for run in runs]
            continue
        order.append(runs.pop(0))
        if runs:
            heapq.heappush(turns, (n + 1, (2, len(order)), runs[0].id, owner))
    return order, held
