"""How sure a board is (harness.scoring.uncertainty): bootstrap intervals cover a known truth at their level;
paired tie marks agree with a plain loop over resamples; the expected shake-up separates noise from skill; the
Ladder withstands Blum & Hardt's boosting attack and still accepts honest improvements."""
import math

import numpy as np
import pytest

from harness.core.errors import UserError
from harness.scoring.metric_library import Records, metric
from harness.scoring.resampling import mean_resamples, within_share
from harness.scoring.uncertainty import (
    Ladder,
    beats_probability,
    board_uncertainty,
    groups_from_probabilities,
    interval,
    neighbour_probabilities,
    rank_hold_probability,
    ranks,
    resampled,
    share_better,
    tie_groups,
)

ACC, RMSE = metric("accuracy"), metric("rmse")


def right_with(rng, labels, p, classes=4):
    """Predictions right with probability p (independently per example), else a wrong class."""
    wrong = (labels + rng.integers(1, classes, len(labels))) % classes
    return np.where(rng.random(len(labels)) < p, labels, wrong)


# -- coverage ----------------------------------------------------------------------------------------------------
def test_accuracy_intervals_cover_the_true_accuracy_95_percent_of_the_time():
    rng = np.random.default_rng(20260601)
    trials, n, truth = 1000, 300, 0.8
    covered = 0
    for t in range(trials):
        correct = rng.random(n) < truth
        low, high = interval(ACC, Records(np.zeros(n, int), np.where(correct, 0, 1)), seed=t)
        covered += low <= truth <= high
    assert 0.93 <= covered / trials <= 0.97, covered / trials


def test_rmse_intervals_cover_the_true_rmse_95_percent_of_the_time():
    rng = np.random.default_rng(20260602)
    trials, n, sigma = 600, 300, 2.0  # Gaussian errors: the population RMSE is sigma
    covered = 0
    for t in range(trials):
        errors = rng.normal(0, sigma, n)
        low, high = interval(RMSE, Records(np.zeros(n), errors), seed=t)
        covered += low <= sigma <= high
    assert 0.93 <= covered / trials <= 0.97, covered / trials


def test_a_narrower_level_covers_less():
    rng = np.random.default_rng(20260603)
    covered = 0
    for t in range(400):
        correct = rng.random(300) < 0.8
        low, high = interval(ACC, Records(np.zeros(300, int), np.where(correct, 0, 1)), level=0.5, seed=t)
        covered += low <= 0.8 <= high
    assert 0.4 <= covered / 400 <= 0.6


def test_intervals_are_seeded_and_reproducible():
    rng = np.random.default_rng(9)
    records = Records(np.zeros(500), rng.normal(0, 1, 500))
    assert interval(RMSE, records, seed=3) == interval(RMSE, records, seed=3)
    assert interval(RMSE, records, seed=3) != interval(RMSE, records, seed=4)
    low, high = interval(RMSE, records)
    assert low < RMSE.score(records) < high


def test_value_strata_resample_a_large_mean_like_exact_indices():
    """Past 20 million drawn indices a mean is resampled by value strata (harness.scoring.resampling): on
    heavy-tailed squared errors its resampled distribution matches the exact bootstrap's."""
    rng = np.random.default_rng(10)
    values = rng.standard_t(4, 20000) ** 2
    exact, way = mean_resamples(values, 2000, np.random.default_rng(1), exact=True)
    strata, way2 = mean_resamples(values, 2000, np.random.default_rng(2), exact=False)
    assert (way, way2) == ("indices", "strata")
    sd = exact.std()
    assert strata.std() == pytest.approx(sd, rel=0.08)
    for q in (0.025, 0.5, 0.975):
        assert abs(np.quantile(strata, q) - np.quantile(exact, q)) < 0.4 * sd, q
    assert 0 < within_share(values) < 1e-3  # heavy tails end in small strata


def test_whole_sample_metrics_get_intervals_too():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, 400)
    records = Records(labels, right_with(rng, labels, 0.7))
    for name in ("balanced_accuracy", "f1"):
        low, high = interval(metric(name), records)
        assert low < metric(name).score(records) < high and high - low < 0.2
    gap = Records(labels, right_with(rng, labels, 0.7), rng.random(400), np.arange(400))
    low, high = interval(metric("gap"), gap)
    assert low < metric("gap").score(gap) < high
    with pytest.raises(UserError):
        interval(ACC, records, level=1.5)


