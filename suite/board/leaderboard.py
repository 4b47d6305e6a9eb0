"""The leaderboard CSV: one row per finished run, schema fixed by contract.

Appends are safe when several runs finish at once: a file lock serialises writers and
each write goes to a temporary file that replaces the CSV in one rename, so readers
never see half a file. A file with the wrong columns or a broken line is reported with
its line number and never overwritten.

Each (config, seed) counts once: a second row of the same run (``run_key``) stays in the CSV,
but the aggregates (n, mean, IQM, CI) count only the newest; ``duplicates`` marks the others.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from evoboard.errors import LeaderboardError
from evoboard.suite.atomic import write_atomic
from evoboard.suite.board.baselines import LOWER_IS_BETTER, beside_baselines
from evoboard.suite.board.stats import bootstrap_ci, iqm

COLUMNS = [
    "run_id", "created_at", "evoboard_version", "git_sha", "task", "encoding", "algorithm", "policy",
    "population", "generations", "seed", "device", "search_dims", "genome_bytes", "best_fitness",
    "final_score", "score_kind", "frames", "frames_saved", "member_forwards", "wall_s", "frames_per_s", "config",
]  # fmt: skip
FILENAME = "leaderboard.csv"
RUN_LOCAL = ("device",)
"""Keys of ``config`` that say how a run was executed, not what was run: not part of its identity."""
RUN_LOCAL_SETTINGS = {"runner": ("threads",)}
"""Settings (by part) that say how a run was executed: torch threads, like the device, change speed, not the
experiment. The backend and its settings, the output folder and the run id are never in ``config`` at all."""


def path_in(out_dir: str | Path) -> Path:
    return Path(out_dir) / FILENAME


def read(out_dir: str | Path) -> pd.DataFrame:
    """All rows, schema-checked; an empty frame with the schema if there is no file yet."""
    path = path_in(out_dir)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    check_file(path)
    return pd.read_csv(path, dtype={"run_id": str, "git_sha": str, "config": str})


def check_file(path: Path) -> None:
    """Raise LeaderboardError naming the first line that breaks the schema."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            raise LeaderboardError(f"{path}: line 1 has columns {header}, expected the evoboard schema {COLUMNS}")
        for row in reader:
            if len(row) != len(COLUMNS):
                raise LeaderboardError(f"{path}: line {reader.line_num} has {len(row)} fields, expected {len(COLUMNS)}")


def append(out_dir: str | Path, row: dict[str, Any]) -> Path:
    """Add one row atomically (lock, write a temp file, rename); returns the CSV path.

    A row whose run_id is already there is skipped, inside the lock: a run appends once even if it concludes twice.
    """
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"leaderboard row lacks {missing}")
    path = path_in(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        rows = read(out_dir)
        if (rows["run_id"] == str(row["run_id"])).any():
            return path
        new = pd.DataFrame([{c: row[c] for c in COLUMNS}], columns=COLUMNS)
        table = new if rows.empty else pd.concat([rows, new], ignore_index=True)
        write_csv(path, table)
    return path


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Replace ``path`` with ``table`` as CSV in one rename."""
    write_atomic(path, lambda f: table.to_csv(f, index=False))


def run_key(config: str | dict[str, Any]) -> str:
    """A run's identity: its config (the resolved spec, seed included) without the ``RUN_LOCAL`` keys, as
    canonical JSON. Two rows with the same key are the same (config, seed) measured twice."""
    data = json.loads(config) if isinstance(config, str) else json.loads(json.dumps(config))
    for key in RUN_LOCAL:
        data.pop(key, None)
    settings = data.get("settings", {})
    for part, keys in RUN_LOCAL_SETTINGS.items():
        for key in keys:
            settings.get(part, {}).pop(key, None)
    return json.dumps(data, sort_keys=True)


def row_keys(table: pd.DataFrame) -> pd.Series:
    """``run_key`` of each row; a row whose config is missing or not JSON is its own run (keyed by run_id)."""

    def key(config: Any, run_id: Any) -> str:
        try:
            return run_key(config)
        except (TypeError, ValueError, AttributeError):
            return f"run_id:{run_id}"

    return pd.Series([key(c, r) for c, r in zip(table["config"], table["run_id"], strict=True)], index=table.index)


def duplicates(table: pd.DataFrame) -> pd.Series:
    """Per row: "" if it counts, else the run_id of the row that counts for its (config, seed) (the newest,
    i.e. the last in the file)."""
    if table.empty:
        return pd.Series([], dtype=str, index=table.index)
    keys = row_keys(table)
    newest = pd.Series(table["run_id"].astype(str).to_numpy(), index=keys.to_numpy())
    newest = newest[~newest.index.duplicated(keep="last")]
    counting = keys.map(newest)
    return counting.where(counting != table["run_id"].astype(str), "")


def counted(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that count: one per (config, seed), the newest."""
    return table[duplicates(table) == ""]


GROUP = ["task", "encoding", "algorithm", "policy", "score_kind"]


def aggregate(table: pd.DataFrame, seed: int = 0, by: list[str] = GROUP) -> pd.DataFrame:
    """One row per task x encoding x algorithm (x policy), or per ``by``: n runs (each (config, seed) once),
    mean, IQM and its 95% bootstrap interval of final_score, mean frames and wall seconds per run; ranked within
    each task.
    With ``algorithm`` in ``by``, each row also says whether it is a baseline and its IQM's gap to the task's best
    baseline (``vs_baseline``, positive = better)."""
    columns = [*by, "n", "mean", "iqm", "ci_low", "ci_high", "frames", "frames_saved", "wall_s"]
    columns += ["baseline", "vs_baseline"] if "algorithm" in by else []
    table = counted(table)  # a run measured twice is one sample, not two
    if table.empty:
        return pd.DataFrame(columns=[*columns, "rank"])
    rows = []
    for key, runs in table.groupby(by, sort=True):
        scores = runs["final_score"].to_numpy(dtype=float)
        low, high = bootstrap_ci(scores, seed=seed)
        rows.append({
            **dict(zip(by, key, strict=True)),
            "n": len(runs),
            "mean": float(scores.mean()),
            "iqm": iqm(scores),
            "ci_low": low,
            "ci_high": high,
            "frames": float(runs["frames"].mean()),
            "frames_saved": float(runs["frames_saved"].mean()),
            "wall_s": float(runs["wall_s"].mean()),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table = beside_baselines(table, "iqm") if "algorithm" in by else table
    return ranked(table[columns], score="iqm")


def ranked(table: pd.DataFrame, score: str = "final_score") -> pd.DataFrame:
    """Rows ranked within each task by ``score``, in the direction its score kind needs."""
    if table.empty:
        return table.assign(rank=pd.Series(dtype=int))
    lower = table["score_kind"].isin(LOWER_IS_BETTER)
    key = table[score].where(lower, -table[score])
    table = table.assign(_key=key).sort_values(["task", "_key"], kind="stable")
    table["rank"] = table.groupby("task").cumcount() + 1
    return table.drop(columns="_key")
