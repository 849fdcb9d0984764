"""The report's "Public board: plain vs Ladder" section: what each board rule does with a simulated round's own
submissions, what two replayed attackers get out of each, and the public fraction and quota the task's measured
noise suggests (harness.scoring.public_boards does the arithmetic).

Every number comes from the per-example values kept when the round's submissions were graded. The teams'
submissions are replayed through both rules in submit order (the simulated teams did not adapt to either
board); the two attackers adapt to what each board shows them: the paper's boosting attack and a hill-climber,
both working with two real models of the round (the median team's final submission and the one ranked just
below it, which are about as good), with as many submits as the round allows a team, and the boosting attack
also with ten times that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select

from harness.core.display import score_text
from harness.core.enums import PublicBoard, RunStatus
from harness.core.errors import UserError
from harness.scoring.board_rules import counted_clause
from harness.scoring.board_ties import kept_values
from harness.scoring.metric_library import metric
from harness.scoring.public_boards import boosting_attack, hill_climb, recommend, replay_board
from harness.scoring.splits import halves
from harness.store.models import Round, Submission

PLAIN, LADDER = PublicBoard.PLAIN, PublicBoard.LADDER
SEED = 0


@dataclass
class RoundData:
    teams: dict  # team → [values on the whole test set, in submit order]
    finals: dict  # team → the values of its final (private board) submission
    periods: int
    allowance: int  # submits a team may make in the round


def collect(db, rnd: Round, task, rows: list[dict]) -> RoundData | str:
    """The round's kept values for TASK, or why there are none (a sentence)."""
    teams: dict[str, list] = {}
    subs = db.scalars(select(Submission).where(
        Submission.round_id == rnd.id, Submission.task_id == task.id, Submission.status == RunStatus.SUCCEEDED,
        Submission.hidden.is_(False), counted_clause()).order_by(Submission.created_at, Submission.id)).all()
    by_id = {}
    for sub in subs:
        values = kept_values(sub.run.run_dir)
        if values is not None:
            teams.setdefault(sub.team.name, []).append(values)
            by_id[sub.id] = values
    if len({len(v) for vs in teams.values() for v in vs}) > 1:
        return "the kept per-example values differ in length (the test set changed during the round)"
    finals = {r["team"]: by_id[r["final_submission"]] for r in rows
              if r.get("final_submission") in by_id and r.get("private_rank") is not None}
    if len(teams) < 2 or len(finals) < 2:
        return "fewer than two teams have per-example values kept from grading"
    periods = max(1, math.ceil((rnd.ends_at - rnd.starts_at).total_seconds() / rnd.submit_period))
    return RoundData(teams, finals, periods, max(1, rnd.submit_quota * periods))


def section(db, rnd: Round, task, rows: list[dict]) -> list[str]:
    """The Markdown lines of the section for TASK in RND (ROWS: its closed board)."""
    head = [f"#### Public board: plain vs Ladder — {task.name} in {rnd.name}", ""]
    try:
        m = metric(task.metric)
    except UserError:
        return head + [f"No comparison: the task's metric {task.metric!r} is its own evaluator's.", ""]
    if not m.per_example:
        return head + [f"No comparison: {m.name} needs the whole sample (no per-example losses).", ""]
    data = collect(db, rnd, task, rows)
    if isinstance(data, str):
        return head + [f"No comparison: {data}.", ""]
    n = len(next(iter(data.finals.values())))
    public, private = halves(n, rnd.public_fraction, rnd.split_seed, task.name)
    d, finish = task.direction, m.finish
    boards = {b: replay_board(data.teams, public, private, d, finish, b) for b in (PLAIN, LADDER)}
    corr = {b: "—" if r.correlation is None else f"{r.correlation:.2f}" for b, r in boards.items()}
    lines = head + [
        f"This round's board is **{rnd.public_board.value}**. Its {sum(len(v) for v in data.teams.values())} scored "
        f"submissions of {len(data.teams)} teams, replayed in submit order through both rules ({len(public)} public "
        f"examples, {len(private)} private):", "",
        "| Board | Public–private rank correlation | Optimism (public minus private, mean over teams) |",
        "|---|---|---|",
        *[f"| {b.value} | {corr[b]} | {boards[b].optimism:+.4g} |" for b in (PLAIN, LADDER)], ""]
    ordered = sorted(data.finals, key=lambda t: d.sort_key(float(finish(data.finals[t].mean()))))
    if len(ordered) >= 2:
        mid = min(len(ordered) // 2, len(ordered) - 2)
        a, b = data.finals[ordered[mid]], data.finals[ordered[mid + 1]]
        lines += _attacks(a, b, public, private, data.allowance, d, finish, ordered[mid], ordered[mid + 1],
                          boards[PLAIN].public, boards[LADDER].public)
    rec = recommend(list(data.finals.values()), d, data.periods)
    if rec is not None:
        lines += ["**Recommended for this task** (from its measured noise): public fraction "
                  f"**{rec.public_fraction:g}**, at most **{rec.total_submits}** submit{'s' * (rec.total_submits != 1)} per team over a round like "
                  f"this one ({rec.per_period} per {rnd.submit_period:g} s period; this round allowed "
                  f"{data.allowance}). Why: {rec.why}.", ""]
    return lines


def _attacks(a, b, public, private, allowance, d, finish, team_a, team_b, plain_board, ladder_board) -> list[str]:
    out = [f"Replayed attackers, with two real models of this round ({team_a}'s and {team_b}'s final "
           "submissions), adapting to what each board shows them:", "",
           "| Attacker | Submits | Board | Public shown: before → after (rank) | Private: before → after |",
           "|---|---|---|---|---|"]
    runs = [("boosting attack (Blum & Hardt)", allowance, boosting_attack),
            ("boosting attack, ten accounts", 10 * allowance, boosting_attack),
            ("hill-climber (5% of examples per submit)", allowance, hill_climb)]
    for name, k, attack in runs:
        for board, shown in ((PLAIN, plain_board), (LADDER, ladder_board)):
            r = attack(a, b, public, private, k, d, finish, board, seed=SEED)
            rank = 1 + sum(d.better(s, r.public_after) for s in shown.values())
            out.append(f"| {name} | {k} | {board.value} | {score_text(r.public_before)} → "
                       f"{score_text(r.public_after)} ({rank} of {len(shown) + 1}) | {score_text(r.private_before)} → "
                       f"{score_text(r.private_after)} |")
    return out + ["", "A climb on the public board that the private column does not share is the public half's noise, "
                  "learnt from the board's answers.", ""]
