"""One row per run of a study folder: its leaderboard row's variant, frames saved, and its history's GA columns.

Garbus & Pollack 2025 measure how often a mutation hurts (``harmful_fraction``: children worse than
their parent) and by how much (``median_delta``: the median child-minus-parent fitness) per encoding;
the GA logs both per generation, and a run's value here is their mean over generations (NaN where
the history has no such column). ``saved_fraction`` is frames_saved / (frames + frames_saved): the
share of a run the early-termination rules cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from suite.publish import publish
from suite.studies.claims import read_table

HISTORY_COLUMNS = ("harmful_fraction", "median_delta")
KEPT = ("run_id", "task", "encoding", "algorithm", "seed", "elite_margin", "patience", "final_score", "score_kind",
        "frames", "frames_saved", "wall_s")  # fmt: skip


def summarize_history(folder: Path) -> pd.DataFrame:
    """Write ``runs.csv`` into ``folder`` (one row per leaderboard run) and return it."""
    board = read_table(folder, "leaderboard")
    rows = []
    for _, run in board.iterrows():
        row = {k: run.get(k) for k in KEPT}
        path = Path(folder) / "runs" / str(run["run_id"]) / "history.csv"
        history = pd.read_csv(path) if path.exists() else pd.DataFrame()
        for column in HISTORY_COLUMNS:
            row[column] = float(history[column].mean()) if column in history else np.nan
        total = float(run["frames"]) + float(run["frames_saved"])
        row["saved_fraction"] = float(run["frames_saved"]) / total if total else 0.0
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*KEPT, *HISTORY_COLUMNS, "saved_fraction"])
    publish(folder, "runs", table)
    return table
