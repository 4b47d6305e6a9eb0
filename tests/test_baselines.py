"""Baselines as runs: random search, unigram and bigram count models; the GA's elite and mutation effects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evoboard import envs
from evoboard.agents.algorithms.ga import GA, EliteOptions, GAOptions, mutation_effects
from evoboard.agents.algorithms.random_search import RandomSearch
from evoboard.suite.board.baselines import beside_baselines
from evoboard.suite.board.report import write_report
from evoboard.suite.cli import main
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec

LM = {"context": 16, "batch_windows": 8, "val_windows": 24}


def test_random_search_first_generation_equals_the_ga_generation_zero(out_dir):
    """Same seed: the same initial genomes, hence the same fitness; later generations are fresh draws."""
    ga, rs = GA(8, GAOptions()), RandomSearch(8, EliteOptions())
    assert ga.ask(ga.init(4))[0] == rs.ask(rs.init(4))[0]
    rows = {}
    for name in ("ga", "random"):
        spec = RunSpec("CartPole-v1", algorithm=name, population=8, generations=2, seed=4, settings={"max_steps": 50})
        row = run_spec(spec, out_dir / name)
        rows[name] = pd.read_csv(out_dir / name / "runs" / row["run_id"] / "history.csv")
    first = ["best_fitness", "mean_fitness", "median_fitness", "elite_fitness", "frames"]
    pd.testing.assert_series_equal(rows["ga"].loc[0, first], rows["random"].loc[0, first])
    genomes, state = rs.ask(rs.tell(rs.init(4), rs.ask(rs.init(4))[0], np.arange(8.0)))
    assert len(genomes) == 8 and all(len(g) == 1 for g in genomes)  # all fresh: nothing inherited
    assert not set(genomes) & set(rs.ask(rs.init(4))[0])


def test_ga_previous_elite_is_a_candidate_and_a_parent_however_it_scores_now():
    """Such et al.: the elite joins the re-evaluated candidates and the parents (the old GA dropped it here)."""
    ga = GA(8, GAOptions(truncation=2, elites=1, elite_candidates=3, elite_episodes=2))
    genomes, state = ga.ask(ga.init(0))
    state = ga.tell(state, genomes, np.arange(8.0))  # member 7 best
    state = ga.crown(state, ga.candidates(state), np.array([5.0, 1.0, 0.0]))
    elite = genomes[7]
    assert state.elites == [elite]
    population, state = ga.ask(state)
    assert population[0] == elite
    fitness = np.array([-1.0, 9, 8, 7, 6, 5, 4, 3])  # the elite scores worst on this generation's episodes
    state = ga.tell(state, population, fitness)
    assert ga.candidates(state) == [elite, population[1], population[2]]
    assert state.parents == [elite, population[1]]
    state = ga.crown(state, ga.candidates(state), np.array([9.0, 2.0, 1.0]))  # re-evaluation keeps it
    assert state.elites == [elite] and state.parents == [elite, population[1]] and ga.best(state) == elite


def test_mutation_effects_are_exact_on_a_hand_made_generation():
    known = {(1,): 10.0, (2,): 0.0, (1, 5): 99.0}
    children = [(1, 7), (1, 8), (2, 9), (3, 4), (2, 6)]  # (3, 4): parent unknown, left out
    stats = mutation_effects(children, np.array([12.0, 4.0, -3.0, 100.0, 0.0]), known)
    assert stats == {"harmful_fraction": 0.5, "median_delta": -1.5}  # deltas 2, -6, -3, 0
    assert math.isnan(mutation_effects([(3, 4)], np.array([1.0]), known)["median_delta"])


def test_ga_metrics_pair_each_child_with_its_parent_on_the_same_episodes():
    ga = GA(6, GAOptions(truncation=2, elites=1, elite_candidates=0))
    genomes, state = ga.ask(ga.init(1))
    assert ga.references(state) == [] and math.isnan(ga.metrics(state, genomes, np.zeros(6), [], [])["median_delta"])
    state = ga.tell(state, genomes, np.arange(6.0))
    population, asked = ga.ask(state)
    refs = ga.references(asked)
    assert refs == [genomes[4]]  # the non-elite parent; the elite (genomes[5]) is re-scored in the population
    fitness = np.array([50.0, *[40.0 if c[:-1] == genomes[5] else 10.0 for c in population[1:]]])
    parent_fitness = {genomes[5]: 50.0, genomes[4]: 0.0}
    deltas = [fitness[i] - parent_fitness[c[:-1]] for i, c in enumerate(population) if i]
    stats = ga.metrics(asked, population, fitness, refs, np.array([0.0]))
    assert stats == {"harmful_fraction": np.mean(np.array(deltas) < 0), "median_delta": np.median(deltas)}


def direct_bits(task, order: int) -> float:
    """Add-one counts over the training split with numpy, scored on the task's validation windows in log2."""
    train, v = task.training_tokens(), task.action_space.n
    inputs, targets = (t.numpy() for t in task.validation_windows())
    if order == 1:
        counts = np.bincount(train, minlength=v) + 1.0
        return float(-np.log2(counts[targets] / counts.sum()).mean())
    pairs = np.zeros((v, v))
    np.add.at(pairs, (train[:-1], train[1:]), 1)
    p = (pairs + 1) / (pairs.sum(1, keepdims=True) + v)
    return float(-np.log2(p[inputs, targets]).mean())


