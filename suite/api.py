"""The Python face of the CLI: ``evoboard.run(...)`` and ``evoboard.leaderboard(...)`` for notebooks.

``run`` is ``evoboard run`` with keywords for flags: its flag keywords become the same argv the
CLI parses, through the same parser, ``--config`` file, ``resolve`` and run, so a bad value
raises the same one-line ``UsageError`` the CLI prints. Any other keyword is a ``--set`` key
given as a typed value, as in a run file (``sigma=0.05``, ``hidden=(64, 64)``), checked as
``--set`` is: a misspelt keyword is an unknown ``--set`` key, listed with the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evoboard.errors import UsageError
from evoboard.suite.board import leaderboard as board
from evoboard.suite.cli import build_parser, run_command
from evoboard.suite.config import RunFiles
from evoboard.suite.flags import flag_fields
from evoboard.suite.spec import RunSpec

FLAGS = tuple(f.name for f in flag_fields(RunSpec, RunFiles))
"""The keywords that are ``evoboard run``'s flags; every other keyword is a setting."""


@dataclass(frozen=True)
class RunResult:
    """A finished run: its leaderboard row, its history and its folder. ``result["final_score"]`` reads the row."""

    row: dict[str, Any]
    """The row appended to ``leaderboard.csv`` (the leaderboard's columns, ``config`` as JSON)."""
    history: pd.DataFrame
    """One row per generation, as ``history.csv`` holds it."""
    folder: Path
    """The run folder, ``<out>/runs/<run_id>``: spec.json, history, checkpoint, elite (``evoboard replay`` takes it)."""

    def __getitem__(self, column: str) -> Any:
        return self.row[column]


def run(task: str | None = None, **options: Any) -> RunResult:
    """Run one spec as ``evoboard run`` does and return its row, history and folder.

    ``options``: the run's flags by name (``encoding``, ``algorithm``, ``policy``, ``population``,
    ``generations``, ``seed``, ``device``, ``backend``, ``out``, ``log``, ``config``: a TOML run file),
    and any ``--set`` key with a typed value. Unset flags take the CLI's defaults (``out`` is
    ``results``). Raises ``UsageError`` with the CLI's one line on bad input, before anything is written.
    """
    if task is not None:
        options["task"] = task
    flags = {key: value for key, value in options.items() if key in FLAGS and value is not None}
    settings = {key: value for key, value in options.items() if key not in FLAGS}
    argv = ["run", *(f"--{key}={value}" for key, value in flags.items())]  # --seed=-1: a value, not a flag
    args = build_parser().parse_args(argv)  # the CLI's parser: its types, choices and one-line errors
    row, folder = run_command(args, settings)
    return RunResult(row=row, history=pd.read_csv(folder / "history.csv"), folder=folder)


def leaderboard(
    out: str | Path = "results",
    task: str | None = None,
    encoding: str | None = None,
    algorithm: str | None = None,
    aggregate: bool = False,
) -> pd.DataFrame:
    """The leaderboard under ``out`` as a DataFrame: one row per run, or with ``aggregate`` one per
    (task, encoding, algorithm, ...) over seeds (n, mean, IQM and its 95% bootstrap CI), as
    ``evoboard leaderboard`` shows them. UsageError if ``out`` holds no leaderboard."""
    if not board.path_in(out).exists():
        raise UsageError(f"no leaderboard in {out} (expected {board.path_in(out)})")
    table = board.read(out)
    for column, value in (("task", task), ("encoding", encoding), ("algorithm", algorithm)):
        if value is not None:
            table = table[table[column] == value]
    return board.aggregate(table) if aggregate else table.reset_index(drop=True)
