"""The leaderboard survives concurrent writers, refuses broken files, and ranks by score kind."""

from __future__ import annotations

import multiprocessing

import pandas as pd
import pytest

from suite import leaderboard
from suite.leaderboard import COLUMNS, LeaderboardError


def row(run_id: str, task="CartPole-v1", score=1.0, kind="return") -> dict:
    base = {c: 0 for c in COLUMNS}
    return {**base, "run_id": run_id, "task": task, "final_score": score, "score_kind": kind, "config": "{}"}


def _append(args):
    out, i = args
    leaderboard.append(out, row(f"run-{i}", score=float(i)))


def test_eight_runs_finishing_at_once_give_eight_intact_rows(tmp_path):
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_append, [(str(tmp_path), i) for i in range(8)])
    table = leaderboard.read(tmp_path)
    assert sorted(table["run_id"]) == [f"run-{i}" for i in range(8)]
    assert list(table.columns) == COLUMNS
    assert not list(tmp_path.glob("*.tmp"))


def test_a_broken_line_is_reported_with_its_number_and_never_overwritten(tmp_path):
    path = tmp_path / "leaderboard.csv"
    leaderboard.append(tmp_path, row("a"))
    path.write_text(path.read_text() + "truncated,line\n")
    before = path.read_text()
    with pytest.raises(LeaderboardError, match="line 3 has 2 fields"):
        leaderboard.append(tmp_path, row("b"))
    assert path.read_text() == before


def test_a_foreign_csv_is_refused(tmp_path):
    (tmp_path / "leaderboard.csv").write_text("name,score\nx,1\n")
    with pytest.raises(LeaderboardError, match="line 1"):
        leaderboard.read(tmp_path)


def test_rows_lacking_columns_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        leaderboard.append(tmp_path, {"run_id": "x"})


def test_ranking_follows_each_score_kind():
    table = pd.DataFrame(
        [
            row("r1", "CartPole-v1", 100.0),
            row("r2", "CartPole-v1", 300.0),
            row("b1", "charlm/pydoc", 2.5, "bits_per_char"),
            row("b2", "charlm/pydoc", 1.9, "bits_per_char"),
        ]
    )
    ranked = leaderboard.ranked(table).set_index("run_id")["rank"]
    assert ranked["r2"] == 1 and ranked["r1"] == 2  # higher return first
    assert ranked["b2"] == 1 and ranked["b1"] == 2  # fewer bits per char first
