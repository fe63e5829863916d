"""The paired bootstrap against planted effects, null cases and a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from tide.tables.stats import near_chance, paired_delta, seed_mean_std


def _bernoulli(rng, p, shape):
    return (rng.random(shape) < p).astype(float) * 100


def test_planted_effect_is_inside_the_interval_and_zero_outside():
    rng = np.random.default_rng(1)
    difficulty = rng.random(400)  # shared per item: what pairing removes
    base = (rng.random((3, 400)) < difficulty).astype(float) * 100
    # the system is right wherever the baseline is, plus on 20% of the remaining items
    lift = (rng.random((3, 400)) < 0.2) & (base == 0)
    better = np.where(lift, 100.0, base)
    true = (better - base).mean()
    delta = paired_delta([better], [base], n_boot=2000, seed=0)
    assert delta.value == pytest.approx(true)
    assert delta.ci_low < true < delta.ci_high
    assert delta.ci_low > 0 and delta.excludes_zero()


def test_null_cases_intervals_contain_zero_at_the_nominal_rate():
    """Two systems with the same per-item accuracy: ~95% of the intervals contain 0."""
    rng = np.random.default_rng(2)
    covered = 0
    for trial in range(40):
        p = rng.random(200)
        a = (rng.random((3, 200)) < p).astype(float) * 100
        b = (rng.random((3, 200)) < p).astype(float) * 100
        delta = paired_delta([a, a[:, :60]], [b, b[:, :60]], n_boot=500, seed=trial)
        covered += delta.ci_low <= 0 <= delta.ci_high
    assert covered >= 34, covered


def test_pairing_narrows_the_interval():
    """Same marginal scores, but paired by item: a 3-point lift is resolved."""
    rng = np.random.default_rng(4)
    base = _bernoulli(rng, 0.5, (1, 500))
    better = base.copy()
    flip = np.flatnonzero(base[0] == 0)[:15]  # 15 of 500 items: +3 points
    better[0, flip] = 100
    paired = paired_delta([better], [base], n_boot=2000, seed=0)
    shuffled = paired_delta([better], [rng.permutation(base[0])[None]], n_boot=2000, seed=0)
    assert paired.value == pytest.approx(3.0) and paired.ci_low > 0
    assert (paired.ci_high - paired.ci_low) < (shuffled.ci_high - shuffled.ci_low) / 3


def test_baseline_without_seeds_is_broadcast_and_average_is_mean_of_benchmarks():
    a1 = np.array([[100, 0, 100, 0], [100, 100, 0, 0]], float)  # seed means 50, 50
    a2 = np.array([[100, 100], [0, 100]], float)  # 100, 50
    b1 = np.array([[0, 0, 100, 0]], float)  # 25
    b2 = np.array([[100, 0]], float)  # 50
    delta = paired_delta([a1, a2], [b1, b2], n_boot=200, seed=0)
    assert delta.value == pytest.approx(((50 - 25) + (75 - 50)) / 2)
    with pytest.raises(ValueError, match="same items"):
        paired_delta([a1], [b2])
    with pytest.raises(ValueError, match="seeds"):
        paired_delta([a1], [np.zeros((3, 4))])


def test_interval_is_deterministic_given_the_seed():
    rng = np.random.default_rng(5)
    a, b = _bernoulli(rng, 0.4, (2, 80)), _bernoulli(rng, 0.3, (2, 80))
    assert paired_delta([a], [b], seed=7) == paired_delta([a], [b], seed=7)
    assert paired_delta([a], [b], seed=7) != paired_delta([a], [b], seed=8)


def test_seed_mean_std_and_chance():
    scores = [np.array([[100, 0], [100, 100]], float), np.array([[0, 0], [100, 0]], float)]
    mean, std = seed_mean_std(scores)  # per-seed averages: (50+0)/2=25, (100+50)/2=75
    assert mean == pytest.approx(50) and std == pytest.approx(np.std([25, 75], ddof=1))
    assert np.isnan(seed_mean_std([np.array([[100, 0]], float)])[1])
    assert near_chance(0.26, 0.25, 100) and not near_chance(0.60, 0.25, 100)
    assert near_chance(0.16, 0.25, 100)  # below chance: no knowledge either
    assert near_chance(0.0, 0.0, 100) and near_chance(0.01, 0.0, 100)
    assert not near_chance(0.20, 0.0, 100)