# -- paired comparisons and ties ---------------------------------------------------------------------------------
def test_beats_probability_is_paired_symmetric_and_direction_aware():
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 4, 1000)
    good, bad = right_with(rng, labels, 0.8), right_with(rng, labels, 0.6)
    a, b = Records(labels, good), Records(labels, bad)
    assert beats_probability(ACC, a, b) > 0.99
    assert beats_probability(ACC, a, b) + beats_probability(ACC, b, a) == pytest.approx(1.0)
    assert beats_probability(ACC, a, a) == 0.5
    near = good.copy()
    flip = np.flatnonzero(good == labels)[:3]
    near[flip] = (labels[flip] + 1) % 4  # three more mistakes: unpaired noise would hide them, pairing does not
    # A is better on every resample that draws one of the three, equal otherwise: 1 - e^-3 / 2
    assert beats_probability(ACC, a, Records(labels, near)) == pytest.approx(1 - math.exp(-3) / 2, abs=0.02)
    small, large = rng.normal(0, 1, 1000), rng.normal(0, 1.3, 1000)
    zeros = np.zeros(1000)
    assert beats_probability(RMSE, Records(zeros, small), Records(zeros, large)) > 0.99  # lower is better


def reference_probabilities(m, entries, resamples, seed):
    """The straightforward computation: per resample, draw n example indices, score every entry on them."""
    rng = np.random.default_rng(seed)
    n = len(entries[0])
    wins = np.zeros(len(entries) - 1)
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        scores = [m.score(e.take(idx)) for e in entries]
        for i in range(len(entries) - 1):
            a, b = scores[i], scores[i + 1]
            better = a > b if m.direction.value == "higher" else a < b
            wins[i] += 1.0 if better else 0.5 if a == b else 0.0
    return wins / resamples


def board(name, rng, n=400):
    """Two near-ties (a leader, and a copy as often right: 20 of its right answers made wrong and 20 wrong ones
    right; for RMSE, its errors shuffled among 80 examples), then a clearly worse entry."""
    labels = rng.integers(0, 4, n)

    def predict(quality):
        if name == "rmse":
            return rng.normal(0, 1 / quality, n)
        return right_with(rng, labels, quality)

    def records(pred):
        if name == "rmse":
            return Records(np.zeros(n), pred)
        if name == "gap":
            return Records(labels, pred, np.linspace(1, 0, n), np.arange(n))
        return Records(labels, pred)
    entries = []
    for quality in (0.85, 0.70):
        leader = predict(quality)
        partner = leader.copy()
        if name == "rmse":
            redo = rng.choice(n, 80, replace=False)
            partner[redo] = leader[rng.permutation(redo)]
        else:
            right, wrong = np.flatnonzero(leader == labels), np.flatnonzero(leader != labels)
            spoil, mend = rng.choice(right, 20, replace=False), rng.choice(wrong, 20, replace=False)
            partner[spoil], partner[mend] = (labels[spoil] + 1) % 4, labels[mend]
        entries += [records(leader), records(partner)]
    return entries + [records(predict(0.5))]


@pytest.mark.parametrize("name", ["accuracy", "f1", "rmse", "gap"])
def test_tie_marks_match_a_reference_loop(name):
    m = metric(name)
    entries = board(name, np.random.default_rng(13))
    order = np.argsort([m.direction.sort_key(m.score(e)) for e in entries], kind="stable")
    entries = [entries[i] for i in order]
    ref = reference_probabilities(m, entries, 1000, seed=99)
    assert all(abs(p - 0.9) > 0.06 for p in ref), ref  # the board is built far from the threshold
    fast = neighbour_probabilities(m, entries, resamples=1000, seed=5)
    assert np.abs(np.array(fast) - ref).max() < 0.05, (fast, ref)
    expected = groups_from_probabilities(ref, 0.9)
    assert tie_groups(m, entries, threshold=0.9, seed=5) == expected
    joint = board_uncertainty(m, entries, threshold=0.9, seed=5)  # one set of resamples for the whole board
    assert joint.groups == expected and np.abs(np.array(joint.beats_next) - ref).max() < 0.05
    for (low, high), entry in zip(joint.intervals, entries):
        alone = interval(m, entry, seed=6)
        width = alone.high - alone.low
        assert abs(low - alone.low) < 0.15 * width and abs(high - alone.high) < 0.15 * width
    assert expected == [0, 0, 1, 1, 2]  # two tied pairs, then a clear last


