"""Paired bootstrap of score differences over held-out items and seeds.

Two systems evaluated on the same items differ far less from item to item than their scores do:
pairing by item (and by seed, where both have seeds) removes the items' shared difficulty from
the comparison, which is what makes a difference of a point or two resolvable on a few hundred
items. Scores arrive as one matrix per benchmark, ``(n_seeds, n_items)``, the columns of the two
systems being the same items in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# the verdicts of a claim, read off an interval (tide.tables.build) or a ratio (tide.tables.efficiency)
HOLDS, FAILS, UNRESOLVED = "holds", "does not hold", "not resolvable here"


@dataclass(frozen=True)
class Delta:
    """A difference of means (a - b) and its percentile bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float

    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def _pair_seeds(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` per (seed, item): seeds paired when both have the same count, ``b`` broadcast
    when it has one (a baseline without seeds)."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired scores need the same items: {a.shape[1]} vs {b.shape[1]}")
    if b.shape[0] not in (1, a.shape[0]):
        raise ValueError(f"cannot pair {a.shape[0]} seeds with {b.shape[0]}")
    return a - b


def paired_delta(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Delta:
    """Mean over benchmarks of ``mean(a_k) - mean(b_k)`` with a paired bootstrap interval.

    a, b: one ``(n_seeds, n_items_k)`` score matrix per benchmark k; ``b`` may have one seed row
    (it is then compared with every seed of ``a``). Each bootstrap replicate draws the seeds with
    replacement (the same draw for every benchmark: a seed is one training run) and, per
    benchmark, the items with replacement (the same items for ``a`` and ``b``: the pairing).
    A single benchmark gives that benchmark's delta; several give the delta of their average.
    """
    if not a or len(a) != len(b):
        raise ValueError("paired_delta needs one score matrix per benchmark on both sides")
    diffs = [_pair_seeds(np.asarray(x, float), np.asarray(y, float)) for x, y in zip(a, b)]
    n_seeds = diffs[0].shape[0]
    if any(d.shape[0] != n_seeds for d in diffs):
        raise ValueError("every benchmark needs the same seeds")
    value = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    seed_draw = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    replicates = np.zeros(n_boot)
    for d in diffs:
        item_draw = rng.integers(0, d.shape[1], size=(n_boot, d.shape[1]))
        per_seed = d[:, item_draw].mean(axis=2)  # (n_seeds, n_boot): item-resampled seed means
        replicates += np.take_along_axis(per_seed, seed_draw.T, axis=0).mean(axis=0)
    replicates /= len(diffs)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return Delta(value, float(low), float(high))


def seed_mean_std(scores: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and across-seed standard deviation (ddof 1; NaN with one seed) of the average over
    benchmarks of per-seed means. ``scores``: one ``(n_seeds, n_items_k)`` matrix per benchmark."""
    per_seed = np.mean([np.asarray(s, float).mean(axis=1) for s in scores], axis=0)
    std = float(per_seed.std(ddof=1)) if per_seed.size > 1 else float("nan")
    return float(per_seed.mean()), std


def near_chance(mean: float, chance: float, n_items: int, z: float = 2.0) -> bool:
    """Whether ``mean`` (a proportion) is not above ``chance`` by more than ``z`` binomial standard
    errors on ``n_items`` items (within noise of chance, or below it): the larger of the guesser's
    and the observed spread, so that a floor task (chance 0) with a few lucky items counts too."""
    spread = max(chance * (1 - chance), mean * (1 - mean))
    return mean - chance <= z * np.sqrt(spread / max(n_items, 1))
