"""Child ensembles (S0): identical children ensemble to the child; the runner records S0 rows from a trained parent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import envs
from agents import PopulationActor, checkpoints, encodings, make_policy
from evoboard.errors import UsageError
from suite.runner import Run
from suite.spec import RunSpec, resolve
from suite.studies.ensembles import COLUMNS, EnsembleActor

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
    adam = Run(
        resolve(RunSpec("digits", algorithm="adam", population=8, generations=4, seed=0, device="cpu")), tmp_path
    )
    parent_row = adam.run()
    elite = adam.run_dir.path / "elite.safetensors"
    settings = {"init": str(elite), "ensemble": 4, "density": 0.1, "sparse_sigma": 0.1}
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
    # Measured against baselines, not a range: every ensemble beats its average child, and the best beats the parent.
    assert (later["ensemble_score"] > later["mean_child_score"]).all()
    assert later["ensemble_score"].max() > later["parent_score"].iloc[0]
    np.testing.assert_allclose(history["ensemble_score"].to_numpy(), table["ensemble_score"].to_numpy())
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert "ensemble_score" not in board.columns  # the leaderboard schema is unchanged


def test_ensembles_need_a_population_of_children(tmp_path: Path):
    with pytest.raises(UsageError, match="trains one model"):
        Run(resolve(RunSpec("digits", algorithm="adam", device="cpu", settings={"ensemble": 2})), tmp_path)
    with pytest.raises(UsageError, match="ensemble must be >= 1"):
        resolve(RunSpec("digits", settings={"ensemble": 0}))
