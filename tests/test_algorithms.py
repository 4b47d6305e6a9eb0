"""Every registered algorithm runs end to end; the GA's selection, elitism and state are exact."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from evoboard.agents import encodings, make_policy
from evoboard.agents.algorithms import ALGORITHMS, CountModel, DirectTrainer, SearchAlgorithm, VectorSearch
from evoboard.agents.algorithms import make as make_algorithm
from evoboard.agents.algorithms.base import AlgorithmState, finite_fitness
from evoboard.agents.algorithms.ga import GA, GAOptions, rank
from evoboard.agents.policies import MLPOptions
from evoboard.errors import UsageError
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec

SEARCH = [n for n in ALGORITHMS.names() if issubclass(ALGORITHMS.get(n), SearchAlgorithm)]
DIRECT = [n for n in ALGORITHMS.names() if issubclass(ALGORITHMS.get(n), DirectTrainer)]
GRADIENT = ["adam"]  # direct trainers on a differentiable loss; the others score candidates as a population
GRADIENT_FREE = [n for n in DIRECT if n not in GRADIENT]
TINY_LM = {"context": 8, "batch_windows": 4, "val_windows": 8, "n_layer": 1, "n_embd": 16, "n_head": 2}


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_algorithm_is_exactly_one_of_the_three_kinds(name):
    cls = ALGORITHMS.get(name)
    assert sum(issubclass(cls, kind) for kind in (SearchAlgorithm, DirectTrainer, CountModel)) == 1
    assert not hasattr(cls, "ask") or issubclass(cls, SearchAlgorithm)  # no trainer inherits ask/tell to refuse it


@pytest.mark.parametrize("name", SEARCH)
def test_the_base_makes_non_finite_fitness_minus_inf_once(name):
    """NaN and +-inf reach the algorithm's own update as -inf: never ranked first, never the best so far."""
    seen = []

    class Spy(ALGORITHMS.get(name)):
        def update(self, state, genomes, fitness):
            seen.append(fitness.copy())
            return super().update(state, genomes, fitness)

    algorithm = searching(Spy(6, Spy.Options()))
    genomes, state = algorithm.ask(algorithm.init(0))
    raw = np.array([1.0, np.nan, np.inf, 2.0, -np.inf, 0.5])
    state = algorithm.tell(state, genomes, raw)
    np.testing.assert_array_equal(seen[0], [1.0, -np.inf, -np.inf, 2.0, -np.inf, 0.5])
    assert state.generation == 1 and state.best_so_far == 2.0
    genomes, state = algorithm.ask(state)
    state = algorithm.tell(state, genomes, np.full(6, np.nan))
    assert state.generation == 2 and state.best_so_far == 2.0  # the best so far survives a broken generation


def test_finite_fitness_and_the_genomes_json_boundary():
    np.testing.assert_array_equal(finite_fitness([np.nan, np.inf, -1.0]), [-np.inf, -np.inf, -1.0])
    state = GA(4, GAOptions()).init(0)
    data = json.loads(json.dumps(state.to_json()))
    assert all(isinstance(g, list) for g in data["population"])  # lists in JSON
    restored = GA.State.from_json(data)
    assert restored == state and all(isinstance(g, tuple) for g in restored.population)  # tuples in memory
    assert AlgorithmState.from_json({"generation": 3, "rng": {}, "best": [1, 2]}).best == (1, 2)


def searching(algorithm):
    """``algorithm``, bound to a tiny dense encoding when it searches an encoding's space."""
    if isinstance(algorithm, VectorSearch):
        policy = make_policy("mlp", gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), MLPOptions(hidden=(4,)))
        algorithm.bind(encodings.make("dense", policy))
    return algorithm


@pytest.mark.parametrize("name", SEARCH)
def test_every_search_algorithm_runs_a_few_generations(name, out_dir):
    spec = RunSpec("CartPole-v1", algorithm=name, population=8, generations=3, settings={"max_steps": 100})
    row = run_spec(spec, out_dir)
    assert row["algorithm"] == name and row["generations"] == 3
    assert np.isfinite(row["best_fitness"]) and 0 < row["final_score"] <= 100


