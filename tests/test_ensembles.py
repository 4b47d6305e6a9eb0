"""Child ensembles (S0): identical children ensemble to the child; the runner records S0 rows from a trained parent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, checkpoints, encodings, make_policy
from evoboard.errors import UsageError
from evoboard.suite.backends.base import build_parts
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.studies.ensembles import COLUMNS, ChildEnsembles, EnsembleActor, select
from evoboard.suite.studies.parents import train_parent
from evoboard.suite.studies.sparse_window import SELECT_FRACTION, sweep

CPU = torch.device("cpu")


def parts(task_id: str, policy_name: str):
    task = envs.make(task_id, envs.resolve(task_id).load().Options())
    policy = make_policy(policy_name, task.observation_space, task.action_space, None)
    return task, policy, encodings.make("dense", policy)


def test_ensemble_of_identical_children_equals_the_child():
    task, policy, encoding = parts("digits", "classifier_mlp")
    one = encoding.decode([(7,)])
    copies = one.select(torch.zeros(4, dtype=torch.long))
    x = task.x_test.unsqueeze(0)  # (1, N, 64)
    child = PopulationActor(policy, one, CPU)(np.arange(1), x)
    ensemble = EnsembleActor(policy, copies, CPU, "probs")(np.arange(1), x)
    torch.testing.assert_close(ensemble, torch.log_softmax(child, -1), atol=1e-5, rtol=0)
    assert (
        task.final_score(EnsembleActor(policy, copies, CPU, "probs"), [])[0]
        == task.final_score(PopulationActor(policy, one, CPU), [])[0]
    )
    two = encoding.decode([(7,), (8,)])  # and two different members average to something else
    mixed = EnsembleActor(policy, two, CPU, "probs")(np.arange(1), x)
    assert not torch.allclose(mixed, ensemble)


@pytest.mark.parametrize(("task_id", "mode"), [("CartPole-v1", "vote"), ("Pendulum-v1", "mean_action")])
def test_control_ensembles_of_identical_children_act_like_the_child(task_id: str, mode: str):
    task, policy, encoding = parts(task_id, "mlp")
    one = encoding.decode([(5,)])
    copies = one.select(torch.zeros(3, dtype=torch.long))
    obs = np.random.default_rng(0).normal(size=(6, task.observation_space.shape[0])).astype(np.float32)
    child = PopulationActor(policy, one, CPU)(np.zeros(6, dtype=int), obs)
    ensemble = EnsembleActor(policy, copies, CPU, mode)(np.zeros(6, dtype=int), obs)
    np.testing.assert_allclose(ensemble, child, atol=1e-5)
    task.close()


def test_sparse_run_from_an_adam_parent_records_ensembles(tmp_path: Path):
    split = {"select_fraction": 0.1}  # children and ensemble size chosen on a split neither run trains on
    adam = Run(
        resolve(RunSpec("digits", algorithm="adam", population=8, generations=4, seed=0, device="cpu", settings=split)),
        tmp_path,
    )
    parent_row = adam.run()
    elite = adam.run_dir.path / "elite.safetensors"
    settings = {"init": str(elite), "ensemble": 4, "density": 0.1, "sparse_sigma": 0.1, **split}
    spec = RunSpec("digits", encoding="sparse", population=8, generations=3, seed=0, device="cpu", settings=settings)
    run = Run(resolve(spec), tmp_path)
    run.run()
    history = pd.read_csv(run.run_dir.path / "history.csv")
    table = pd.read_csv(run.run_dir.path / "ensembles.csv")
    assert set(COLUMNS) <= set(history.columns) and list(table["generation"]) == [0, 1, 2]
    assert table["parent_score"].iloc[0] == parent_row["final_score"] == checkpoints.load(elite).metadata["final_score"]
    assert table["ens_k"].tolist() == [0, 4, 4]  # generation 0: every member is the parent
    later = table.iloc[1:]
    assert later[["parent_score", "best_child_score", "mean_child_score", "ensemble_score"]].notna().all().all()
    # Chosen on the selection split: the ensemble (k = 1 is the best child) is never worse there than the best child;
    # scored on test against its baseline, the parent (Whitaker & Whitley 2023): at this budget the best selected
    # ensemble and the parent are a test image apart either way (seeds 0-3 beat it 2 of 4 times, before and after
    # the noise table changed every genome), so the check is that it is not worse by more than one image.
    assert (later["ensemble_selection"] >= later["best_child_selection"]).all()
    assert later["ensemble_score"].max() >= later["parent_score"].iloc[0] - 0.005  # 1 of 359 test images: 0.0028
    np.testing.assert_allclose(history["ensemble_score"].to_numpy(), table["ensemble_score"].to_numpy())
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert "ensemble_score" not in board.columns  # the leaderboard schema is unchanged


def test_ensembles_need_a_population_of_children(tmp_path: Path):
    with pytest.raises(UsageError, match="trains one model"):
        Run(resolve(RunSpec("digits", algorithm="adam", device="cpu", settings={"ensemble": 2})), tmp_path)
    with pytest.raises(UsageError, match="ensemble must be >= 1"):
        resolve(RunSpec("digits", settings={"ensemble": 0}))


def test_children_and_ensemble_size_are_chosen_on_the_selection_split_and_tested_once(tmp_path: Path):
    spec = RunSpec("digits", population=10, seed=0, device="cpu", settings={"select_fraction": 0.2, "ensemble": 4})
    built = build_parts(resolve(spec), CPU)
    task, policy, encoding = built.task, built.policy, built.encoding
    genomes = [(s,) for s in range(10)]
    params = encoding.to_params(torch.stack([encoding.vector(g) for g in genomes]))
    selection = task.selection_fitness(PopulationActor(policy, params, CPU), 10)
    test = task.accuracy(PopulationActor(policy, params, CPU), 10)
    assert np.argmax(selection) != np.argmax(test)  # the test split would pick another child
    order = np.argsort(-selection, kind="stable")

    def ensemble(k: int) -> EnsembleActor:
        return EnsembleActor(policy, params.select(torch.tensor(order[:k])), CPU, "probs")

    by_k = [selection[order[0]]] + [task.selection_fitness(ensemble(k))[0] for k in range(2, 5)]
    size = int(np.argmax(by_k)) + 1
    training = -np.arange(10.0)  # training fitness ranks the children the other way: it must not matter
    row = ChildEnsembles(built, 4)(tmp_path, 1, genomes, training, None, [])
    saved = pd.read_csv(tmp_path / "ensembles.csv").iloc[0]
    assert saved["selected_on"] == "selection_split" and saved["ens_size"] == size and row["ens_k"] == 4
    assert row["best_child_score"] == test[order[0]]  # the test score of the child chosen on selection
    assert row["mean_child_score"] == pytest.approx(test[order[:size]].mean())
    assert row["ensemble_score"] == task.final_score(ensemble(size), [])[0]
    # Shuffling the test labels changes test scores, never what is chosen.
    task.y_test = task.y_test[torch.randperm(len(task.y_test), generator=torch.Generator().manual_seed(0))]
    (tmp_path / "shuffled").mkdir()
    ChildEnsembles(built, 4)(tmp_path / "shuffled", 1, genomes, training, None, [])
    shuffled = pd.read_csv(tmp_path / "shuffled" / "ensembles.csv").iloc[0]
    assert shuffled["ens_size"] == size and shuffled["best_child_selection"] == saved["best_child_selection"]


def test_select_takes_the_first_best_prefix_and_skips_failed_children():
    fitness = np.array([0.1, np.nan, 0.5, 0.3, -np.inf])
    scores = {(2, 3): 0.7, (2, 3, 0): 0.6}
    chosen = select(fitness, lambda members: scores[tuple(members)], k_max=5)
    assert chosen.order == [2, 3, 0] and chosen.size == 2 and chosen.ensemble_fitness == 0.7
    assert select(fitness, lambda members: 0.0, k_max=1).size == 1


def test_sparse_window_reports_parent_best_child_and_ensemble_chosen_on_selection(tmp_path: Path):
    parent, row = train_parent(tmp_path, generations=2, settings={"select_fraction": SELECT_FRACTION})
    (point,) = sweep(parent, densities=(0.1,), sigmas=(0.1,), children=6)
    assert point["parent_accuracy"] == row["final_score"] and 1 <= point["ensemble_size"] <= 6
    assert point["child_min"] <= point["best_child_accuracy"] <= point["child_max"]
    assert point["best_child_selection"] >= point["ensemble_selection"] or point["ensemble_size"] > 1
