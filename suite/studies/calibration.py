"""``evoboard bench verdict-calibration``: the decision rule's error rates and power, measured by simulation.

Each simulated study is one claim (so Holm's correction changes nothing) on one task whose compared
variants both beat their floor: X's n runs are drawn from N(effect, 1) and Y's n runs from N(0, 1), so
``effect`` is the difference of the means in standard deviations (Cohen's d; P(X > Y) = Phi(d / sqrt 2):
0.64 at 0.5, 0.76 at 1, 0.92 at 2). Every study goes through the same code as a real claim
(``decide.rank_sum_test`` then ``decide.ruling``). At effect 0 the rates of "reproduced" and of
"not reproduced" are the false-verdict rates (each at most ``decide.ALPHA``, 0.025, by construction
of an exact test, and lower at small n, where the test's p-values are coarse); at effect > 0, "reproduced" is the
power. ``verdict_calibration.csv`` is the unpaired design most claims use;
``verdict_calibration_paired.csv`` the same studies analysed as pairs (the signed-rank test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evoboard.suite.board import decide
from evoboard.suite.publish import publish

SIZES = (5, 10, 20)
EFFECTS = (0.0, 0.5, 1.0, 2.0)
STUDIES = 2000
COLUMNS = ["n", "effect", "reproduced_rate", "not_reproduced_rate", "undecided_rate"]


def rates(n: int, effect: float, studies: int = STUDIES, paired: bool = False, seed: int = 0) -> dict[str, float]:
    """The share of ``studies`` simulated claims ruled each way at ``n`` runs a side and ``effect``."""
    rng = np.random.default_rng([seed, n, int(round(effect * 1000)), int(paired)])
    x = rng.normal(effect, 1.0, size=(studies, n))  # (S, n)
    y = rng.normal(0.0, 1.0, size=(studies, n))  # (S, n)
    test = decide.signed_rank_test if paired else decide.rank_sum_test
    verdicts = [
        decide.ruling(r.p_greater, r.p_less)[0] for r in (test([xs], [ys]) for xs, ys in zip(x, y, strict=True))
    ]
    counts = pd.Series(verdicts).value_counts()
    share = {v: float(counts.get(v, 0)) / studies for v in (decide.REPRODUCED, decide.NOT_REPRODUCED, decide.UNDECIDED)}
    return {"n": n, "effect": effect, "reproduced_rate": share[decide.REPRODUCED],
            "not_reproduced_rate": share[decide.NOT_REPRODUCED], "undecided_rate": share[decide.UNDECIDED]}  # fmt: skip


def calibration(studies: int = STUDIES, paired: bool = False) -> pd.DataFrame:
    """One row per (n, effect) in ``SIZES`` x ``EFFECTS``."""
    return pd.DataFrame([rates(n, e, studies, paired) for n in SIZES for e in EFFECTS], columns=COLUMNS)


def run_calibration(out: str | Path, seeds: int = 1, device: str = "cpu") -> pd.DataFrame:
    """Write ``verdict_calibration.csv`` (unpaired) and ``verdict_calibration_paired.csv`` into ``out``."""
    table = calibration()
    publish(out, "verdict_calibration", table, echo=False)
    publish(out, "verdict_calibration_paired", calibration(paired=True), echo=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return table
