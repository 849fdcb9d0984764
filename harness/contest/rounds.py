"""A round's boards (public, and private once revealed), final selection, and closing a round.

The public board ranks each team by its best public score.  The private board ranks each team by the best
private score among its *final* submissions: the ones it selected (`submit select`, up to the round's limit),
or, if it selected none, its best public submission — of those that have a private score (a submission whose
private half failed has none, and its team was never told: store.read_sql's TEAM_BOARD_SQL holds the rule).
Private scores stay hidden from participants until the round is closed; then both boards are shown side by side
with each team's rank change (the shake-up).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from harness.core import clock
from harness.core.enums import RoundStatus, RunStatus
from harness.core.errors import NotFound, UserError
from harness.scheduler.waiting import wait_private, wait_run
from harness.scoring import ladder_board
from harness.scoring.board_rules import counted_clause, valid_score
from harness.scoring.board_ties import expected_shakeup, mark_board
from harness.state import Harness
from harness.store import read_sql
from harness.store.models import Round, RoundEntry, Submission, Task, Team
from harness.store.quick import sa_rows

from .gate import get_round, governing, reveals, rounds_of_task, status, team_of


def compute_board(db, rnd: Round, task: Task) -> list[dict]:
    """Every team's public and private standing on TASK in RND (private fields included: callers filter): the
    SQL of store.read_sql (the same style as the per-user board), ranked here."""
    rows = read_sql.team_board_rows(sa_rows(db), rnd.id, task.id, task.direction, ladder_board.is_ladder(rnd))
    d = task.direction
    private = sorted((r for r in rows if r["final_submission"] is not None),  # best first, earlier first
                     key=lambda r: (d.sort_key(r["private"]), r["_final_at"], r["final_submission"]))
    read_sql.rank_rows(private, "private", "private_rank")
    for r in private:
        r["shakeup"] = None if r["public_rank"] is None else r["public_rank"] - r["private_rank"]
    for r in rows:
        del r["_final_at"]
        r["reason"] = None if r["public_rank"] is not None else read_sql.NOTHING_SHOWN
    return sorted(rows, key=lambda r: (r["public_rank"] is None, r["public_rank"] or 0, r["team"])) + \
        unscored_rows(db, rnd, task, rows)


def unscored_rows(db, rnd: Round, task: Task, ranked: list[dict]) -> list[dict]:
    """Every team entered in RND with no scored submission on TASK: below the ranked ones, with the reason (no
    submission, or how its submissions failed), so no entered team vanishes from a board."""
    have = {r["team"] for r in ranked}
    out = []
    for entry in db.scalars(select(RoundEntry).where(RoundEntry.round_id == rnd.id)):
        team = db.get(Team, entry.team_id)
        if team.name in have:
            continue
        subs = list(db.scalars(select(Submission).where(  # what the board counts: shown, counted submissions
            Submission.round_id == rnd.id, Submission.task_id == task.id, Submission.team_id == team.id,
            Submission.hidden.is_(False), counted_clause())))
        failed = Counter(s.reason.value for s in subs if s.status is RunStatus.FAILED and s.reason)
        reason = ("no submission" if not subs else "no scored submission yet" if not failed else
                  "no valid submission (" + ", ".join(f"{n} {why}" for why, n in sorted(failed.items())) + ")")
        last = max((s.created_at for s in subs), default=None)
        out.append({"team": team.name, "public_rank": None, "public": None, "public_submission": None,
                    "private_rank": None, "private": None, "final_submission": None, "selected": 0, "shakeup": None,
                    "submits": len(subs), "last_submit": last.isoformat(timespec="seconds") if last else None,
                    "baseline": False, "public_interval": None, "interval_note": None, "private_interval": None,
                    "reason": reason})
    return sorted(out, key=lambda r: r["team"])


PRIVATE_FIELDS = ("private_rank", "private", "final_submission", "shakeup", "private_interval", "private_tie",
                  "private_beats_next")


def round_for_task(db, task_name: str, now: datetime, round_ref: str | None = None,
                   sees_all: bool = False) -> Round | None:
    """The round a task's board belongs to: the one named — refused, whatever it holds, while it has not revealed
    its tasks to the caller (SEES_ALL: an organizer) — else the one that governs the task (gate.governing)."""
    if round_ref:
        rnd = get_round(db, round_ref)
        if not (sees_all or reveals(rnd, now)):
            raise UserError(f"--round: round {rnd.label} has not opened yet; its boards are shown from its opening")
        if task_name not in rnd.tasks:
            raise UserError(f"TASK: {task_name!r} is not a task of round {rnd.label} ({', '.join(rnd.tasks)})")
        return rnd
    return governing(rounds_of_task(db, task_name), now)


PREVIEW_WAIT = 30.0  # seconds an organizer's private board before close waits for private halves still due


def board(h: Harness, task_name: str, round_ref: str | None = None, private: bool = False,
          organizer: bool = False, find: Callable[[object, str], Task] | None = None) -> dict:
    """A round's board for TASK. Private columns: after close for everyone, before close for organizers only
    (ORGANIZER: the caller's right, which the service checked). FIND(db, name): the task as the caller may know it
    (service.permissions.task_of; default: Harness.task)."""
    now = clock.now(h.settings)
    if private and organizer:  # a preview before close: the private halves of the submits reported so far
        with h.tx() as db:
            rnd = round_for_task(db, task_name, now, round_ref, sees_all=True)
            rnd_id = rnd.id if rnd is not None and not rnd.closed else None
        if rnd_id is not None:
            wait_private(h, rnd_id, timeout=PREVIEW_WAIT)  # (past it: the board shows what is scored)
    with h.tx() as db:
        task = (find or h.task)(db, task_name)
        rnd = round_for_task(db, task_name, now, round_ref, sees_all=organizer)
        if rnd is None:
            raise NotFound(f"TASK: {task_name!r} is in no contest round (see 'board {task_name}')")
        state = status(rnd, now)
        revealed = rnd.closed
        if private and not revealed and not organizer:
            raise UserError(f"--private: the private board of {rnd.label} is hidden until the round is closed")
        show_private = revealed or private
        rows = compute_board(db, rnd, task)
        split = (rnd.public_fraction, rnd.split_seed, task.name)
        mark_board(rows, sa_rows(db), task.direction, "public_rank", "public_submission", (*split, "public"))
        if show_private:  # the private board's own marks, over the private half, on its own keys
            private = sorted(({**r, "tie": None, "beats_next": None} for r in rows),
                             key=lambda r: (r["private_rank"] is None, r["private_rank"] or 0))
            mark_board(private, sa_rows(db), task.direction, "private_rank", "final_submission", (*split, "private"))
            marks = {p["team"]: p for p in private}
            for r in rows:
                r["private_tie"], r["private_beats_next"] = marks[r["team"]]["tie"], marks[r["team"]]["beats_next"]
            rows.sort(key=lambda r: (r["private_rank"] is None, r["private_rank"] or 0, r["public_rank"] is None,
                                     r["public_rank"] or 0, r["team"]))
        else:
            rows = [{k: v for k, v in r.items() if k not in PRIVATE_FIELDS} for r in rows]
        shakeup = expected_shakeup(rows, sa_rows(db), task.direction, split) if show_private else None
        return {"round": rnd.label, "task": task.name, "metric": task.metric, "direction": task.direction.value,
                "public_board": rnd.public_board.value, "status": state.value, "private_shown": show_private,
                "rows": rows, "shakeup": shakeup}


def _yours(db, sub: Submission, me) -> bool:
    """SUB is ME's, or ME's team's."""
    if sub.user_id == me.id:
        return True
    team = db.get(Team, sub.team_id) if sub.team_id is not None else None
    return team is not None and team_of(db, team.contest, me) is team


def select_submissions(h: Harness, ids: list[int]) -> dict:
    """`submit select ID...`: the team's final submissions for the private board (replaces an earlier choice)."""
    if not ids:
        raise UserError("ID: give one or more submission ids (see 'history TASK')")
    with h.tx() as db:
        me = h.user(db)
        subs = []
        for i in dict.fromkeys(ids):
            s = db.get(Submission, i)
            if s is None or not _yours(db, s, me):  # (one answer: whether someone else's id exists is not told)
                raise NotFound(f"ID: no submission {i} of yours or your team's")
            subs.append(s)
        rounds = {s.round_id for s in subs}
        tasks = {s.task_id for s in subs}
        if None in rounds:
            bad = next(s for s in subs if s.round_id is None)
            raise UserError(f"ID: submission {bad.id} is not a contest round submission (dry runs never are)")
        if len(rounds) > 1 or len(tasks) > 1:
            raise UserError("ID: all selected submissions must be of the same round and task")
        rnd = db.get(Round, rounds.pop())
        team = team_of(db, rnd.contest, me)
        if team is None or any(s.team_id != team.id for s in subs):
            raise UserError("ID: you may select only your own team's submissions")
        if rnd.closed:
            raise UserError(f"ID: round {rnd.label} is closed; its selection is final")
        if h.settings.private_at_close and rnd.ends_at <= clock.now(h.settings):  # (kept to the end, its private
            raise UserError(f"ID: round {rnd.label} has ended; its selection is final")  # halves are scored after)
        failed = [s.id for s in subs if s.status is not RunStatus.SUCCEEDED]
        if failed:
            raise UserError(f"ID: submission {failed[0]} has no score; only scored submissions can be selected")
        if len(subs) > rnd.selection_limit:
            raise UserError(f"ID: {len(subs)} selected, round {rnd.label} allows {rnd.selection_limit}")
        task_id = subs[0].task_id
        for s in db.scalars(select(Submission).where(Submission.round_id == rnd.id, Submission.task_id == task_id,
                                                     Submission.team_id == team.id)):
            s.selected = s.id in {x.id for x in subs}
        return {"round": rnd.label, "team": team.name, "selected": [s.id for s in subs]}


def qualifiers(rnd: Round, boards: dict[str, list[dict]], entered: list[str], direction_of: dict,
               last: bool = False) -> dict[str, str]:
    """Team → why it qualifies: top K (by private rank) or a threshold on the private score, on any task (a
    baseline never does, nor takes a place: the rank counted is among the teams that may);
    a round with no rule sends every entered team on (the last round, without a rule, qualifies nobody)."""
    rule = rnd.qualify or {}
    out: dict[str, str] = {}
    if not rule:
        return {} if last else {t: f"entered {rnd.name}" for t in entered}
    for task, rows in boards.items():
        ranked = [dict(r) for r in sorted(rows, key=lambda r: r["private_rank"] or 10 ** 9)
                  if r["private_rank"] is not None and not r.get("baseline")]  # a baseline takes no place
        read_sql.rank_rows(ranked, "private")  # the rank among the teams that may qualify (equal scores share one)
        for r in ranked:
            if r["team"] in out:
                continue
            if "top" in rule and r["rank"] <= rule["top"]:
                out[r["team"]] = f"{task}: private rank {r['rank']} (top {rule['top']})"
            elif "threshold" in rule:
                d = direction_of[task]
                if r["private"] == rule["threshold"] or d.better(r["private"], rule["threshold"]):
                    out[r["team"]] = f"{task}: private {r['private']:.6g} (threshold {rule['threshold']:g})"
    return out


def _left(delta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    return " ".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "min")) if n) or "under 1min"


