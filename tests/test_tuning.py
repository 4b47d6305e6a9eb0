"""Each variant at its own step (#24): a run's sigma grid tried on tuning seeds that are never reported."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from evoboard.errors import UsageError
from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main
from evoboard.suite.studies.claims import Claim, Comparison, Sample, flat
from evoboard.suite.studies.reference import FOLDER, Study, run_study
from evoboard.suite.studies.reference.catalogue import STUDIES
from evoboard.suite.suites.files import load_suite, parse_suite
from evoboard.suite.suites.tuning import choose, tuned

TINY = """description = "tiny tuned"
[defaults]
task = "CartPole-v1"
population = 8
generations = 2
[[runs]]
encoding = "dense"
tune = { sigma = [0.002, 0.5], seeds = [100, 101] }
[[baselines]]
algorithm = "random"
"""


def test_the_best_mean_wins_in_the_score_kinds_direction():
    def table(kind: str) -> pd.DataFrame:
        scores = {0.05: [1.0, 3.0], 0.1: [2.5, 2.0], 0.2: [1.5, 1.0]}  # means 2.0, 2.25, 1.25
        return pd.DataFrame([{"run": 0, "setting": json.dumps({"sigma": s}), "final_score": v, "score_kind": kind}
                             for s, vs in scores.items() for v in vs])  # fmt: skip

    assert choose(table("return"))[1] == {0: {"sigma": 0.1}}
    assert choose(table("bits_per_char"))[1] == {0: {"sigma": 0.2}}  # lower is better
    assert choose(table("return"))[0]["chosen"].tolist() == [False, False, True, True, False, False]


def test_a_tune_table_is_checked_and_baselines_are_not_tuned():
    suite = parse_suite({"runs": [{"task": "CartPole-v1", "tune": {"sigma": [0.1, 0.2]}}],
                         "baselines": [{"algorithm": "random"}]}, "s", "s.toml")  # fmt: skip
    assert suite.tunes[0].grid == (("sigma", (0.1, 0.2)),) and suite.tunes[0].seeds == (100, 101, 102)
    assert suite.tunes[1] is None and "tune" not in suite.specs[0].settings
    with pytest.raises(UsageError, match="tune is a table"):
        parse_suite({"runs": [{"task": "CartPole-v1", "tune": {"sigma": 0.1}}]}, "s", "s.toml")
    with pytest.raises(UsageError, match="would also be reported"):
        tuned(suite, "unused", "cpu", seeds=101)


def test_a_tune_horizon_and_a_seed_cap_are_read_and_checked():
    suite = parse_suite({"runs": [{"task": "CartPole-v1", "tune": {"sigma": [0.1], "generations": 3}},
                                  {"task": "Acrobot-v1", "max_seeds": 2, "generations": 4}],
                         "baselines": [{"algorithm": "random"}]}, "s", "s.toml")  # fmt: skip
    assert suite.tunes[0].generations == 3 and suite.tunes[0].grid == (("sigma", (0.1,)),)
    # a floor without task takes its task's cap, as it takes the rest of that task's budget
    assert suite.max_seeds == (None, 2, None, 2) and suite.specs[3].generations == 4
    runs = [(s.task, s.algorithm, s.seed) for s in suite.for_seeds(4)]
    assert runs.count(("CartPole-v1", "ga", 3)) == 1 and ("Acrobot-v1", "ga", 2) not in runs
    assert sorted(seed for task, _, seed in runs if task == "Acrobot-v1") == [0, 0, 1, 1]
    for bad in ({"max_seeds": 0}, {"max_seeds": "5"}, {"tune": {"sigma": [0.1], "generations": 0}}):
        with pytest.raises(UsageError, match="max_seeds must be|tune is a table"):
            parse_suite({"runs": [{"task": "CartPole-v1", **bad}]}, "s", "s.toml")


def test_the_encoding_studies_declare_their_grids():
    for name in ("garbus-rl", "garbus-charlm"):
        suite = load_suite(FOLDER / STUDIES[name].suite_file)
        tuned_specs = [s for s, t in zip(suite.specs, suite.tunes, strict=True) if t]
        assert {s.encoding for s in tuned_specs} >= {"dense", "lowrank", "small_dense"}
        assert all(min(t.seeds) >= 10 and len(t.grid[0][1]) == 4 for t in suite.tunes if t)


@pytest.mark.slow
def test_a_tuned_study_reports_each_variant_at_its_best_sigma(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    dense, floor = (
        Sample("dense/ga", {"encoding": "dense", "algorithm": "ga"}),
        Sample("random", {"algorithm": "random"}),
    )
    study = Study("tiny-tuned", "tiny", (Claim("dense beats random", "-", Comparison(dense, floor)),),
                  suite_file=str(tmp_path / "tiny.toml"))  # fmt: skip
    run_study(study, tmp_path / "out", seeds=2, device="cpu")
    folder = tmp_path / "out" / "tiny-tuned"

    tuning = leaderboard.read(folder / "tuning")  # the chosen sigma: the best mean over the tuning runs themselves
    assert sorted(tuning["seed"]) == [100, 100, 101, 101]
    means = flat(tuning).groupby("sigma")["final_score"].mean()
    best = means.idxmax()
    recorded = pd.read_csv(folder / "tuning.csv")
    assert len(recorded) == 4 and set(recorded.loc[recorded["chosen"], "setting"]) == {json.dumps({"sigma": best})}

    reported = flat(leaderboard.read(folder))  # tuning seeds never reported; dense runs at the chosen sigma
    assert sorted(set(reported["seed"])) == [0, 1]
    assert set(reported.loc[reported["algorithm"] == "ga", "sigma"]) == {best}
    claims = pd.read_csv(folder / "claims.csv")
    assert claims["n_x"].tolist() == [2] and claims["tuned"].tolist() == [f"dense/ga: CartPole-v1 sigma={best:g}"]
    assert f"| dense/ga | CartPole-v1 | **sigma={best:g}** |" in (folder / "claims.md").read_text()

    ids = set(tuning["run_id"])
    capsys.readouterr()
    run_study(study, tmp_path / "out", seeds=2, device="cpu")  # a re-run skips the finished tuning runs
    assert "tiny tuning: 4 runs, 4 already in the leaderboard; 0 to run" in capsys.readouterr().out
    assert set(leaderboard.read(folder / "tuning")["run_id"]) == ids


@pytest.mark.slow
def test_a_user_suite_file_with_a_grid_tunes_before_bench(tmp_path, capsys):
    suite = tmp_path / "mine.toml"
    suite.write_text(  # tuned at a shorter horizon (1 generation) than the reported runs (2)
        TINY.replace("seeds = [100, 101]", "seeds = [100], generations = 1")
        + '[[compare]]\nx = "dense/ga"\ny = "random"\n'
    )
    out = tmp_path / "results"
    assert main(["bench", str(suite), "--seeds", "1", "--jobs", "1", "--out", str(out)]) == 0
    chosen = pd.read_csv(out / "tuning.csv").query("chosen")["setting"].tolist()
    assert len(chosen) == 1 and list(leaderboard.read(out / "tuning")["seed"]) == [100, 100]
    assert list(leaderboard.read(out / "tuning")["generations"]) == [1, 1]
    assert list(leaderboard.read(out)["generations"]) == [2, 2]
    sigma = json.loads(chosen[0])["sigma"]
    reported = flat(leaderboard.read(out))
    assert list(reported["seed"]) == [0, 0] and reported.query("algorithm == 'ga'")["sigma"].tolist() == [sigma]
    assert f"**sigma={sigma:g}**" in (out / "claims.md").read_text()
