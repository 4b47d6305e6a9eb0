"""Baselines beside the variants: which rows are baselines, and how far each variant is from its task's best one.

Such et al. 2017 put random search on their Atari tables, and it was competitive on some games;
a character-LM row that does not beat a bigram has learned little. So every aggregated table
marks the baseline rows (``random``, ``unigram``, ``bigram``) and gives each row its gap to the
best baseline of its task, signed so that a positive gap is better whatever the score kind
(bits per character: lower is better). The leaderboard CSV's schema is unchanged: these columns
exist only in the views built from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evoboard.agents.algorithms import BASELINES

LOWER_IS_BETTER = {"bits_per_char"}


def beside_baselines(table: pd.DataFrame, score: str) -> pd.DataFrame:
    """``table`` with ``baseline`` (yes or empty) and ``vs_baseline`` (gap to the task's best baseline ``score``,
    positive = better; NaN where the task has no baseline row) columns."""
    baseline = table["algorithm"].isin(BASELINES)
    sign = np.where(table["score_kind"].isin(LOWER_IS_BETTER), -1.0, 1.0)
    better = table[score].astype(float) * sign  # higher is better for every kind
    best = better.where(baseline).groupby(table["task"]).transform("max")
    return table.assign(baseline=np.where(baseline, "yes", ""), vs_baseline=better - best)
