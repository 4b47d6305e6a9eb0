"""The board's statistics (scipy-backed) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from evoboard.suite.board.stats import (
    bootstrap_ci,
    improvement_ci,
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_iqm_ci,
)


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.random.default_rng(3).normal(size=12)
    assert iqm(x) == pytest.approx(np.sort(x)[3:9].mean())


def test_probability_of_improvement_against_mann_whitney():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.3, 1, 7), np.round(rng.normal(0, 1, 5), 1)
    u = mannwhitneyu(x, y).statistic  # counts x > y, ties a half
    assert probability_of_improvement([x], [y]) == pytest.approx(u / (7 * 5))
    assert probability_of_improvement([np.array([5.0, 6.0])], [np.array([1.0, 2.0])]) == 1.0
    assert probability_of_improvement([np.array([1.0, 2.0])], [np.array([1.0, 2.0])]) == 0.5
    # Averaged over tasks: X wins task 0 outright, loses task 1 outright.
    assert probability_of_improvement([np.ones(3), np.zeros(3)], [np.zeros(3), np.ones(3)]) == 0.5


def test_improvement_ci_disjoint_identical_and_seeded():
    assert improvement_ci([np.arange(5.0) + 10], [np.arange(5.0)]) == (1.0, 1.0, 1.0)
    same = np.arange(5.0)
    point, low, high = improvement_ci([same], [same])
    assert point == 0.5 and low < 0.5 < high
    assert improvement_ci([same], [same + 0.5], seed=4) == improvement_ci([same], [same + 0.5], seed=4)


def test_bootstrap_is_stratified_by_task():
    # Each task's runs are identical, so a resample within tasks never changes the pooled IQM;
    # a bootstrap across tasks would mix them and give a wide interval.
    tasks = [np.full(4, 0.0), np.full(4, 10.0)]
    assert stratified_iqm_ci(tasks) == (5.0, 5.0, 5.0)
    assert bootstrap_ci(np.concatenate(tasks)) != (5.0, 5.0)


def test_single_run_strata_are_held_fixed():
    assert bootstrap_ci(np.array([7.0])) == (7.0, 7.0)
    point, low, high = stratified_iqm_ci([np.array([1.0]), np.array([0.0, 4.0])])
    assert low <= point <= high and low >= 0.0


def test_performance_profile_counts_runs_above_tau():
    runs = [np.array([1.0, 2.0, 3.0, 4.0])]
    assert performance_profile(runs, [0.0, 2.5, 4.0]).tolist() == [1.0, 0.5, 0.0]
    assert performance_profile(runs, [2.5], higher_is_better=False).tolist() == [0.5]


def test_strata_of_different_sizes_pool_every_run_once():
    """Frostbite at 5 seeds beside HalfCheetah at 10: each run counts once (before, a broadcast raised, or
    silently repeated a one-run stratum to its neighbour's length)."""
    rng = np.random.default_rng(1)
    five, ten = rng.normal(0, 1, 5), rng.normal(3, 1, 10)
    point, low, high = stratified_iqm_ci([five, ten], resamples=2000)
    assert point == pytest.approx(iqm(np.concatenate([five, ten]))) and low <= point <= high
    assert stratified_iqm_ci([np.array([1.0]), np.array([0.0, 4.0])])[0] == pytest.approx(5 / 3)
