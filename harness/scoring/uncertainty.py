"""How sure a board is: bootstrap intervals, paired comparisons, statistical ties, the expected shake-up of a
public/private split, and the Ladder's acceptance rule. Pure functions of a declared metric
(harness.scoring.metric_library) and aligned records; nothing here reads the store or draws a board.

All resampling draws test examples with replacement (the percentile bootstrap over test examples), seeded, so the
same inputs and seed give the same numbers; harness.scoring.resampling says how the draws are made fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from harness.core.enums import Direction
from harness.core.errors import UserError

from .metric_library import MeanSample, Metric, Records
from .resampling import (
    CHUNK_ENTRIES,
    index_weights,
    mean_resamples,
    resampled_scores,
    rng_of,
    stack_means,
    weights_scores,
)


class Interval(NamedTuple):
    low: float
    high: float


def _check_level(level: float, resamples: int) -> None:
    if not 0 < level < 1:
        raise UserError(f"interval level must be between 0 and 1, got {level}")
    if resamples < 1:
        raise UserError(f"resamples must be at least 1, got {resamples}")


def resampled(metric: Metric, records: Records, resamples: int = 1000, seed=0,
              exact: bool | None = None) -> np.ndarray:
    """The metric's score on RESAMPLES bootstrap resamples of the test examples."""
    sample = metric.sample(records)
    if sample.n == 0:
        raise UserError("no test examples to resample")
    rng = rng_of(seed)
    if isinstance(sample, MeanSample):
        means, _ = mean_resamples(sample.values, resamples, rng, exact)
        return sample.finish(means)
    return resampled_scores([sample], resamples, rng)[0][0]


SUBSAMPLE_LIMIT = 2_000_000  # drawn indices past which GAP resamples a seeded subsample (see subsampled)