def test_groups_from_probabilities():
    assert groups_from_probabilities([0.95, 0.5, 0.99, 0.89], 0.9) == [0, 1, 1, 2, 2]
    assert groups_from_probabilities([], 0.9) == [0]


# -- expected shake-up -------------------------------------------------------------------------------------------
def test_ranks_share_the_better_rank_on_equal_scores():
    from harness.core.enums import Direction
    assert ranks(np.array([0.5, 0.9, 0.5, 0.1]), Direction.HIGHER).tolist() == [2, 1, 2, 4]
    assert ranks(np.array([0.5, 0.9, 0.5, 0.1]), Direction.LOWER).tolist() == [2, 4, 2, 1]


def test_separated_teams_hold_their_ranks_and_equal_teams_do_not():
    rng = np.random.default_rng(14)
    n = 1000
    labels = rng.integers(0, 4, n)
    public, private = np.arange(0, n, 2), np.arange(1, n, 2)
    apart = {f"t{i}": Records(labels, right_with(rng, labels, p)) for i, p in enumerate((0.5, 0.6, 0.7, 0.8, 0.9))}
    shake = rank_hold_probability(ACC, apart, public, private, resamples=500)
    assert min(shake.hold.values()) > 0.95 and shake.moved == 0
    alike = {f"t{i}": Records(labels, right_with(rng, labels, 0.7)) for i in range(8)}
    shake = rank_hold_probability(ACC, alike, public, private, resamples=500)
    assert max(shake.hold.values()) < 0.5 and shake.expected_moved > 5


def test_overfitting_the_public_half_is_more_shake_up_than_noise_explains():
    rng = np.random.default_rng(15)
    n = 1000
    labels = rng.integers(0, 4, n)
    public, private = np.arange(0, n, 2), np.arange(1, n, 2)
    teams = {}
    for i, p in enumerate((0.60, 0.64, 0.68, 0.72)):  # honest
        teams[f"honest{i}"] = Records(labels, right_with(rng, labels, p))
    for i, p in enumerate((0.85, 0.9)):  # right on the public half, guessing on the private one
        pred = right_with(rng, labels, 0.3)
        pred[public] = right_with(rng, labels[public], p)
        teams[f"overfit{i}"] = Records(labels, pred)
    shake = rank_hold_probability(ACC, teams, public, private, pool="whole", resamples=500)
    assert shake.public_rank["overfit1"] == 1 and shake.private_rank["overfit1"] >= 5
    assert shake.moved >= 5 and shake.p_value < 0.01, shake
    halves = rank_hold_probability(ACC, teams, public, private, pool="halves", resamples=500)
    assert halves.hold["overfit1"] < 0.05 < shake.hold["overfit1"]  # the halves' own difference shows


