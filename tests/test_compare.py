"""evoboard compare and bench --add: the claims' numbers for any pair, a new encoding added to a study, [[compare]]."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import replace

import pandas as pd
import pytest

from evoboard.agents.encodings import ENCODINGS
from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main
from evoboard.suite.spec import RunSpec
from evoboard.suite.studies.claims import Claim, Comparison, Sample
from evoboard.suite.studies.extend import swap
from evoboard.suite.studies.reference import Study, run_study
from evoboard.suite.studies.reference.catalogue import STUDIES, floors
from evoboard.suite.suites import SUITES, Suite, load_suite
from tests.conftest import REPO

REFERENCE = REPO / "results" / "reference"
SAME = ["x", "y", "tasks", "normalization", "n_x", "n_y", "missing_x", "missing_y", "design", "test", "effect", "p_low",
        "p_high", "p_greater", "p_less", "x_iqm", "x_low", "x_high", "y_iqm", "y_low", "y_high", "floors"]  # fmt: skip
"""What a claims table and compare share for one pair; the Holm-adjusted p (and so a verdict that is not a floor's)
depends on how many claims the study tests, and compare tests one."""


def cli(*args: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main([*args])
    return code, buffer.getvalue()


def compared(folder, x: str, y: str) -> pd.Series:
    code, text = cli("compare", "--out", str(folder), x, y, "--format", "csv")
    assert code == 0
    return pd.read_csv(io.StringIO(text)).iloc[0]


def assert_same(row: pd.Series, claim: pd.Series) -> None:
    for column in SAME:
        mine, theirs = row[column], claim[column]
        if isinstance(theirs, float) and pd.notna(theirs):
            assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-12), column
        else:
            assert str(mine) == str(theirs), column


COMMIT = "c09a0b99161a"
"""The commit every committed reference row was made at (#24)."""
PAIRS = [(study, claim.test.x.label, claim.test.y.label) for study in ("garbus-rl", "garbus-charlm")
         for claim in STUDIES[study].claims]  # fmt: skip


@pytest.mark.parametrize("study, x, y", PAIRS)
def test_compare_gives_the_claims_tables_numbers(study, x, y):
    claims = pd.read_csv(REFERENCE / study / "claims.csv")
    claim = claims[(claims["x"] == x) & (claims["y"] == y)].iloc[0]
    row = compared(REFERENCE / study, x, y)
    assert_same(row, claim)
    assert row["x_commits"] == row["y_commits"] == COMMIT
    if str(claim["reason"]).startswith("floor not beaten"):  # a floor's verdict does not depend on Holm
        assert (row["verdict"], row["reason"]) == (claim["verdict"], claim["reason"])


def test_compare_table_says_tasks_floors_and_commits():
    code, text = cli(
        "compare", "--out", str(REFERENCE / "garbus-rl"), "lowrank/ga", "dense/ga", "--task", "Walker2d-v5"
    )
    assert code == 0
    assert "Walker2d-v5" in text and "HalfCheetah-v5" not in text.splitlines()[1]
    assert "P(lowrank/ga > random)" in text and f"commits: X {COMMIT}; Y {COMMIT}" in text
    assert "different commits" not in text
    row = compared(REFERENCE / "garbus-rl", "lowrank", "random")  # against the floor itself: only X is gated
    assert row["floors"] == "P(lowrank > random) = 1.00, p = 9.54e-07" and row["verdict"] == "reproduced"


def test_compare_bad_variants_are_one_line_exit_2(capsys):
    assert main(["compare", "--out", str(REFERENCE / "garbus-rl"), "lowrank/es", "dense/ga"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "variants present: dense/ga, dense/random, lowrank/ga, " in err
    stop = str(REFERENCE / "garbus-early-stop")
    assert main(["compare", "--out", stop, "lowrank/ga", "dense/ga"]) == 2
    assert "differ in elite_margin" in capsys.readouterr().err  # with and without the rule: say which
    assert main(["compare", "--out", stop, "lowrank/ga,elite_margin=100", "dense/ga,elite_margin=100", "--format",
                 "markdown"]) == 0  # fmt: skip
    assert "| task |" in capsys.readouterr().out


def test_capabilities_rule_out_a_combination_and_settings_follow_the_component():
    es = RunSpec(task="CartPole-v1", encoding="dense", algorithm="openai-es")
    why = "openai-es needs an encoding that declares uncorrelated_noise, and sparse does not"
    assert swap(es, "encoding", "sparse") == (None, f"skipped sparse/openai-es on CartPole-v1: {why}")
    ga = replace(es, algorithm="ga", settings={"sigma": 0.05, "max_steps": 20})
    new, note = swap(ga, "encoding", "lowrank")
    assert new.settings == ga.settings and note == ""


TINY = """
description = "tiny study"
[defaults]
task = "CartPole-v1"
population = 4
generations = 2
max_steps = 20
eval_episodes = 2
[[runs]]
grid = { encoding = ["dense", "lowrank"] }
[[baselines]]
algorithm = "random"
"""


@pytest.mark.slow
@pytest.mark.skipif("toy-uniform" not in ENCODINGS.names(), reason="pip install --no-deps -e examples/toy_encoding")
def test_a_plugin_added_to_a_study_runs_only_its_runs_and_joins_the_claims(tmp_path, monkeypatch):
    """docs/compare.md's path on a tiny study: run it, --add the example plugin, compare it."""
    (tmp_path / "tiny.toml").write_text(TINY)
    lowrank, dense = (Sample(f"{e}/ga", {"encoding": e, "algorithm": "ga"}) for e in ("lowrank", "dense"))
    floor = Sample("random", {"algorithm": "random"})
    claim = Claim("lowrank beats dense", "test", Comparison(lowrank, dense), floors(floor, lowrank, dense))
    study = Study("tiny-study", "tiny", (claim,), suite_file=str(tmp_path / "tiny.toml"))
    monkeypatch.setitem(STUDIES, study.name, study)
    monkeypatch.setitem(SUITES, study.name, Suite(study.name, "tiny", (), procedure=lambda out, seeds, device:
                        run_study(study, out, seeds, device)))  # fmt: skip
    out = tmp_path / "results"
    assert cli("bench", study.name, "--out", str(out), "--seeds", "2", "--device", "cpu")[0] == 0
    folder = out / study.name
    before = leaderboard.read(folder)
    assert len(before) == 6  # 2 seeds x (dense, lowrank, random)

    add = ("bench", study.name, "--add", "encoding=toy-uniform", "--out", str(out), "--seeds", "2", "--device", "cpu")
    code, text = cli(*add)
    assert code == 0 and "2 runs at --seeds 2, 0 already" in text
    after = leaderboard.read(folder)
    assert len(after) == 8 and set(after["run_id"]) > set(before["run_id"])
    assert after[~after["run_id"].isin(before["run_id"])]["encoding"].tolist() == ["toy-uniform"] * 2
    claims = pd.read_csv(folder / "claims.csv")
    assert claims["finding"].tolist() == ["lowrank beats dense", "toy-uniform/ga beats dense/ga",
                                          "toy-uniform/ga beats lowrank/ga"]  # fmt: skip
    added = claims.iloc[1]
    assert added["floors"].startswith("P(toy-uniform/ga > random)") and added["n_x"] == added["n_y"] == 2
    assert_same(compared(folder, "toy-uniform/ga", "dense/ga"), added)

    code, text = cli(*add)  # again: nothing to run, the same claims
    assert code == 0 and "0 runs added" in text and len(leaderboard.read(folder)) == 8
    assert main(["bench", study.name, "--add", "encoding=toy-unifrom", "--out", str(out)]) == 2


@pytest.mark.slow
def test_a_suite_files_comparisons_are_written_beside_its_leaderboard(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(TINY + '[[compare]]\nx = "lowrank/ga"\ny = "dense/ga"\n')
    out = tmp_path / "out"
    assert main(["bench", str(path), "--out", str(out), "--seeds", "2", "--device", "cpu"]) == 0
    claims = pd.read_csv(out / "claims.csv")
    assert claims["x"].tolist() == ["lowrank/ga"] and claims["floors"][0].startswith("P(lowrank/ga > random)")
    assert "`evoboard bench" in (out / "claims.md").read_text()
    path.write_text(TINY + '[[compare]]\nx = "lowrank/ga"\n')
    assert main(["bench", str(path), "--out", str(out)]) == 2
    assert "a comparison is x =" in capsys.readouterr().err


def test_the_example_suite_file_names_its_comparison():
    suite = load_suite(REPO / "examples" / "toy_encoding" / "compare.toml")
    assert suite.compare == ({"x": "toy-uniform/ga", "y": "dense/ga"},)
    assert {s.encoding for s in suite.specs} == {"dense", "toy-uniform"}
