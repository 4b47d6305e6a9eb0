"""Aggregate statistics over seeds, on ``scipy.stats``: IQM, stratified bootstrap CIs, probability of improvement.

Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice", the ``rliable`` library)
recommend the interquartile mean (IQM: the mean of the middle 50% of runs) over the mean
(outlier-prone) and the median (high variance with few seeds), with percentile intervals from a
*stratified* bootstrap: runs are resampled with replacement within each task, never across, so every
resample keeps the task mix. For a pair of variants they report the probability of improvement
P(X > Y): the chance that a run of X beats a run of Y on a task drawn at random (the Mann-Whitney U
statistic over n*m, ties counting a half), averaged over tasks, with its stratified bootstrap CI
(X's runs and Y's runs resampled independently within each task). The performance profile is the
fraction of runs whose score beats each threshold tau.

For pairs (a child and its parent, two variants run at one seed) the paired probability of
improvement is the fraction of pairs X wins, with its interval from resampling pairs within each task.

The resampling is ``scipy.stats.bootstrap`` (percentile method, one data sample per stratum) with a
seeded generator, so the same leaderboard always prints the same interval, and ``RESAMPLES``
(50,000, as ``rliable``; at 2,000 an interval's ends move with the seed) by default. These intervals
describe; the verdicts come from exact tests (``evoboard.suite.board.decide``). ``rliable`` itself
imports only with pandas < 3 and pulls in ``arch``, ``statsmodels`` and ``seaborn``; the tests check
these functions against hand-computed values instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

Samples = Sequence[np.ndarray]
"""One 1-D array of per-run scores per stratum (task)."""
RESAMPLES = 50_000
"""Bootstrap resamples per interval (rliable's default)."""


def iqm(values: np.ndarray) -> float:
    """Mean of the middle 50%: drop floor(n/4) runs from each end (all of them kept for n < 4)."""
    return float(sps.trim_mean(np.asarray(values, dtype=np.float64), 0.25))


def _pooled_iqm(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """IQM of every stratum's runs pooled (rliable's ``aggregate_iqm``); vectorized over resamples.

    Strata may hold different numbers of runs (Frostbite's 5 seeds beside HalfCheetah's 10): only the
    leading (resample) dimensions are broadcast, each stratum keeps its own length along ``axis``."""
    arrays = [np.moveaxis(np.asarray(s, dtype=np.float64), axis, -1) for s in samples]
    lead = np.broadcast_shapes(*(a.shape[:-1] for a in arrays))
    pooled = np.concatenate([np.broadcast_to(a, (*lead, a.shape[-1])) for a in arrays], axis=-1)
    return sps.trim_mean(pooled, 0.25, axis=-1)


def _interval(
    samples: Samples, statistic: Callable[..., np.ndarray], confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile interval of ``statistic(*samples)`` under a stratified bootstrap.

    A stratum of one run resamples to itself, so it is held fixed (scipy wants two or more)."""
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(len(s) == 0 for s in samples):
        raise ValueError("every stratum needs at least one run")
    varying = [i for i, s in enumerate(samples) if len(s) > 1]
    if not varying:
        value = float(statistic(*samples, axis=-1))
        return value, value

    def resampled(*drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        full = list(samples)
        for i, d in zip(varying, drawn, strict=True):
            full[i] = d
        return statistic(*full, axis=axis)

    result = sps.bootstrap(
        tuple(samples[i] for i in varying), resampled, n_resamples=resamples, vectorized=True, paired=False,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    low, high = result.confidence_interval
    return float(low), float(high)


def stratified_iqm_ci(
    samples: Samples, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(IQM, low, high) of the runs of every stratum pooled, with a stratified bootstrap interval."""
    point = float(_pooled_iqm(*[np.asarray(s, dtype=np.float64) for s in samples]))
    return (point, *_interval(samples, _pooled_iqm, confidence, resamples, seed))


def bootstrap_ci(
    values: np.ndarray, statistic=iqm, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (default the IQM) over one task's runs."""
    if statistic is iqm:
        return _interval([values], _pooled_iqm, confidence, resamples, seed)
    return _interval([values], lambda x, axis=-1: np.apply_along_axis(statistic, axis, x), confidence, resamples, seed)


def _improvement(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over strata of P(x > y): the first half of ``samples`` are X's strata, the second Y's."""
    half = len(samples) // 2
    per_task = []
    for x, y in zip(samples[:half], samples[half:], strict=True):
        x, y = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]  # (.., n, 1), (.., 1, m)
        per_task.append(((x > y) + 0.5 * (x == y)).mean(axis=(-2, -1)))
    return np.mean(per_task, axis=0)


def probability_of_improvement(x: Samples, y: Samples) -> float:
    """P(X > Y) averaged over strata (ties count a half); ``x[i]`` and ``y[i]`` are the runs on task i."""
    if len(x) != len(y) or not x:
        raise ValueError(f"X and Y need the same strata, got {len(x)} and {len(y)}")
    return float(_improvement(*[np.asarray(s, dtype=np.float64) for s in (*x, *y)]))


def improvement_ci(
    x: Samples, y: Samples, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(P(X > Y), low, high): X's and Y's runs resampled independently within each task."""
    point = probability_of_improvement(x, y)
    return (point, *_interval([*x, *y], _improvement, confidence, resamples, seed))


def performance_profile(samples: Samples, taus: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Fraction of runs scoring better than each tau, averaged over strata: (len(taus),)."""
    taus = np.asarray(taus, dtype=np.float64)
    fractions = []
    for s in samples:
        s = np.asarray(s, dtype=np.float64)[:, None]  # (n, 1) against (1, T)
        fractions.append((s > taus if higher_is_better else s < taus).mean(axis=0))
    return np.mean(fractions, axis=0)


def _pair_wins(*differences: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over strata of the fraction of pairs X wins (a tie counts a half); vectorized over resamples."""
    return np.mean([((d > 0) + 0.5 * (d == 0)).mean(axis=axis) for d in differences], axis=0)


def paired_improvement_ci(
    x: Samples, y: Samples, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(P(X > Y) over pairs, low, high): ``x[i][j]`` is paired with ``y[i][j]``; pairs resampled within each task."""
    if len(x) != len(y) or not x:
        raise ValueError(f"X and Y need the same strata, got {len(x)} and {len(y)}")
    differences = [np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) for a, b in zip(x, y, strict=True)]
    point = float(_pair_wins(*differences))
    return (point, *_interval(differences, _pair_wins, confidence, resamples, seed))


def normalized(values: np.ndarray, floor: float, reference: float) -> np.ndarray:
    """(values - floor) / (reference - floor): 0 at the floor, 1 at the reference (Agarwal et al. 2021's
    normalization before pooling tasks); NaN when the two coincide."""
    span = reference - floor
    return (np.asarray(values, dtype=np.float64) - floor) / span if span else np.full(len(values), np.nan)
