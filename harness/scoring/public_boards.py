"""Plain and Ladder public boards compared on the same submissions, the paper's boosting attack against each, and
a public fraction and submit quota recommended from a task's measured noise. Pure functions of per-example
values (as grading keeps them: harness.scoring.score_interval) for a mean metric; `contest simulate` reads them
from its store (harness.sim.board_study) and writes what they say into its report.

Value space: a mean metric's score is finish(mean of per-example values) with finish monotone increasing, so a
board's order is the order of the means (higher better for a HIGHER metric, lower for a LOWER one), and a
submission that takes, example by example, either submission A's prediction or submission B's has per-example
values a + mask * (b - a). With A and B the two constant labelings of a binary task that is exactly the random
labeling of Blum & Hardt's attack; with two real models of any task it is the same attack on what they disagree
about.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from harness.core.enums import Direction, PublicBoard

from .uncertainty import ladder_accepts_values

Finish = Callable[[np.ndarray], np.ndarray]


def score_of(values: np.ndarray, finish: Finish) -> float:
    return float(np.asarray(finish(np.asarray(float(np.mean(values))))))


def shown_index(public_values: Sequence[np.ndarray], direction: Direction, board: PublicBoard) -> int | None:
    """Which of a team's submissions (public-half values, in submit order) its public board shows: the best
    public mean (plain; the earliest among equals) or the last one the Ladder accepted."""
    shown, best = None, None
    for i, v in enumerate(public_values):
        if board is PublicBoard.PLAIN:
            if best is None or direction.better(float(np.mean(v)), best):
                shown, best = i, float(np.mean(v))
        elif ladder_accepts_values(v, None if shown is None else public_values[shown], direction)[0]:
            shown = i
    return shown


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (None for fewer than 3 entries or a constant side)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr
    return float(spearmanr(x, y).statistic)


@dataclass(frozen=True)
class BoardReplay:
    """One board rule replayed over every team: per team the shown public score and the private score of the
    same submission; the public-private rank correlation over teams; the mean optimism (public minus private,
    signed so that positive means the public board flatters)."""
    board: PublicBoard
    public: dict
    private: dict
    correlation: float | None
    optimism: float


def replay_board(teams: dict[str, list[np.ndarray]], public: np.ndarray, private: np.ndarray, direction: Direction,
                 finish: Finish, board: PublicBoard) -> BoardReplay:
    """TEAMS: team → its submissions' per-example values on the whole test set, in submit order."""
    pub, priv = {}, {}
    for team, subs in teams.items():
        i = shown_index([v[public] for v in subs], direction, board)
        if i is not None:
            pub[team], priv[team] = score_of(subs[i][public], finish), score_of(subs[i][private], finish)
    names = sorted(pub)
    sign = direction.sign
    optimism = float(np.mean([sign * (pub[t] - priv[t]) for t in names])) if names else 0.0
    return BoardReplay(board, pub, priv, spearman([pub[t] for t in names], [priv[t] for t in names]), optimism)


@dataclass(frozen=True)
class AttackResult:
    """The boosting attack against one board: QUERIES mixed submissions, KEPT of them voted; the public score the
    board shows the attacker before (its base submission A) and after, and the private score of A and of the
    attack's final (majority-vote) submission."""
    board: PublicBoard
    queries: int
    kept: int
    public_before: float
    public_after: float
    private_before: float
    private_after: float

    @property
    def public_gain(self) -> float:
        return self.public_after - self.public_before

    @property
    def private_gain(self) -> float:
        return self.private_after - self.private_before


class _Board:
    """One team's public board as an attacker sees it: plain (every submit's public mean; the best is shown) or
    the Ladder (accepted or not; the last accepted is shown)."""

    def __init__(self, board: PublicBoard, direction: Direction, first: np.ndarray):
        self.board, self.direction, self.shown = board, direction, first

    def submit(self, public_values: np.ndarray) -> bool:
        """Whether the shown score moved to this submission."""
        if self.board is PublicBoard.PLAIN:
            moved = self.direction.better(float(np.mean(public_values)), float(np.mean(self.shown)))
        else:
            moved = ladder_accepts_values(public_values, self.shown, self.direction)[0]
        if moved:
            self.shown = public_values
        return moved