@pytest.mark.parametrize("name", GRADIENT)
def test_every_gradient_reference_trains_on_a_differentiable_task(name, out_dir):
    spec = RunSpec("charlm/pydoc", algorithm=name, population=4, generations=2, settings=TINY_LM)
    row = run_spec(spec, out_dir)
    history = pd.read_csv(out_dir / "runs" / row["run_id"] / "history.csv")
    assert len(history) == 2 and (history["member_forwards"] == 4 * 4).all()  # P steps of 4 windows each
    assert history["mean_fitness"].iloc[1] > history["mean_fitness"].iloc[0]  # the loss goes down
    assert row["score_kind"] == "bits_per_char" and 0 < row["final_score"] < 8
    with pytest.raises(UsageError, match="differentiable loss"):
        run_spec(RunSpec("CartPole-v1", algorithm=name, population=4, generations=1), out_dir)


@pytest.mark.parametrize("name", GRADIENT_FREE)
def test_every_gradient_free_trainer_trains_on_a_supervised_task(name, out_dir):
    spec = RunSpec("digits", algorithm=name, population=9, generations=1, settings={"hidden": "8", "batch_size": 32})
    row = run_spec(spec, out_dir)
    assert row["algorithm"] == name and row["score_kind"] == "accuracy" and 0.2 < row["final_score"] <= 1


@pytest.mark.parametrize("name", SEARCH)
def test_state_round_trips_through_json(name):
    algorithm = searching(make_algorithm(name, 6))
    state = algorithm.init(3)
    genomes, state = algorithm.ask(state)
    state = algorithm.tell(state, genomes, np.arange(len(genomes), dtype=float))
    restored = algorithm.state_from_json(json.loads(json.dumps(state.to_json())))
    assert restored == state
    assert algorithm.ask(restored)[0] == algorithm.ask(state)[0]


def test_ga_truncation_elitism_and_seed_chains():
    ga = GA(10, GAOptions(truncation=3, elites=2, elite_candidates=4, elite_episodes=2))
    state = ga.init(0)
    genomes, state = ga.ask(state)
    assert len(genomes) == 10 and all(len(g) == 1 for g in genomes)
    fitness = np.array([5, 1, 9, 3, 7, 0, 2, 8, 4, 6], dtype=float)
    state = ga.tell(state, genomes, fitness)
    assert ga.candidates(state) == [genomes[i] for i in (2, 7, 4, 9)]
    # Re-evaluation reorders the candidates: the crowned elites follow the extra episodes.
    state = ga.crown(state, ga.candidates(state), np.array([1.0, 4.0, 3.0, 2.0]))
    assert ga.best(state) == genomes[7] and state.best_fitness == 4.0
    children, state = ga.ask(state)
    assert children[:2] == [genomes[7], genomes[4]]  # elites copied unchanged
    parents = {genomes[i] for i in (2, 7, 4)}
    for child in children[2:]:
        assert len(child) == 2 and child[:1] in parents  # one mutation seed on a top-3 parent
    assert len({c[-1] for c in children[2:]}) == 8  # fresh seeds


def test_ga_without_reevaluation_crowns_the_generation_best():
    ga = GA(4, GAOptions(elite_candidates=0))
    state = ga.init(1)
    genomes, state = ga.ask(state)
    state = ga.tell(state, genomes, np.array([1.0, 3.0, 2.0, 0.0]))
    assert ga.candidates(state) == [] and ga.best(state) == genomes[1] and state.best_fitness == 3.0


def test_rank_puts_nan_and_minus_inf_last_and_keeps_ties_stable():
    assert list(rank(finite_fitness([1.0, np.nan, 3.0, -np.inf, 3.0]))) == [2, 4, 0, 1, 3]


@pytest.mark.parametrize(
    "options, population, message",
    [
        (GAOptions(truncation=9), 8, "truncation"),
        (GAOptions(elites=8), 8, "elites"),
    ],
)
def test_ga_rejects_impossible_sizes(options, population, message):
    with pytest.raises(ValueError, match=message):
        GA(population, options)
