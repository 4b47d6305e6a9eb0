"""The digits task and its classifier policies: fixed split, seeded minibatches, accuracy, batched forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, encodings, make_policy
from evoboard.envs.digits import DigitsOptions, DigitsTask, digits_split
from evoboard.errors import UsageError
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec, resolve

CPU = torch.device("cpu")


def members(task: DigitsTask, policy_name: str, n: int):
    policy = make_policy(policy_name, task.observation_space, task.action_space, None)
    params = encodings.make("dense", policy).decode([(i,) for i in range(n)])
    return policy, params


def test_split_is_fixed_disjoint_and_complete():
    a, b = digits_split(0.2), digits_split(0.2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    x_train, y_train, x_test, y_test = a
    assert len(y_train) == 1438 and len(y_test) == 359 and x_train.shape[1] == 64
    assert x_train.min() >= 0.0 and x_train.max() == 1.0
    train_rows = {row.tobytes() for row in x_train}
    overlap = sum(row.tobytes() in train_rows for row in x_test)
    assert overlap <= 2  # the split is by index; the raw set has a couple of identical images, nothing more
    assert set(np.unique(y_test)) == set(range(10))


def test_minibatches_are_seeded_and_shared_by_all_members():
    task = envs.make("digits", DigitsOptions(batch_size=16))
    x1, y1 = task.minibatch(5)
    x2, y2 = task.minibatch(5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(task.minibatch(6)[1], y1)
    policy, params = members(task, "classifier_mlp", 3)
    same = params.select(torch.tensor([1, 1, 1]))  # three copies of one member: identical fitness
    ev = task.evaluate(PopulationActor(policy, same, CPU), 3, [5, 6])
    assert ev.fitness[0] == ev.fitness[1] == ev.fitness[2]
    assert ev.returns.shape == (3, 2) and ev.member_forwards == 3 * 2 * 16 and ev.frames == ev.member_forwards


@pytest.mark.parametrize("policy_name", ["classifier_mlp", "small_cnn"])
def test_policies_answer_logits_and_members_are_independent(policy_name):
    task = envs.make("digits")
    policy, params = members(task, policy_name, 4)
    x = task.x_test[:5].expand(4, 5, 64)
    logits = policy.act(params, x)
    assert logits.shape == (4, 5, 10)
    alone = policy.act(params.select(torch.tensor([2])), x[:1])
    assert torch.allclose(alone[0], logits[2], atol=1e-5)
    assert policy.act(params, x[:, 0]).shape == (4, 10)  # one image per member


def test_final_score_is_test_accuracy():
    task = envs.make("digits")

    def always_zero(member_ids, x):  # logits that always pick class 0
        out = torch.zeros(*x.shape[:-1], 10)
        out[..., 0] = 1.0
        return out

    score, ev = task.final_score(always_zero, [0])
    assert score == pytest.approx(float((task.y_test == 0).double().mean())) and ev.member_forwards == 359
    assert DigitsTask.score_kind == "accuracy"


def test_adam_learns_digits(out_dir):
    spec = RunSpec("digits", algorithm="adam", population=10, generations=3, settings={"adam_lr": "0.01"})
    assert run_spec(spec, out_dir)["final_score"] > 0.8


def test_small_cnn_runs_end_to_end_and_bad_options_exit_cleanly(out_dir):
    row = run_spec(RunSpec("digits", policy="small_cnn", population=8, generations=2), out_dir)
    assert row["policy"] == "small_cnn(8,16)" and row["search_dims"] == 80 + 1168 + 2570
    with pytest.raises(UsageError, match="batch_size"):
        resolve(RunSpec("digits", settings={"batch_size": "0"}))
    with pytest.raises(UsageError, match="test_fraction"):
        resolve(RunSpec("digits", settings={"test_fraction": "1.5"}))