def boosting_attack(a: np.ndarray, b: np.ndarray, public: np.ndarray, private: np.ndarray, queries: int,
                    direction: Direction, finish: Finish, board: PublicBoard, seed: int = 0) -> AttackResult:
    """Blum & Hardt's boosting attack (ICML 2015, section 5) in value space: submit A, then QUERIES submissions
    each taking every example's prediction from A or B at random; keep those the board shows doing well
    (plain: a public mean better than A's and B's average, the expected score of a random mix; Ladder: the ones
    it accepted, all an attacker learns); finally submit, example by example, the choice most kept submissions
    made. The plain board shows the best public score of everything submitted; the Ladder its last accepted."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = b - a
    chance = (float(np.mean(a[public])) + float(np.mean(b[public]))) / 2
    shown = _Board(board, direction, a[public])
    votes, kept = np.zeros(len(a)), 0
    for _ in range(queries):
        mask = rng.integers(0, 2, len(a)).astype(np.float64)
        values = a + mask * diff
        moved = shown.submit(values[public])
        if moved if board is PublicBoard.LADDER else direction.better(float(np.mean(values[public])), chance):
            votes += mask
            kept += 1
    final = a + (votes > kept / 2) * diff if kept else a
    shown.submit(final[public])
    return AttackResult(board, queries, kept, score_of(a[public], finish), score_of(shown.shown, finish),
                        score_of(a[private], finish), score_of(final[private], finish))


def hill_climb(a: np.ndarray, b: np.ndarray, public: np.ndarray, private: np.ndarray, queries: int,
               direction: Direction, finish: Finish, board: PublicBoard, share: float = 0.05,
               seed: int = 0) -> AttackResult:
    """An adaptive overfitter: from A, each submit switches a random SHARE of the examples between A's and B's
    predictions in the submission the board now shows, and builds on it when the board's shown score moves to
    it. Its final submission is the one the board shows; KEPT counts the moves."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    shown, mask, kept = _Board(board, direction, a[public]), np.zeros(len(a), dtype=bool), 0
    for _ in range(queries):
        trial = mask ^ (rng.random(len(a)) < share)
        values = np.where(trial, b, a)
        if shown.submit(values[public]):
            mask, kept = trial, kept + 1
    final = np.where(mask, b, a)
    return AttackResult(board, queries, kept, score_of(a[public], finish), score_of(shown.shown, finish),
                        score_of(a[private], finish), score_of(final[private], finish))


@dataclass(frozen=True)
class Recommendation:
    """public_fraction: the largest share (0.1 to 0.5, in steps of 0.05) that leaves the private half enough
    examples to tell typical neighbours apart at 95%; total_submits: how many submits per team keep the
    best-of-k luck on the public board under half the typical neighbour gap; why: the figures, in words."""
    public_fraction: float
    total_submits: int
    per_period: int
    needed_private: int | None
    why: str


def recommend(finals: Sequence[np.ndarray], direction: Direction, periods: int) -> Recommendation | None:
    """From the teams' final submissions' per-example values on the whole test set (ranked by any rule: they are
    sorted here by their whole-set mean): the typical neighbour gap g (the mean |mean difference| of neighbours:
    the board's range over its steps) and their paired per-example spread s (the median standard deviation of the
    differences); the private half needs
    n = (1.96 s / g)^2 examples; a single submission's public score wobbles by sigma = (median per-example
    standard deviation) / sqrt(public examples), and the best of k submits is about sigma * sqrt(2 ln k) lucky,
    so k = exp((g / (2 sigma))^2 / 2) keeps that luck under g / 2. None for fewer than two finals."""
    finals = [np.asarray(v, dtype=np.float64) for v in finals]
    if len(finals) < 2:
        return None
    n = len(finals[0])
    order = sorted(finals, key=lambda v: direction.sort_key(float(np.mean(v))))
    pairs = [(float(abs(np.mean(x - y))), float(np.std(x - y, ddof=1))) for x, y in zip(order, order[1:])]
    gap = float(np.mean([g for g, _ in pairs]))  # the board's range over its steps: stable when many entries tie
    if gap <= 0:
        return Recommendation(0.1, 1, 1, None, "every final scores the same: nothing to separate; the smallest "
                              "public board and one submit per team lose nothing")
    spread = float(np.median([s for _, s in pairs]))
    needed = math.ceil((1.96 * spread / gap) ** 2)
    top = 1 - needed / n
    fraction = min(0.5, max(0.1, math.floor(top * 20) / 20))
    sd = float(np.median([np.std(v, ddof=1) for v in finals]))
    sigma = sd / math.sqrt(max(1, fraction * n))
    k = 1000 if sigma == 0 else int(min(1000, max(1, math.exp(min(50.0, (gap / (2 * sigma)) ** 2 / 2)))))
    gap_text = f"{gap:.3g} in per-example values (spread {spread:.3g})"
    enough = (f"the private half needs about {needed} of the {n} test examples to tell typical neighbours apart "
              f"at 95% (gap {gap_text})")
    if top < 0.1:
        enough += "; the test set is too small for that: neighbours stay within noise whatever the split"
    why = (f"{enough}; at {fraction:.0%} public a submission's public score wobbles by {sigma:.3g}, so about {k} "
           f"submit{'s' * (k != 1)} per team keep{'s' * (k == 1)} the luck of the best one under half that gap")
    return Recommendation(fraction, k, max(1, k // max(1, periods)), needed, why)