@pytest.mark.parametrize(("name", "order"), [("unigram", 1), ("bigram", 2)])
def test_count_model_rows_match_a_direct_computation(name, order, out_dir):
    sets = [a for k, v in LM.items() for a in ("--set", f"{k}={v}")]
    assert main(["run", "--task", "charlm/pydoc", "--algorithm", name, "--out", str(out_dir), *sets]) == 0
    row = pd.read_csv(out_dir / "leaderboard.csv").iloc[0]
    task = envs.make("charlm/pydoc", envs.resolve("charlm/pydoc").load().Options(**LM))
    assert row["algorithm"] == name and row["score_kind"] == "bits_per_char"
    assert abs(row["final_score"] - direct_bits(task, order)) < 1e-6
    assert row["frames"] == LM["val_windows"] * LM["context"]  # the validation characters scored
    history = pd.read_csv(out_dir / "runs" / row["run_id"] / "history.csv")
    assert len(history) == 1 and history["frames"].iloc[0] == 0


def test_count_models_refuse_a_task_without_tokens(out_dir, capsys):
    assert main(["run", "--task", "CartPole-v1", "--algorithm", "bigram", "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training tokens" in err[0] and not out_dir.exists()


def test_tables_mark_baselines_and_give_each_variant_its_gap_to_the_best_one():
    rows = [("CartPole-v1", "ga", 300.0, "return"), ("CartPole-v1", "random", 200.0, "return"),
            ("charlm/pydoc", "ga", 3.0, "bits_per_char"), ("charlm/pydoc", "bigram", 3.3, "bits_per_char"),
            ("charlm/pydoc", "unigram", 4.7, "bits_per_char"), ("digits", "ga", 0.5, "accuracy")]  # fmt: skip
    table = pd.DataFrame(rows, columns=["task", "algorithm", "final_score", "score_kind"])
    shown = beside_baselines(table, "final_score")
    assert shown["baseline"].tolist() == ["", "yes", "", "yes", "yes", ""]
    np.testing.assert_allclose(shown["vs_baseline"].to_numpy(), [100.0, 0.0, 0.3, 0.0, -1.4, np.nan])


def test_report_plots_mutation_effects_of_ga_runs(out_dir):
    spec = RunSpec("CartPole-v1", population=8, generations=3, settings={"max_steps": 30})
    row = run_spec(spec, out_dir)
    history = pd.read_csv(out_dir / "runs" / row["run_id"] / "history.csv")
    assert history["harmful_fraction"].isna().tolist() == [True, False, False]  # generation 0 has no parents
    assert history["harmful_fraction"].iloc[1:].between(0, 1).all()
    report = write_report(out_dir)
    assert (report.parent / "CartPole-v1_mutations.png").exists() and "| yes |" not in report.read_text()
