"""Shared fixtures: tiny real components and a way to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from evoboard.suite.board import leaderboard
from evoboard.suite.runner import TIMING_COLUMNS, run_spec
from evoboard.suite.spec import RunSpec

REPO = Path(__file__).resolve().parent.parent

SPEC = {"task": "CartPole-v1", "population": 16, "generations": 4, "seed": 3}
"""A tiny run that every backend must finish with the local backend's row and history."""
NON_REPEATABLE = ["run_id", "created_at", "wall_s", "frames_per_s"]
"""Leaderboard columns that differ between two runs of the same spec (ids and timings)."""


def rows(out_dir: Path) -> pd.DataFrame:
    """The leaderboard under ``out_dir`` without the columns that never repeat."""
    return leaderboard.read(out_dir).drop(columns=NON_REPEATABLE)


def history(out_dir: Path, run_id: str) -> pd.DataFrame:
    """A run's per-generation history without its timing columns."""
    return pd.read_csv(out_dir / "runs" / run_id / "history.csv").drop(columns=TIMING_COLUMNS)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The local backend's leaderboard row and history for SPEC."""
    out = tmp_path_factory.mktemp("local") / "results"
    row = run_spec(RunSpec(**SPEC), out)
    return rows(out).iloc[0], history(out, row["run_id"])


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    """Run ``python -m evoboard`` in a subprocess, as a user runs ``evoboard``."""
    return subprocess.run(
        [sys.executable, "-m", "evoboard", *args],
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def torch_threads(request):
    """Run the test at this many torch threads (runs default to 1), then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)
