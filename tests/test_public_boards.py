"""Plain and Ladder public boards on the same submissions (harness.scoring.public_boards): the paper's boosting
attack climbs a plain board and not the Ladder, honest teams still move up, an adaptive overfitter gains less on the Ladder, and the recommended public fraction and quota follow the measured noise."""
import math

import numpy as np
import pytest

from harness.core.enums import Direction, PublicBoard
from harness.scoring.public_boards import boosting_attack, hill_climb, recommend, replay_board, shown_index

PLAIN, LADDER = PublicBoard.PLAIN, PublicBoard.LADDER


def _identity(x):
    return x


def _attack(seed, board, n_public=2000, k=600):
    """The paper's setting: binary labels, random labelings. A = all zeros, B = all ones, so a random mix of the
    two is a random labeling; per-example values are 1 where right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 2 * n_public)
    a, b = (y == 0).astype(float), (y == 1).astype(float)
    public, private = np.arange(n_public), np.arange(n_public, 2 * n_public)
    return boosting_attack(a, b, public, private, k, Direction.HIGHER, _identity, board, seed + 1000)


def test_the_boosting_attack_climbs_a_plain_board_and_not_the_ladder():
    """Noise level: one public accuracy's standard error, sqrt(0.25 / 2000) = 0.011. Measured over 4 seeds: the
    plain board shows 0.616-0.632 (over 10 standard errors above chance; 280-300 of 600 submits kept) for a
    submission whose private accuracy stays 0.492-0.512; the Ladder accepts 1-2 of them and shows 0.517-0.531
    (under 3 standard errors), and the attack's vote is no better privately."""
    noise = math.sqrt(0.25 / 2000)
    for seed in range(4):
        plain, ladder = _attack(seed, PLAIN), _attack(seed, LADDER)
        base = plain.public_before
        assert plain.public_after - 0.5 > 9 * noise and plain.public_gain > 7 * noise, plain
        assert abs(plain.private_after - 0.5) < 3 * noise, plain  # ...by a submission no better than chance
        assert plain.kept > 200 and ladder.kept <= 6, (plain, ladder)
        assert ladder.public_after - max(base, 0.5) < 4 * noise, ladder
        assert abs(ladder.private_after - 0.5) < 3 * noise, ladder


def test_a_ladder_shows_the_last_accepted_and_a_plain_board_the_best():
    v = [np.array([1.0, 0, 0, 0] * 50), np.array([1.0, 1, 0, 0] * 50), np.array([1.0, 1, 0, 1] * 50)]
    lucky = np.array([1.0, 1, 0, 0] * 49 + [1.0, 1, 1, 0])  # one example better than v[1]: within noise
    assert shown_index(v, Direction.HIGHER, PLAIN) == 2 and shown_index(v, Direction.HIGHER, LADDER) == 2
    assert shown_index([*v[:2], lucky], Direction.HIGHER, PLAIN) == 2
    assert shown_index([*v[:2], lucky], Direction.HIGHER, LADDER) == 1
    assert shown_index([v[2], v[0]], Direction.LOWER, LADDER) == 1  # lower is better: the zeros win
    assert shown_index([], Direction.HIGHER, LADDER) is None


def test_an_adaptive_overfitter_gains_less_on_the_ladder():
    """A hill-climber switches 5% of its examples between two 70% models and builds on what the board shows.
    Measured over 8 seeds (600 public examples, 60 submits): the plain board flatters it by 0.064 on average
    (public gain minus private gain), the Ladder by 0.040; the Ladder lets it build on 2-8 moves, not 10-17."""
    flattery = {PLAIN: [], LADDER: []}
    for seed in range(8):
        rng = np.random.default_rng(seed)
        a, b = ((rng.random(2000) < 0.7).astype(float) for _ in range(2))
        public, private = np.arange(600), np.arange(600, 2000)
        for board in (PLAIN, LADDER):
            got = hill_climb(a, b, public, private, 60, Direction.HIGHER, _identity, board, 0.05, seed + 99)
            flattery[board].append(got.public_gain - got.private_gain)
            assert abs(got.private_gain) < 0.03, got  # what it learns is the public half's noise
    assert np.mean(flattery[PLAIN]) > 1.3 * np.mean(flattery[LADDER]) > 0, flattery


def test_a_board_replay_shows_what_each_rule_would_and_honest_teams_move_up():
    rng = np.random.default_rng(4)
    n = 1000
    public, private = np.arange(300), np.arange(300, n)
    teams = {f"honest{i}": [(rng.random(n) < s - d).astype(float) for d in (0.08, 0.04, 0.0)]
             for i, s in enumerate((0.6, 0.7, 0.8))}
    teams["noisy"] = [(rng.random(n) < 0.68).astype(float) for _ in range(30)]
    plain = replay_board(teams, public, private, Direction.HIGHER, _identity, PLAIN)
    ladder = replay_board(teams, public, private, Direction.HIGHER, _identity, LADDER)
    for team, subs in teams.items():
        assert plain.public[team] == max(float(np.mean(v[public])) for v in subs)
        assert ladder.public[team] <= plain.public[team]
    assert ladder.public["honest2"] > ladder.public["honest1"] > ladder.public["honest0"]
    assert ladder.public["honest2"] == pytest.approx(float(np.mean(teams["honest2"][2][public])))  # its newest
    assert plain.optimism == pytest.approx(np.mean([plain.public[t] - plain.private[t] for t in teams]))
    assert -1 <= plain.correlation <= 1 and -1 <= ladder.correlation <= 1


def test_the_recommendation_follows_the_measured_noise():
    """Paired per-example differences of two ~72% models spread by about sqrt(2 * 0.2) = 0.63; the private half
    needs about (1.96 * 0.63 / gap)^2 examples: 15,000 for 0.01 steps (measured: over 0.9 of the 4,000, as the
    gap itself is measured with noise of its size), 960 for 0.04 steps (measured within 2x)."""
    rng = np.random.default_rng(3)
    n = 4000
    close = recommend([(rng.random(n) < p).astype(float) for p in (0.70, 0.71, 0.72, 0.73)], Direction.HIGHER, 10)
    assert close.needed_private > 0.9 * n and close.public_fraction == 0.1 and "too small" in close.why
    wide = recommend([(rng.random(n) < p).astype(float) for p in (0.70, 0.74, 0.78)], Direction.HIGHER, 10)
    assert 480 < wide.needed_private < 1_920 and wide.public_fraction == 0.5 and "too small" not in wide.why
    assert wide.total_submits > close.total_submits >= 1 and wide.per_period >= 1
    assert recommend([np.ones(n)], Direction.HIGHER, 10) is None
    same = recommend([np.ones(n), np.ones(n)], Direction.HIGHER, 10)
    assert same.public_fraction == 0.1 and same.total_submits == 1


@pytest.mark.parametrize("direction", [Direction.HIGHER, Direction.LOWER])
def test_the_attack_respects_the_metrics_direction(direction):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 4000)
    a, b = (y == 0).astype(float), (y == 1).astype(float)
    if direction is Direction.LOWER:  # per-example losses: 1 where wrong
        a, b = 1 - a, 1 - b
    public, private = np.arange(2000), np.arange(2000, 4000)
    got = boosting_attack(a, b, public, private, 400, direction, _identity, PLAIN, 1)
    assert (got.public_after < got.public_before) if direction is Direction.LOWER else \
        (got.public_after > got.public_before)