def cut_short(rnd: Round, now: datetime, pending: int) -> str | None:
    """What closing RND at NOW cuts short, in words (None: the round is over, nothing is)."""
    state = status(rnd, now)
    if state is RoundStatus.ENDED:
        return None
    when = rnd.ends_at.isoformat(sep=" ", timespec="minutes")
    if state is RoundStatus.PENDING:
        what = f"it has not started (starts {rnd.starts_at.isoformat(sep=' ', timespec='minutes')} UTC)"
    else:
        what = f"it is open for {_left(rnd.ends_at - now)} more (until {when} UTC)"
    return what + (f"; {pending} submit(s) queued or running are scored first" if pending else "")


def _pending(db, round_id: int) -> list[int]:
    """The runs of the round's submits still queued or running."""
    return list(db.scalars(select(Submission.run_id).where(
        Submission.round_id == round_id, Submission.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))))


def without_private(db, rnd: Round) -> list[dict]:
    """The scored submissions of RND with no private score: their private half failed (its evaluator, or its
    time), which their teams were never told (a failure that depends on hidden labels would tell them those).
    None is a final (read_sql's rule); the close lists them, selected ones first, for the organizer to look at
    (each run's log says why; `rescore` grades them again)."""
    rows = db.execute(select(Submission.id, Task.name, Team.name, Submission.selected)
                      .join(Task, Task.id == Submission.task_id).join(Team, Team.id == Submission.team_id).where(
        Submission.round_id == rnd.id, Submission.status == RunStatus.SUCCEEDED, Submission.hidden.is_(False),
        counted_clause(), valid_score(Submission.score, db), ~valid_score(Submission.private_score, db))
        .order_by(Submission.selected.desc(), Submission.id)).all()
    return [{"submission": sub_id, "task": task, "team": team, "selected": bool(selected)}
            for sub_id, task, team, selected in rows]


