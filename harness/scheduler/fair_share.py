"""The order in which queued runs are offered the free slots and GPUs: round robin over their owners.

A participant may queue up to `limits.queued_per_user` runs at once; served first come first served, fifty runs
queued by one participant would hold back everyone who queued after them until the last of the fifty started.
Here the owners take turns: the next run offered is the oldest queued run of the owner who has the fewest runs
running now and, among those, was served longest ago (never, before anyone served already; then whose oldest
queued run is oldest). Each run offered counts as served for the rest of the order. Nothing running is ever
stopped for a queued run (no preemption), and the loop may still pass a run over (its GPUs are not free, its team
is at its GPU quota) without that changing whose turn is next. When each owner was last served is the
scheduler's own memory (a new scheduler starts with everyone never served).

`limits.running_per_user` (no cap unless set) caps the runs one user may have running at once: the owner's runs
past it wait, whatever the free slots, with a message that says why; only the runs actually started count.

The turn is a team's where the run belongs to a contest's team (the unit that competes: a team of three takes
turns as one, not three times as often as someone on their own), else its user's: the user of its session or its
submission; a run of neither (none today) is its own owner. The cap counts a user's runs, in a team or not.
Each pass reads the queued runs' owners and the running runs' owners by index, never the whole history.
"""
from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict

from sqlalchemy import select

from harness.core.enums import RunStatus
from harness.store.models import Run, Session, Submission

_SERVED = itertools.count()  # when an owner was last served, in this process
_LATER = 1 << 62  # after any of those: offered in this pass


def owners(db, run_ids: list[int]) -> dict[int, int]:
    """The user each of RUN_IDS belongs to (its session's or its submission's), by the run_id indexes."""
    found: dict[int, int] = {}
    for i in range(0, len(run_ids), 500):
        chunk = run_ids[i:i + 500]
        for model in (Session, Submission):
            found.update(db.execute(select(model.run_id, model.user_id).where(model.run_id.in_(chunk))).all())
    return found


def turn_of(run_id: int, team_id: int | None, user_of: dict[int, int]) -> object:
    """Whose turn a run takes: its team's, else its user's, else its own."""
    if team_id is not None:
        return ("team", team_id)
    user = user_of.get(run_id)
    return ("user", user) if user is not None else ("run", run_id)


class Turns:
    """One pass of the scheduler over QUEUED: `order` to offer them in, `held(run)` to ask whether the cap holds a
    run back, `started(run)` once a run is started. SERVED (turn → when last served) is the caller's, kept
    between passes."""

    def __init__(self, db, queued: list[Run], cap: int | None, served: dict):
        self.cap, self.served = cap, served
        self.owner_of = owners(db, [r.id for r in queued])
        self.turn_of = {r.id: turn_of(r.id, r.team_id, self.owner_of) for r in queued}
        running = db.execute(select(Run.id, Run.team_id).where(Run.status == RunStatus.RUNNING)).all()
        running_users = owners(db, [run_id for run_id, _ in running])
        self.running = Counter(running_users.values())  # by user, for the cap
        self.turns_running = Counter(turn_of(run_id, team, running_users) for run_id, team in running)
        waiting: dict[object, list[Run]] = defaultdict(list)
        for run in sorted(queued, key=lambda r: r.id):
            waiting[self.turn_of[run.id]].append(run)
        turns = [(self.turns_running[turn], served.get(turn, -1), runs[0].id, turn) for turn, runs in waiting.items()]
        heapq.heapify(turns)  # (run ids are unique: owners are never compared)
        self.order: list[Run] = []
        while turns:
            n, _, _, owner = heapq.heappop(turns)
            runs = waiting[owner]
            self.order.append(runs.pop(0))
            if runs:
                heapq.heappush(turns, (n + 1, _LATER + len(self.order), runs[0].id, owner))  # served just now

    def held(self, run: Run) -> str | None:
        """Why RUN waits for its owner's runs (None: it may start)."""
        owner = self.owner_of.get(run.id)
        if self.cap is None or owner is None or self.running[owner] < self.cap:
            return None
        return f"waiting: {self.running[owner]} of this user's runs are running (limits.running_per_user = {self.cap})"

    def started(self, run: Run) -> None:
        owner = self.owner_of.get(run.id)
        if owner is not None:
            self.running[owner] += 1
        turn = self.turn_of.get(run.id, ("run", run.id))
        self.turns_running[turn] += 1
        self.served[turn] = next(_SERVED)