# -- the Ladder --------------------------------------------------------------------------------------------------
def boosting_attack(seed, n_public=2000, k=600):
    """Blum & Hardt's attack on random labels: submit k random labelings, keep those the board shows improving
    (plain: public accuracy above one half; Ladder: accepted), then submit their majority vote."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 2 * n_public)
    public, private = np.arange(n_public), np.arange(n_public, 2 * n_public)
    subs = rng.integers(0, 2, (k, 2 * n_public))
    plain_kept = subs[(subs[:, public] == y[public]).mean(axis=1) > 0.5]
    plain_vote = (plain_kept.mean(axis=0) > 0.5).astype(int)
    ladder, kept = Ladder(ACC), []
    for s in subs:
        if ladder.submit(Records(y[public], s[public])).accepted:
            kept.append(s)
    vote = (np.mean(kept, axis=0) > 0.5).astype(int)
    ladder.submit(Records(y[public], vote[public]))
    acc = (lambda p, idx: float((p[idx] == y[idx]).mean()))
    return dict(plain_public=acc(plain_vote, public), plain_private=acc(plain_vote, private),
                luckiest=float((subs[:, public] == y[public]).mean(axis=1).max()),
                ladder_shown=ladder.shown, ladder_private=acc(vote, private), ladder_kept=len(kept))


def test_the_boosting_attack_lifts_a_plain_board_but_not_the_ladder():
    """The noise level: the public accuracy of the luckiest of the k random labelings (about 0.5 + 3 standard
    deviations, 0.011 each at 2,000 public examples); the attack's majority vote lifts a plain board 0.1 past
    chance, far beyond it, while the Ladder shows no more than it."""
    n_public, k = 2000, 600
    noise = math.sqrt(0.25 / n_public)
    for seed in range(4):
        r = boosting_attack(seed, n_public, k)
        assert r["plain_public"] - r["luckiest"] > 0.05, r  # the plain board is climbed past any luck...
        assert r["plain_public"] - 0.5 > 9 * noise, r
        assert abs(r["plain_private"] - 0.5) < 3 * noise, r  # ...by a submission no better than chance
        assert r["ladder_shown"] <= r["luckiest"] and r["ladder_shown"] - 0.5 < 4 * noise, r
        assert r["ladder_kept"] <= 6 and abs(r["ladder_private"] - 0.5) < 3 * noise, r


def test_the_ladder_accepts_honest_improvements_and_few_equal_resubmissions():
    n = 2000
    accepted_better, accepted_equal = 0, 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        labels = rng.integers(0, 4, n)
        ladder = Ladder(ACC)
        ladder.submit(Records(labels, right_with(rng, labels, 0.65)))
        for p in (0.70, 0.75, 0.80):  # five points better each time
            accepted_better += ladder.submit(Records(labels, right_with(rng, labels, p))).accepted
        step = ladder.submit(Records(labels, right_with(rng, labels, 0.80)))  # as good, fresh noise
        accepted_equal += step.accepted
        assert step.margin > 0.01
    assert accepted_better >= 57  # of 60
    assert accepted_equal <= 8  # of 20: about one in six by the rule (one standard error)


def test_the_ladder_needs_per_example_losses():
    records = Records(np.array([0, 1, 1]), np.array([0, 1, 0]))
    with pytest.raises(UserError, match="per-example"):
        Ladder(metric("f1")).submit(records)
    first = Ladder(RMSE).submit(Records(np.zeros(3), np.ones(3)))
    assert first.accepted and first.shown == 1.0 and first.margin == 0.0


def test_resampled_scores_use_every_path():
    rng = np.random.default_rng(16)
    labels = rng.integers(0, 4, 300)
    scores = resampled(metric("f1"), Records(labels, right_with(rng, labels, 0.7)), resamples=200)
    assert scores.shape == (200,) and 0.6 < scores.mean() < 0.8 and scores.std() > 0.01


def test_gap_past_the_limit_resamples_a_subsample_like_exact_indices():
    """GAP's exact bootstrap is O(n) per resample (16 s at 100,000 examples); past SUBSAMPLE_LIMIT it resamples a
    seeded subsample of 2,000 and shrinks the deviations by sqrt(m / n). Measured at 10,000: both intervals
    0.341-0.368 (endpoints within 0.001)."""
    from harness.scoring.uncertainty import SUBSAMPLE_LIMIT, common_draws
    rng = np.random.default_rng(21)
    n = 10_000
    assert n * 1000 > SUBSAMPLE_LIMIT
    labels = rng.integers(0, 1000, n)
    preds = np.where(rng.random(n) < 0.6, labels, rng.integers(0, 1000, n))
    records = Records(labels, preds, rng.random(n), np.arange(n))
    gap = metric("gap")
    approx, exact = interval(gap, records), interval(gap, records, exact=True)
    width = exact.high - exact.low
    assert abs(approx.low - exact.low) < 0.1 * width and abs(approx.high - exact.high) < 0.1 * width, (approx, exact)
    assert approx.low < gap.score(records) < approx.high
    other = Records(labels, np.where(rng.random(n) < 0.5, labels, preds), records.confidences, np.arange(n))
    a, b = common_draws(gap, records), common_draws(gap, other)  # the same subsample and draws: paired
    assert np.array_equal(a, common_draws(gap, records)) and not np.array_equal(a, b)
    assert share_better(np.sign(a - b)) < 0.05  # the other one is clearly better


def test_subsampled_common_draws_of_f1_pair_like_exact_ones():
    from harness.scoring.resampling import common_draw_scores
    from harness.scoring.uncertainty import common_draws
    rng = np.random.default_rng(8)
    n = 10_000
    labels = rng.integers(0, 5, n)
    a, b = (Records(labels, np.where(rng.random(n) < p, labels, (labels + 1) % 5)) for p in (0.80, 0.79))
    f1 = metric("f1")
    sub = share_better(np.sign(common_draws(f1, a) - common_draws(f1, b)))
    exact = share_better(np.sign(common_draw_scores(f1.sample(a), 1000, 0) - common_draw_scores(f1.sample(b), 1000, 0)))
    assert abs(sub - exact) < 0.08, (sub, exact)
