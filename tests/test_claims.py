"""The claims machinery: exact verdicts on a hand-made leaderboard, and one real study at a tiny budget."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from evoboard.suite.board import leaderboard
from evoboard.suite.board.decide import ruling
from evoboard.suite.studies.claims import NOT_REPRODUCED, REPRODUCED, UNDECIDED, Claim, Comparison, Sample, evaluate
from evoboard.suite.studies.claims_report import write_claims
from evoboard.suite.studies.reference import run_study
from evoboard.suite.studies.reference.catalogue import STUDIES
from evoboard.suite.studies.reference.procedures import critical_sigma


def test_verdict_rule_is_exact():
    assert ruling(0.025, 0.99) == (REPRODUCED, "")
    assert ruling(0.026, 0.99)[0] == UNDECIDED  # 0.025 each way: a two-sided 5% test
    assert ruling(0.99, 0.01) == (NOT_REPRODUCED, "")
    assert ruling(0.2, 0.8)[1].startswith("not significant at this budget (Holm-adjusted p = 0.2")


def board_row(i: int, encoding: str, score: float, kind: str = "return", margin: float | None = None) -> dict:
    config = {"task": "T", "encoding": encoding, "algorithm": "ga", "policy": "mlp",
              "settings": {"task": {"elite_margin": margin}}}  # fmt: skip
    return {**dict.fromkeys(leaderboard.COLUMNS, 0), "run_id": f"r{i}", "task": "T", "encoding": encoding,
            "algorithm": "ga", "policy": "mlp(64,64)", "final_score": score, "score_kind": kind, "git_sha": "abc",
            "config": json.dumps(config)}  # fmt: skip


@pytest.fixture
def folder(tmp_path):
    scores = {"lowrank": [5.0, 6.0, 7.0, 8.0], "dense": [1.0, 2.0, 3.0, 4.0], "random": [0.0, 0.5, 1.0, 1.5]}
    rows = [board_row(10 * k + i, enc, s) for k, (enc, ss) in enumerate(scores.items()) for i, s in enumerate(ss)]
    rows += [board_row(100 + i, "dense", 9.0, margin=1.0) for i in range(2)]  # only a setting tells these apart
    leaderboard.write_csv(leaderboard.path_in(tmp_path), pd.DataFrame(rows, columns=leaderboard.COLUMNS))
    return tmp_path


def side(encoding: str, **where) -> Sample:
    return Sample(encoding, {"encoding": encoding, **where})


def test_disjoint_runs_reproduce_and_reversed_runs_do_not(folder):
    beats_floor = (Comparison(side("lowrank"), side("random")), Comparison(side("dense"), side("random")))
    row = evaluate(folder, Claim("f", "p", Comparison(side("lowrank"), side("dense", elite_margin=None)), beats_floor))
    assert (row["effect"], row["p_low"], row["p_high"]) == (1.0, 1.0, 1.0)
    assert row["p_greater"] == pytest.approx(1 / 70) and row["verdict"] == REPRODUCED  # C(8, 4) labellings
    assert row["y_iqm"] == 2.5 and row["n_y"] == 4 and row["design"] == "unpaired"  # no seeds: unpaired
    row = evaluate(folder, Claim("f", "p", Comparison(side("dense", elite_margin=None), side("lowrank"))))
    assert row["verdict"] == NOT_REPRODUCED and row["effect"] == 0.0
    # Lower is better: the same runs read as bits per char reverse the verdict.
    lower = Comparison(side("lowrank"), side("dense", elite_margin=None), higher_is_better=False)
    assert evaluate(folder, Claim("f", "p", lower))["verdict"] == NOT_REPRODUCED
    # Credited 4.5, dense is [5.5, 6.5, 7.5, 8.5] against lowrank's [5, 6, 7, 8]: 1+2+3+4 of 16 pairs won.
    within = Comparison(side("dense", elite_margin=None), side("lowrank"), margin=4.5)
    assert evaluate(folder, Claim("f", "p", within))["effect"] == 10 / 16


def test_write_claims_makes_the_table_and_the_profile(folder):
    claims = (Claim("lowrank beats dense", "Garbus & Pollack 2025", Comparison(side("lowrank"), side("dense"))),)
    rows = write_claims(folder, claims, "evoboard bench x")
    text = (folder / "claims.md").read_text()
    assert "| lowrank beats dense | Garbus & Pollack 2025 | `evoboard bench x` |" in text
    assert f"**{rows[0]['verdict']}**" in text and (folder / "profile.png").stat().st_size > 0
    table = pd.read_csv(folder / "claims.csv")
    for column in ("normalization", "n_x", "n_y", "test", "p_adjusted", "verdict", "reason"):
        assert column in table.columns
    missing = evaluate(folder, Claim("f", "p", Comparison(side("lowrank"), side("sparse"))))
    assert missing["verdict"] == UNDECIDED and missing["reason"] == "not measured: no sparse values"


def test_critical_sigma_is_the_widest_step_near_the_parent():
    rows = pd.DataFrame({"sigma": [0.01, 0.1, 1.0], "child_mean": [0.95, 0.92, 0.3], "parent_accuracy": 0.96})
    assert critical_sigma(rows) == 0.1
    assert critical_sigma(rows.assign(child_mean=0.1)) == 0.0


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_study_names_registered_components(name):
    missing = STUDIES[name].missing()
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)} (another helper adds it)")
    assert STUDIES[name].claims


@pytest.mark.slow
def test_rso_study_end_to_end_at_a_tiny_budget(tmp_path):
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(
        'description = "tiny"\n[defaults]\ntask = "digits"\nbatch_size = 32\n'
        '[[runs]]\nalgorithm = "rso"\npopulation = 33\ngenerations = 1\npolicy = "classifier_mlp"\nhidden = "8"\n'
        '[[runs]]\nalgorithm = "adam"\npopulation = 5\ngenerations = 1\npolicy = "classifier_mlp"\nhidden = "8"\n'
        '[[runs]]\nalgorithm = "adam"\npopulation = 16\ngenerations = 1\npolicy = "classifier_mlp"\nhidden = "8"\n'
    )
    study = replace(STUDIES["rso-digits"], suite_file=str(tiny))
    rows = run_study(study, tmp_path / "out", seeds=2, device="cpu")
    folder = tmp_path / "out" / "rso-digits"
    mlp = [r for r in rows if "classifier_mlp" in r["finding"]]
    assert [r["n_x"] for r in mlp] == [2, 2, 2] and not any(r["reason"].startswith("not measured") for r in mlp)
    cnn = [r for r in rows if "small_cnn" in r["finding"]]
    assert all(r["reason"].startswith("not measured") for r in cnn)
    text = (folder / "claims.md").read_text()
    assert "Every row made at commit" in text and (folder / "report" / "report.md").exists()


def test_the_reference_claims_table_gathers_each_study_run_on_its_own(tmp_path):
    import shutil
    from pathlib import Path

    import pandas as pd

    from evoboard.suite.studies.reference import collect_claims

    source = Path(__file__).resolve().parents[1] / "results" / "reference" / "rso-digits"
    (tmp_path / "rso-digits").mkdir()
    for name in ("claims.csv", "claims.md"):
        shutil.copy(source / name, tmp_path / "rso-digits" / name)
    text = collect_claims(tmp_path).read_text()
    rso = text[text.index("## rso-digits") : text.index("## guijt-stitch")]
    for finding in pd.read_csv(source / "claims.csv")["finding"]:
        assert finding in rso
    assert rso.strip().splitlines()[-1] == (source / "claims.md").read_text().strip().splitlines()[-1]
    assert "Not run: `evoboard bench garbus-rl --out results/reference --seeds 10`" in text


def test_early_stop_effects_set_each_margin_run_beside_its_variant_without_it():
    import numpy as np
    import pandas as pd

    from evoboard.suite.studies.reference.summary import effects

    runs = pd.DataFrame({
        "task": ["T"] * 4, "encoding": ["dense"] * 4, "algorithm": ["ga"] * 4, "seed": [0, 1, 0, 1],
        "elite_margin": [np.nan, np.nan, 100.0, 100.0], "harmful_fraction": [0.6, 0.8, 0.7, 0.9],
        "median_delta": [-1.0, -3.0, -2.0, -4.0], "saved_fraction": [0.0, 0.0, 0.3, 0.5],
        "final_score": [10.0, 20.0, 12.0, 18.0], "wall_s": [10.0, 10.0, 6.0, 8.0], "frames": [100, 100, 50, 70],
    })  # fmt: skip
    out = effects(runs).set_index("elite_margin")
    assert out.loc[0.0, "seeds"] == 2 and out.loc[0.0, "harmful_fraction"] == pytest.approx(0.7)
    assert out.loc[100.0, "saved_fraction"] == pytest.approx(0.4)
    assert out.loc[100.0, "wall_vs_no_margin"] == pytest.approx(0.7)  # median 7 s vs 10 s
    assert out.loc[100.0, "frames_vs_no_margin"] == pytest.approx(0.6)
