"""Render leaderboard frames as a terminal table (rich), CSV or Markdown."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console
from rich.table import Table

AGGREGATE_SHOWN = [
    "rank", "task", "encoding", "algorithm", "n", "iqm", "ci_low", "ci_high", "mean", "score_kind",
    "frames", "frames_saved", "wall_s", "baseline", "vs_baseline",
]  # fmt: skip
SHOWN = [
    "rank", "task", "encoding", "algorithm", "population", "generations", "seed", "final_score",
    "score_kind", "best_fitness", "frames", "frames_saved", "wall_s", "run_id",
]  # fmt: skip


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(table: pd.DataFrame, fmt: str, columns: list[str] = SHOWN) -> str:
    """The leaderboard as text; CSV keeps every column, table and markdown the readable ones."""
    if fmt == "csv":
        return table.to_csv(index=False).rstrip("\n")
    shown = table[[c for c in columns if c in table.columns]]
    if shown.empty:
        return "(no runs yet)"
    if fmt == "markdown":
        lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
        return "\n".join(lines)
    rich_table = Table(*shown.columns)
    for row in shown.itertuples(index=False):
        rich_table.add_row(*(cell(v) for v in row))
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(rich_table)
    return buffer.getvalue().rstrip("\n")