def subsampled(metric: Metric, records: Records, resamples: int, seed, exact: bool | None,
               names: tuple = ("gap",)) -> np.ndarray | None:
    """GAP (or the metrics NAMES) past SUBSAMPLE_LIMIT (n x resamples; exact None), whose exact bootstrap costs O(n)
    per resample: its resampled scores as the m-out-of-n bootstrap gives them, on a subsample of
    m = SUBSAMPLE_LIMIT / resamples examples drawn from SEED and n alone (the same for every submission: still
    paired), each resample's deviation from the subsample's score shrunk by sqrt(m / n) around the whole set's
    score (GAP is a smooth statistic of the ranked list: its spread falls as 1 / sqrt(n)). None: resample
    exactly."""
    n = len(records)
    if exact is True or metric.name not in names or (exact is None and n * resamples <= SUBSAMPLE_LIMIT):
        return None
    from .resampling import common_draw_scores
    m = min(n, max(2, SUBSAMPLE_LIMIT // resamples))
    part = records.take(np.sort(rng_of(seed).choice(n, m, replace=False)))
    scores = common_draw_scores(metric.sample(part), resamples, [seed, m])  # index draws: paired by construction
    return metric.score(records) + (scores - metric.score(part)) * np.sqrt(m / n)


def common_draws(metric: Metric, records: Records, resamples: int = 1000, seed=0) -> np.ndarray:
    """A whole-sample metric's scores on resamples drawn from SEED and the number of examples alone (past
    SUBSAMPLE_LIMIT: subsampled, whatever the metric: the cells shortcut cannot pair draws stored apart), so two
    submissions stored apart compare as a paired bootstrap."""
    from .resampling import common_draw_scores
    got = subsampled(metric, records, resamples, seed, None, (metric.name,))
    return got if got is not None else common_draw_scores(metric.sample(records), resamples, seed)


def interval(metric: Metric, records: Records, level: float = 0.95, resamples: int = 1000, seed=0,
             exact: bool | None = None) -> Interval:
    """(low, high): the percentile bootstrap interval of the metric over test examples at LEVEL: the
    (1-level)/2 and (1+level)/2 quantiles (numpy's linear interpolation) of the resampled scores.
    exact: see harness.scoring.resampling.mean_resamples (None: exact up to 20 million drawn indices) and
    subsampled (GAP)."""
    _check_level(level, resamples)
    scores = subsampled(metric, records, resamples, seed, exact)
    return _percentile(resampled(metric, records, resamples, seed, exact) if scores is None else scores, level)


def summable(values: np.ndarray) -> bool:
    """Whether per-example VALUES can be resampled, summed and differenced without overflow: all finite, and
    twice the count times the largest magnitude finite too (a crafted 1e154 is a finite loss whose square
    overflows every resample that draws it twice)."""
    values = np.asarray(values, dtype=np.float64)
    return values.size > 0 and bool(np.isfinite(values).all()) and \
        bool(np.isfinite(2.0 * values.size * float(np.abs(values).max())))


def _percentile(scores: np.ndarray, level: float) -> Interval:
    """The (1-level)/2 and (1+level)/2 quantiles of resampled SCORES (numpy's linear interpolation)."""
    low, high = np.quantile(scores, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high))


def interval_of_values(values: np.ndarray, finish, level: float = 0.95, resamples: int = 1000, seed=0,
                       exact: bool | None = None) -> Interval:
    """interval() for a score that is FINISH(mean of VALUES): an evaluator's own per-example output."""
    _check_level(level, resamples)
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        raise UserError("no test examples to resample")
    means, _ = mean_resamples(values, resamples, rng_of(seed), exact)
    return _percentile(np.asarray(finish(means)), level)


def _paired(metric: Metric, a: Records, b: Records, resamples: int, seed, exact: bool | None) -> np.ndarray:
    """Per resample: +1 when A scores better than B on it, -1 when worse, 0 when equal (same examples for both)."""
    if len(a) != len(b):
        raise UserError(f"paired comparison needs the same test examples: {len(a)} and {len(b)} records")
    sa, sb = metric.sample(a), metric.sample(b)
    if sa.n == 0:
        raise UserError("no test examples to resample")
    rng = rng_of(seed)
    sign = metric.direction.sign
    if isinstance(sa, MeanSample) and isinstance(sb, MeanSample):
        return _paired_means(sa.values, sb.values, sign, resamples, rng, exact)
    scores = resampled_scores([sa, sb], resamples, rng)[0]
    return np.sign(sign * (scores[0] - scores[1]))


def _paired_means(a: np.ndarray, b: np.ndarray, sign: float, resamples: int, rng, exact: bool | None) -> np.ndarray:
    # finish is monotone increasing: A's score is higher exactly when the mean of (a - b) is positive
    means, _ = mean_resamples(a - b, resamples, rng, exact)
    return np.sign(sign * means)


def share_better(signs: np.ndarray) -> float:
    return float(((signs > 0).sum() + 0.5 * (signs == 0).sum()) / len(signs))


def beats_probability(metric: Metric, records_a: Records, records_b: Records, resamples: int = 1000, seed=0,
                      exact: bool | None = None) -> float:
    """The paired-bootstrap probability that A's score is better than B's (by the metric's direction): the share
    of resamples (the same resampled examples for both) on which A is better, counting a resample where they are
    equal as half. beats_probability(a, b) + beats_probability(b, a) == 1."""
    return share_better(_paired(metric, records_a, records_b, resamples, seed, exact))


def beats_probability_of_values(a: np.ndarray, b: np.ndarray, direction: Direction, resamples: int = 1000,
                                seed=0, exact: bool | None = None) -> float:
    """beats_probability for a mean metric from the two entries' per-example values (as grading keeps them)."""
    sign = direction.sign
    return share_better(_paired_means(a, b, sign, resamples, rng_of(seed), exact))


def neighbour_probabilities(metric: Metric, ranked: Sequence[Records], resamples: int = 1000, seed=0,
                            exact: bool | None = None) -> list[float]:
    """For a board ranked best first: the probability that entry i beats entry i+1 (len(ranked) - 1 values)."""
    return [beats_probability(metric, ranked[i], ranked[i + 1], resamples, seed, exact)
            for i in range(len(ranked) - 1)]


def groups_from_probabilities(probabilities: Sequence[float], threshold: float = 0.9) -> list[int]:
    """Group ids (0, 1, ...) for len(probabilities) + 1 ranked entries: entry i+1 joins entry i's group when the
    probability that entry i beats it is below THRESHOLD."""
    groups = [0]
    for p in probabilities:
        groups.append(groups[-1] + (1 if p >= threshold else 0))
    return groups


def tie_groups(metric: Metric, entries: Sequence[Records], threshold: float = 0.9, resamples: int = 1000,
               seed=0, exact: bool | None = None) -> list[int]:
    """A statistical tie group id per entry of a board ranked best first (see groups_from_probabilities). A group
    of one entry is not a tie; ranks stay the organizer's rule, the groups are information."""
    if not entries:
        return []
    if not 0 < threshold <= 1:
        raise UserError(f"tie threshold must be in (0, 1], got {threshold}")
    return groups_from_probabilities(neighbour_probabilities(metric, entries, resamples, seed, exact), threshold)


@dataclass(frozen=True)
class BoardUncertainty:
    """intervals: each entry's (low, high); beats_next: the probability that entry i beats entry i+1; groups: the
    tie group of each entry (groups_from_probabilities)."""
    intervals: list
    beats_next: list
    groups: list


def board_uncertainty(metric: Metric, ranked: Sequence[Records], level: float = 0.95, threshold: float = 0.9,
                      resamples: int = 1000, seed=0) -> BoardUncertainty:
    """Intervals and tie marks for a whole board ranked best first, from ONE set of resamples shared by every
    entry (exact index resampling; the mean metrics' resampled means in one matrix product: memory about
    8 x examples x entries bytes). Cheaper than an interval per entry plus a comparison per neighbour once the
    board has more than a few entries; the numbers differ from interval()/beats_probability() only by their
    Monte Carlo noise."""
    _check_level(level, resamples)
    if not ranked:
        return BoardUncertainty([], [], [])
    if len({len(r) for r in ranked}) > 1:
        raise UserError("every entry of a board must be scored on the same test examples")
    scores, _ = resampled_scores([metric.sample(r) for r in ranked], resamples, rng_of(seed))
    bounds = np.quantile(scores, [(1 - level) / 2, (1 + level) / 2], axis=1)
    sign = metric.direction.sign
    diff = np.sign(sign * (scores[:-1] - scores[1:]))
    beats = (((diff > 0).sum(axis=1) + 0.5 * (diff == 0).sum(axis=1)) / resamples).tolist()
    return BoardUncertainty([Interval(float(lo), float(hi)) for lo, hi in bounds.T], beats,
                            groups_from_probabilities(beats, threshold))


# -- expected shake-up -------------------------------------------------------------------------------------------
def ranks(scores: np.ndarray, direction: Direction) -> np.ndarray:
    """Competition ranks (1 = best; equal scores share the better rank) along the last axis."""
    key = -direction.sign * np.asarray(scores, dtype=np.float64)
    key = np.atleast_2d(key)
    ordered = np.sort(key, axis=1)
    out = np.stack([np.searchsorted(o, k, side="left") for o, k in zip(ordered, key)]) + 1
    return out if np.ndim(scores) > 1 else out[0]


@dataclass(frozen=True)
class ShakeUp:
    """hold: per team, the probability that its rank on a resampled public board equals its rank on a resampled
    private board; public_rank / private_rank: the observed ranks on the two halves; moved: how many teams'
    ranks differ between them; expected_moved: the mean of that count over the resamples (what noise explains);
    p_value: the share of resamples moving at least as many teams as observed (small: more shake-up than noise)."""
    hold: dict
    public_rank: dict
    private_rank: dict
    moved: int
    expected_moved: float
    p_value: float


def rank_hold_probability(metric: Metric, teams: Mapping[str, Records], public: np.ndarray, private: np.ndarray,
                          pool: str = "whole", resamples: int = 1000, seed=0) -> ShakeUp:
    """The expected shake-up of a public/private split. TEAMS: each team's records on the whole test set (the
    same examples, in the same order, for every team); PUBLIC / PRIVATE: the indices of the two halves
    (harness.scoring.splits.halves).

    Each resample draws a public board of len(public) examples and a private board of len(private) examples
    with replacement, from POOL: "whole" (both from the whole test set: every team's skill as the whole test
    set measures it, the split's own luck left out: what noise alone does) or "halves" (the public board from the
    public half, the private one from the private half). The same examples serve every team on a board."""
    names = list(teams)
    if not names:
        raise UserError("no teams to rank")
    n = len(teams[names[0]])
    if any(len(teams[t]) != n for t in names):
        raise UserError("every team's records must cover the same test examples")
    public, private = np.asarray(public, dtype=np.int64), np.asarray(private, dtype=np.int64)
    if pool not in ("whole", "halves"):
        raise UserError(f"pool must be 'whole' or 'halves', got {pool!r}")
    samples = [metric.sample(teams[t]) for t in names]
    observed = [np.array([metric.score(teams[t].take(half)) for t in names]) for half in (public, private)]
    return _shake_up(names, samples, observed, metric.direction, n, public, private, pool, resamples, seed)


def shake_up_of_values(values: Mapping[str, np.ndarray], direction: Direction, public: np.ndarray,
                       private: np.ndarray, pool: str = "whole", resamples: int = 1000, seed=0) -> ShakeUp:
    """rank_hold_probability for a mean metric from each team's per-example values (as grading keeps them): its
    finish is monotone, so the ranks of the means are the ranks of the scores."""
    names = list(values)
    if not names or len({len(v) for v in values.values()}) > 1:
        raise UserError("every team's values must cover the same test examples")
    n = len(values[names[0]])
    public, private = np.asarray(public, dtype=np.int64), np.asarray(private, dtype=np.int64)
    samples = [MeanSample(np.asarray(values[t], dtype=np.float64), _identity) for t in names]
    observed = [np.array([float(np.mean(values[t][half])) for t in names]) for half in (public, private)]
    return _shake_up(names, samples, observed, direction, n, public, private, pool, resamples, seed)


def _identity(x):
    return x


def _shake_up(names, samples, observed, direction, n, public, private, pool, resamples, seed) -> ShakeUp:
    observed_pub, observed_priv = ranks(observed[0], direction), ranks(observed[1], direction)
    moved = int((observed_pub != observed_priv).sum())
    rng = rng_of(seed)
    everything = np.arange(n)
    boards = []
    for half in (public, private):
        boards.append(_board_scores(samples, n, everything if pool == "whole" else half, len(half), resamples, rng))
    pub_ranks, priv_ranks = ranks(boards[0], direction), ranks(boards[1], direction)
    same = pub_ranks == priv_ranks
    moved_sim = (~same).sum(axis=1)
    return ShakeUp(hold={t: float(same[:, i].mean()) for i, t in enumerate(names)},
                   public_rank={t: int(r) for t, r in zip(names, observed_pub)},
                   private_rank={t: int(r) for t, r in zip(names, observed_priv)},
                   moved=moved, expected_moved=float(moved_sim.mean()),
                   p_value=float((moved_sim >= moved).mean()))


def _board_scores(samples, n: int, source: np.ndarray, draws: int, resamples: int, rng) -> np.ndarray:
    """(resamples, teams) scores, each row on DRAWS examples drawn with replacement from SOURCE (chunked)."""
    out = np.empty((resamples, len(samples)))
    step = max(1, CHUNK_ENTRIES // max(n, draws, 1))
    stacked = stack_means(samples)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        w = index_weights(rng, n, rows, source, draws)
        out[start:start + rows] = weights_scores(samples, w, stacked)
    return out


# -- the Ladder --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LadderStep:
    """accepted: whether the submission replaced the team's shown best; shown: the score shown after it;
    score: the submission's own score; margin: how much lower its mean loss had to be (one standard error of the
    paired loss differences; 0 for a first submission)."""
    accepted: bool
    shown: float
    score: float
    margin: float


def ladder_accepts(metric: Metric, new: Records, best: Records | None) -> tuple[bool, float]:
    """The parameter-free Ladder's rule (Blum & Hardt, ICML 2015, Algorithm 2), on per-example losses
    (Metric.losses: 1 - value for accuracy, map and ndcg; the squared error for rmse; the absolute error for mae):
    with d_i = loss_new_i - loss_best_i over the n examples and s the sample standard deviation of d (ddof=1),
    the new submission is accepted when mean(d) < -s / sqrt(n), i.e. its mean loss is below the shown best's by
    more than one standard error of the paired differences. A first submission (BEST None) is accepted. Unlike the
    paper, the shown score is not rounded to a multiple of 1/n (our losses are not all in [0, 1]): it is the
    accepted submission's own score. Returns (accepted, the margin mean(d) had to clear)."""
    if not metric.per_example:
        raise UserError(f"the Ladder needs per-example losses; {metric.name} needs the whole sample")
    if best is None:
        return True, 0.0
    if len(new) != len(best):
        raise UserError(f"the Ladder compares on the same examples: {len(new)} and {len(best)} records")
    return _ladder_rule(metric.losses(new) - metric.losses(best))


def ladder_accepts_values(new: np.ndarray, best: np.ndarray | None, direction: Direction) -> tuple[bool, float]:
    """ladder_accepts for a mean metric from the two submissions' per-example values (as grading keeps them): a
    loss is the value (LOWER) or a constant minus it (HIGHER), so the loss differences are +-(new - best)."""
    if best is None:
        return True, 0.0
    if len(new) != len(best):
        raise UserError(f"the Ladder compares on the same examples: {len(new)} and {len(best)} values")
    d = np.asarray(new, dtype=np.float64) - np.asarray(best, dtype=np.float64)
    return _ladder_rule(d if direction is Direction.LOWER else -d)


def _ladder_rule(d: np.ndarray) -> tuple[bool, float]:
    """Accept when the mean paired loss difference D is below minus one standard error of D."""
    if len(d) < 2:
        raise UserError("the Ladder needs at least two test examples")
    margin = float(d.std(ddof=1) / np.sqrt(len(d)))
    return bool(d.mean() < -margin), margin


class Ladder:
    """One team's Ladder public board: submit() each new submission's public records in order."""

    def __init__(self, metric: Metric):
        self.metric = metric
        self.best: Records | None = None
        self.shown: float | None = None

    def submit(self, records: Records) -> LadderStep:
        accepted, margin = ladder_accepts(self.metric, records, self.best)
        score = self.metric.score(records)
        if accepted:
            self.best, self.shown = records, score
        return LadderStep(accepted, float(self.shown), score, margin)
