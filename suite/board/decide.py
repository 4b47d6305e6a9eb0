"""The decision rule for a claim: exact permutation tests, Holm's correction, and the verdict with its reason.

At 5 runs a side the percentile bootstrap is anti-conservative (Agarwal et al. 2021 use it for
intervals, not decisions), so a claim is decided by an exact permutation test instead:

- **unpaired** (two variants' runs): the stratified Mann-Whitney test. Its statistic is the
  probability of improvement P(X > Y) averaged over tasks (ties count a half); its null
  distribution is that of every relabelling of X's and Y's runs within each task, computed
  exactly (with ties) by counting subsets of midranks, not sampled;
- **paired** (a child against its own parent, two masks of one init, ...): the Wilcoxon
  signed-rank test on the differences within each pair (zeros dropped, midranks for ties),
  stratified by task the same way: every assignment of signs, exactly.

Both give two one-sided p-values, one per direction of the claim, each compared with ``ALPHA``
(0.025: a two-sided 5% test). Holm's step-down correction (Holm 1979) is applied to each direction
separately over the claims of one study, so the chance of any false "reproduced" in a study is at
most 0.025, and so is that of any false "not reproduced". ``evoboard bench verdict-calibration``
measures both by simulation. A test is
invariant to any increasing per-task transform, so normalizing scores before pooling tasks
changes the reported IQMs but never a p-value.

Limit worth knowing: with n pairs the smallest one-sided p-value is 1/2^n (1/32 at n=5), so a
paired claim at 5 seeds can never be decided; 6 pairs (1/64) decide one claim alone, 10 (1/1024) a
study of several.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps

ALPHA = 0.025
"""Each direction's family-wise error rate per study: 0.05 two-sided, so that a simulated false-verdict rate
at no true difference stays below 5% each way with room for the simulation's own noise."""
FLOOR_ALPHA = 0.05
"""One-sided level at which a variant beats its floor (a gate withholds a verdict; it never makes one)."""
REPRODUCED, NOT_REPRODUCED, UNDECIDED = "reproduced", "not reproduced", "undecided"
WAITING = "waiting for the re-run"

Samples = Sequence[np.ndarray]
"""One 1-D array of per-run scores per stratum (task)."""


@dataclass(frozen=True)
class TestResult:
    """One exact test of "X beats Y": the effect, both one-sided p-values, and what was tested."""

    effect: float
    """P(X > Y): over runs (unpaired) or over pairs (paired), averaged over tasks; ties count a half."""
    p_greater: float
    """P-value of "X beats Y" (small: X is better)."""
    p_less: float
    """P-value of "Y beats X" (small: X is worse)."""
    test: str


def _midranks(values: np.ndarray) -> np.ndarray:
    """Twice the midranks (integers, so that ties stay exact)."""
    return np.round(2 * sps.rankdata(values)).astype(np.int64)