def close_round(h: Harness, round_ref: str, force: bool = False) -> dict:
    """Freeze the round (after its queued submits are scored), reveal the private board, compute the
    qualifiers and open the next round to them. A round not yet over closes only with FORCE (the result says
    what was cut short). (An organizer command: the service checks the right.)"""
    with h.tx() as db:
        rnd = get_round(db, round_ref)
        if rnd.closed:
            raise UserError(f"ROUND: {rnd.label} was closed at {rnd.closed_at.isoformat(timespec='seconds')} UTC")
        pending = _pending(db, rnd.id)
        now = clock.now(h.settings)
        early = cut_short(rnd, now, len(pending))
        if early and not force:
            raise UserError(f"ROUND: {rnd.label} is not over: {early}; closing now cuts it short (add --force)")
        if early and status(rnd, now) is RoundStatus.OPEN:  # it ends now: no submit or session starts while
            rnd.ends_at = now  # its queued ones are scored (they would change the boards after they froze)
        if early:  # kept until it closes: a close interrupted while it waits is finished by `close` again, and
            rnd.results = {"cut_short": early}  # the round still says what was cut short (results: read once closed)
        rnd_id = rnd.id
    waited: set[int] = set()
    while pending:  # submitted in time: they are scored before the round freezes (and any that raced the end)
        for run_id in pending:
            wait_run(h, run_id)
        waited |= set(pending)
        with h.tx() as db:
            pending = [r for r in _pending(db, rnd_id) if r not in waited]
    wait_private(h, rnd_id)  # each scored submit's private half too (scored once the submit was reported)
    ladder_board.sweep(h.store, rnd_id)  # a Ladder's last decisions before its boards are frozen
    with h.tx() as db:
        rnd = db.get(Round, rnd_id)
        early = early or (rnd.results or {}).get("cut_short")
        now = clock.now(h.settings)
        rnd.closed_at = max(now, rnd.opened_at or now)
        tasks = {name: h.task(db, name) for name in rnd.tasks}
        boards = {name: compute_board(db, rnd, t) for name, t in tasks.items()}
        entered = [db.get(Team, e.team_id).name
                   for e in db.scalars(select(RoundEntry).where(RoundEntry.round_id == rnd.id))]
        nxt = db.scalar(select(Round).where(Round.contest_id == rnd.contest_id, Round.number == rnd.number + 1))
        chosen = qualifiers(rnd, boards, entered, {n: t.direction for n, t in tasks.items()}, last=nxt is None)
        if nxt is not None:
            teams = {t.name: t for t in rnd.contest.teams}
            admitted = chosen if nxt.entry == "qualified" else {t: "registered" for t in teams}
            for name, why in admitted.items():
                if db.scalar(select(RoundEntry.id).where(RoundEntry.round_id == nxt.id,
                                                         RoundEntry.team_id == teams[name].id)) is None:
                    db.add(RoundEntry(round_id=nxt.id, team_id=teams[name].id, reason=why))
            nxt.opened_at = now
        rnd.results = {"closed_at": rnd.closed_at.isoformat(timespec="seconds"), "boards": boards,
                       "qualifiers": chosen, "next_round": nxt.label if nxt else None,
                       "cut_short": early, "no_private_score": without_private(db, rnd),
                       "clock_simulated": clock.is_simulated(h.settings),
                       "clock_now": now.isoformat(timespec="seconds")}  # earlier than closed_at: the round opened later
        return {"round": rnd.label, **rnd.results}
