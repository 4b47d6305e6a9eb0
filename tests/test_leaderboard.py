"""The leaderboard survives concurrent writers, refuses broken files, and ranks by score kind."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest

from evoboard.errors import LeaderboardError
from evoboard.suite.board import leaderboard
from evoboard.suite.board.leaderboard import COLUMNS
from evoboard.suite.board.stats import bootstrap_ci, iqm


def row(run_id: str, task="CartPole-v1", score=1.0, kind="return") -> dict:
    base = {c: 0 for c in COLUMNS}
    config = f'{{"seed": "{run_id}"}}'  # each row its own (config, seed): the aggregates count each once
    return {**base, "run_id": run_id, "task": task, "final_score": score, "score_kind": kind, "config": config}


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


def test_a_run_id_already_there_is_appended_once(tmp_path):
    leaderboard.append(tmp_path, row("a", score=1.0))
    leaderboard.append(tmp_path, row("a", score=2.0))  # the same run concluding again
    leaderboard.append(tmp_path, row("b"))
    table = leaderboard.read(tmp_path)
    assert list(table["run_id"]) == ["a", "b"] and table["final_score"].iloc[0] == 1.0


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


def test_iqm_drops_the_outer_quarters():
    assert iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == 3.0  # n=5: one dropped from each end
    assert iqm(np.array([8.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])) == 4.5  # n=8: mean of 3..6
    assert iqm(np.array([0.0, 10.0])) == 5.0  # fewer than 4 runs: the mean


def test_bootstrap_interval_against_hand_computed_values():
    # Two runs, 0 and 10: a resample's mean is 0, 5 or 10 (p = 1/4, 1/2, 1/4), so the 95% interval
    # spans the extremes; identical runs give a zero-width interval; the same seed, the same interval.
    assert bootstrap_ci(np.array([0.0, 10.0]), resamples=4000) == (0.0, 10.0)
    assert bootstrap_ci(np.array([3.0, 3.0, 3.0])) == (3.0, 3.0)
    values = np.arange(10.0)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    low, high = bootstrap_ci(values)
    assert low < iqm(values) < high


def test_aggregate_groups_seeds_and_ranks_by_iqm():
    runs = [row(f"r{i}", "CartPole-v1", s) for i, s in enumerate([100.0, 200.0, 300.0, 400.0, 500.0])]
    runs += [{**row(f"q{i}", "CartPole-v1", s), "encoding": "lowrank"} for i, s in enumerate([450.0, 460.0])]
    runs += [row(f"b{i}", "charlm/pydoc", s, "bits_per_char") for i, s in enumerate([2.0, 3.0])]
    runs += [{**row(f"c{i}", "charlm/pydoc", s, "bits_per_char"), "encoding": "lowrank"} for i, s in enumerate([1.0])]
    table = leaderboard.aggregate(pd.DataFrame(runs)).set_index(["task", "encoding"])
    assert table.loc[("CartPole-v1", 0), "n"] == 5 and table.loc[("CartPole-v1", 0), "iqm"] == 300.0
    assert table.loc[("CartPole-v1", "lowrank"), "rank"] == 1  # 455 beats 300
    assert table.loc[("charlm/pydoc", "lowrank"), "rank"] == 1  # 1.0 bits/char beats 2.5