@lru_cache(maxsize=4096)
def _subset_sums(ranks: tuple[int, ...], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact distribution of the sum of ``size`` of ``ranks`` drawn without replacement: (sums, probabilities)."""
    total = sum(sorted(ranks)[-size:]) if size else 0
    counts = np.zeros((size + 1, total + 1))  # counts[k, s]: subsets of k ranks summing to s
    counts[0, 0] = 1.0
    for r in ranks:
        counts[1:, r:] = counts[1:, r:] + counts[:-1, : total + 1 - r]
    sums = np.nonzero(counts[size])[0]
    return sums, counts[size, sums] / counts[size].sum()


@lru_cache(maxsize=4096)
def _sign_sums(ranks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Exact distribution of the sum of the ranks given a + sign, every sign assignment equally likely."""
    total = sum(ranks)
    counts = np.zeros(total + 1)
    counts[0] = 1.0
    for r in ranks:
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[: total + 1 - r]
        counts = counts + shifted
    sums = np.nonzero(counts)[0]
    return sums, counts[sums] / counts.sum()


def _combine(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Distribution of the mean of independent per-task statistics (values, probabilities)."""
    values, probs = np.zeros(1), np.ones(1)
    for v, p in parts:
        values = (values[:, None] + v[None, :]).ravel()
        probs = (probs[:, None] * p[None, :]).ravel()
        values, inverse = np.unique(np.round(values, 12), return_inverse=True)
        probs = np.bincount(inverse, weights=probs)
    return values / len(parts), probs


def _tails(observed: float, values: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(P(T >= observed), P(T <= observed)) under the null distribution."""
    eps = 1e-9
    above, below = probs[values >= observed - eps].sum(), probs[values <= observed + eps].sum()
    return float(min(1.0, above)), float(min(1.0, below))


def rank_sum_test(x: Samples, y: Samples) -> TestResult:
    """Exact stratified Mann-Whitney test of "X beats Y" on unpaired runs (``x[i]``, ``y[i]``: task i)."""
    if len(x) != len(y) or not x:
        raise ValueError(f"X and Y need the same strata, got {len(x)} and {len(y)}")
    parts, observed = [], []
    for xs, ys in zip(x, y, strict=True):
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        n, m = len(xs), len(ys)
        if not n or not m:
            raise ValueError("every stratum needs runs on both sides")
        ranks = _midranks(np.concatenate([xs, ys]))
        sums, probs = _subset_sums(tuple(int(r) for r in ranks), n)
        offset, pairs = n * (n + 1), 2.0 * n * m  # twice the smallest rank sum; U / (n m) = (2W - offset) / pairs
        parts.append(((sums - offset) / pairs, probs))
        observed.append((ranks[:n].sum() - offset) / pairs)
    values, probs = _combine(parts)
    effect = float(np.mean(observed))
    return TestResult(effect, *_tails(effect, values, probs), "exact stratified Mann-Whitney")


def signed_rank_test(x: Samples, y: Samples) -> TestResult:
    """Exact stratified Wilcoxon signed-rank test of "X beats Y" on pairs (``x[i][j]`` with ``y[i][j]``)."""
    if len(x) != len(y) or not x:
        raise ValueError(f"X and Y need the same strata, got {len(x)} and {len(y)}")
    parts, observed, wins = [], [], []
    for xs, ys in zip(x, y, strict=True):
        d = np.asarray(xs, dtype=np.float64) - np.asarray(ys, dtype=np.float64)
        if len(d) == 0:
            raise ValueError("every stratum needs pairs")
        wins.append(float(((d > 0) + 0.5 * (d == 0)).mean()))
        d = d[d != 0]
        if len(d) == 0:  # every pair tied: the statistic is 1/2 whatever the signs
            parts.append((np.array([0.5]), np.ones(1)))
            observed.append(0.5)
            continue
        ranks = _midranks(np.abs(d))
        sums, probs = _sign_sums(tuple(int(r) for r in ranks))
        parts.append((sums / ranks.sum(), probs))
        observed.append(ranks[d > 0].sum() / ranks.sum())
    values, probs = _combine(parts)
    return TestResult(float(np.mean(wins)), *_tails(float(np.mean(observed)), values, probs),
                      "exact stratified Wilcoxon signed-rank")  # fmt: skip


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[k]))
        out[k] = running
    return out


POWER = 0.8
"""The chance of a decision that ``seeds_to_decide`` plans for."""
MAX_PLANNED = 1000
"""Above this many seeds a task, an effect is reported as beyond any budget (no number)."""


def seeds_to_decide(effect: float, tasks: int, paired: bool, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Seeds per task (per side) at which an effect the size of ``effect`` (P(X > Y), as measured) is decided,
    in its own direction, with probability ``power`` by a one-sided test at ``alpha``; None when
    ``effect`` is 1/2 or the number exceeds ``MAX_PLANNED``.

    A planning figure, not a verdict (it takes the observed effect as the truth), from Noether's (1987)
    normal approximations, each divided by the number of tasks pooled: n = (z_alpha + z_power)^2 /
    (6 (P - 1/2)^2) runs a side for the rank-sum test at equal sides; n = (z_alpha + z_power)^2 /
    (3 (P' - 1/2)^2) pairs for the signed-rank test, whose P' = P(d_i + d_j > 0) is read from P = P(d > 0)
    as for normal differences, P' = Phi(sqrt(2) Phi^-1(P)). ``tests/test_verdicts.py`` checks both
    against the exact tests by simulation.
    """
    if np.isnan(effect) or abs(effect - 0.5) < 1e-9:
        return None
    if paired:
        effect = float(sps.norm.cdf(np.sqrt(2.0) * sps.norm.ppf(min(max(effect, 1e-9), 1 - 1e-9))))
    z = sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)
    n = z**2 / ((3.0 if paired else 6.0) * (effect - 0.5) ** 2 * max(tasks, 1))
    planned = int(np.ceil(n))
    return planned if planned <= MAX_PLANNED else None


def ruling(p_greater: float, p_less: float, alpha: float = ALPHA) -> tuple[str, str]:
    """(verdict, reason) from a claim's Holm-adjusted one-sided p-values; the floors are checked before this."""
    if p_greater <= alpha:
        return REPRODUCED, ""
    if p_less <= alpha:
        return NOT_REPRODUCED, ""
    return UNDECIDED, f"not significant at this budget (Holm-adjusted p = {min(p_greater, p_less):.3g} > {alpha:g})"
