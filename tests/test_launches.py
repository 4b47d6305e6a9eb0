"""A generation's tensor ops do not grow with the population: counted by torch's profiler, not timed."""

from __future__ import annotations

import pytest

from evoboard import envs
from evoboard.agents import make_policy
from evoboard.suite.speed.launches import generation_ops, top_level_ops


@pytest.fixture(scope="module")
def mlp():
    task = envs.make("CartPole-v1")
    policy = make_policy("mlp", task.observation_space, task.action_space)
    task.close()
    return policy


def test_the_profiler_counts_top_level_ops_only():
    import torch

    x = torch.ones(4)
    assert top_level_ops(lambda: (x + 1).sum()) == 2  # add, sum: not the ops they call inside
    assert top_level_ops(lambda: [x[i] for i in range(4)]) == 4  # a Python loop over members is counted


@pytest.mark.parametrize(
    ("encoding", "settings"),
    [("dense", {}), ("lowrank", {"rank": 2}), ("lowrank-perturb", {"shared_min": 0}), ("sparse", {})],
)
@pytest.mark.parametrize("algorithm", ["ga", "openai-es", "snes"])
def test_ops_per_generation_are_the_same_at_p_16_and_64(mlp, encoding, settings, algorithm):
    small = generation_ops(mlp, encoding, algorithm, 16, settings)
    large = generation_ops(mlp, encoding, algorithm, 64, settings)
    if small is None:  # the algorithm refuses the encoding
        assert large is None and (encoding, algorithm) in {
            ("sparse", "openai-es"),
            ("sparse", "snes"),
            ("lowrank-perturb", "snes"),
        }
        return
    assert small["decode"] > 0 and set(large) == set(small)
    for phase, ops in small.items():  # an op or two may differ: how many cached tensors the rows come from
        assert abs(large[phase] - ops) <= 0.1 * ops, (phase, ops, large[phase])
