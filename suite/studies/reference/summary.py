"""One row per run of a study folder: its leaderboard row's variant, frames saved, and its history's GA columns.

Garbus & Pollack 2025 measure how often a mutation hurts (``harmful_fraction``: children worse than
their parent) and by how much (``median_delta``: the median child-minus-parent fitness) per encoding;
the GA logs both per generation, and a run's value here is their mean over generations (NaN where
the history has no such column). ``saved_fraction`` is frames_saved / (frames + frames_saved): the
share of a run the early-termination rules cut. ``effects.csv`` sums them up per task, variant and
rule setting: medians over seeds, and what the rules saved in frames and wall time beside the same
variant's runs without ``elite_margin``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evoboard.suite.publish import publish
from evoboard.suite.studies.claims import read_table

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
    publish(folder, "effects", effects(table))
    return table


def effects(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, encoding, algorithm, elite_margin): seeds, medians of the history columns, saved fraction,
    final score and wall time, and wall time and frames relative to the same variant without elite_margin."""
    runs = runs.assign(margin=runs["elite_margin"].fillna(0.0))
    keys = ["task", "encoding", "algorithm", "margin"]
    out = runs.groupby(keys, sort=True).agg(
        seeds=("seed", "nunique"), harmful_fraction=("harmful_fraction", "median"),
        median_delta=("median_delta", "median"), saved_fraction=("saved_fraction", "median"),
        final_score=("final_score", "median"), wall_s=("wall_s", "median"), frames=("frames", "median"),
    ).reset_index()  # fmt: skip
    plain = out[out["margin"] == 0.0][["task", "encoding", "algorithm", "wall_s", "frames"]]
    plain = plain.rename(columns={"wall_s": "plain_wall_s", "frames": "plain_frames"})
    base = out.merge(plain, on=["task", "encoding", "algorithm"], how="left")
    out["wall_vs_no_margin"] = base["wall_s"] / base["plain_wall_s"]
    out["frames_vs_no_margin"] = base["frames"] / base["plain_frames"]
    return out.rename(columns={"margin": "elite_margin"})
