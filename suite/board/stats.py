"""Aggregate statistics over seeds: interquartile mean and a seeded bootstrap confidence interval.

Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice") recommend the IQM,
the mean of the middle 50% of runs, over the mean (outlier-prone) and the median (high
variance with few seeds), with a bootstrap interval: the resampling is seeded, so the same
leaderboard always prints the same interval.
"""

from __future__ import annotations

import numpy as np


def iqm(values: np.ndarray) -> float:
    """Mean of the middle 50%: drop floor(n/4) runs from each end (all of them kept for n < 4)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    cut = len(x) // 4
    return float(x[cut : len(x) - cut].mean())


def bootstrap_ci(
    values: np.ndarray, statistic=iqm, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over runs resampled with replacement."""
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), size=(resamples, len(x)))  # (B, n) run indices
    stats = np.array([statistic(x[row]) for row in draws])
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)
