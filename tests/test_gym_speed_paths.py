"""The fast paths of a gymnasium evaluation give exactly what the plain paths give.

Three shortcuts exist for CartPole-sized work, where fixed costs outweigh the env: stepping the
bare env under ``gym.make``'s pass-through wrappers, the actor's plan reused while the active
set stays the same, and the noise rows drawn in place. Each is checked against the way it
replaced, on real gymnasium envs.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.wrappers import TimeLimit

from evoboard import envs
from evoboard.agents import PopulationActor, make_policy
from evoboard.agents.encodings import make as make_encoding
from evoboard.agents.encodings.base import noise
from evoboard.agents.policies import greedy_actions
from evoboard.envs import gym_task
from evoboard.envs.base import EpisodeOptions
from evoboard.envs.gym_task import GymTask, direct_env


class DoubledReward(gym.Wrapper):
    """A user's wrapper that changes what the task sees: every reward doubled, every step counted."""

    steps_taken = 0

    def step(self, action):
        DoubledReward.steps_taken += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, 2.0 * reward, terminated, truncated, info


DOUBLED = "evoboard-test/DoubledCartPole-v0"
if DOUBLED not in gym.registry:
    gym.register(DOUBLED, entry_point=lambda **kw: DoubledReward(CartPoleEnv(**kw)), max_episode_steps=500)


def evaluate(task: GymTask, members: int, seeds: list[int], seed: int = 0):
    policy = make_policy(task.default_policy, task.observation_space, task.action_space)
    params = make_encoding("dense", policy).decode([(seed + m,) for m in range(members)])
    return task.evaluate(PopulationActor(policy, params, torch.device("cpu")), members, seeds)


def test_direct_env_skips_only_the_pass_through_wrappers_of_gym_make():
    env = gym.make("CartPole-v1", disable_env_checker=True)  # TimeLimit(OrderEnforcing(CartPoleEnv))
    assert direct_env(env, 500) is env.unwrapped
    assert direct_env(env, 200) is env  # a different limit than the task's budget: keep the wrapper
    assert direct_env(TimeLimit(env.unwrapped, 500), 500) is env.unwrapped
    doubled = gym.make(DOUBLED, disable_env_checker=True)
    assert direct_env(doubled, 500) is doubled
    clipped = gym.wrappers.ClipReward(env, 0.0, 0.5)
    assert direct_env(clipped, 500) is clipped


@pytest.mark.parametrize(
    ("task_id", "settings"),
    [
        ("CartPole-v1", dict(max_steps=12, episodes=2, max_envs=5)),  # many episodes cut by the budget
        ("Pendulum-v1", dict(max_steps=30, episodes=2, max_envs=3)),
        ("MountainCarContinuous-v0", dict(max_steps=40, patience=7)),
    ],
)
def test_stepping_the_bare_env_equals_stepping_through_the_wrappers(task_id, settings, monkeypatch):
    options = EpisodeOptions(**settings)
    fast = envs.make(task_id, options)
    assert fast._pool(1)[0] is fast._envs[0].unwrapped
    monkeypatch.setattr(gym_task, "direct_env", lambda env, max_steps: env)
    wrapped = envs.make(task_id, options)
    assert wrapped._pool(1)[0] is wrapped._envs[0]
    a, b = evaluate(fast, 6, [3, 4][: options.episodes]), evaluate(wrapped, 6, [3, 4][: options.episodes])
    fast.close()
    wrapped.close()
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.cut, b.cut)
    assert a.frames == b.frames and a.member_forwards == b.member_forwards
    assert a.steps.max() <= options.max_steps


def test_a_user_wrapper_is_still_stepped():
    task = envs.make(DOUBLED)
    assert task._pool(1)[0] is task._envs[0]  # not the bare CartPole
    DoubledReward.steps_taken = 0
    ev = evaluate(task, 8, [0, 1])
    task.close()
    np.testing.assert_array_equal(ev.returns, 2.0 * ev.steps)  # CartPole pays 1 a step; the wrapper doubles it
    assert DoubledReward.steps_taken == ev.frames


def test_actor_plans_follow_every_change_of_the_active_set():
    """A plan reused across calls answers as a fresh actor does (all, scatter and gather ways)."""
    task = envs.make("CartPole-v1")
    policy = make_policy("mlp", task.observation_space, task.action_space)
    params = make_encoding("dense", policy).decode([(s,) for s in range(8)])
    task.close()
    actor = PopulationActor(policy, params, torch.device("cpu"))

    def fresh(members, obs):
        return PopulationActor(policy, params, torch.device("cpu"))(members, obs)

    rng = np.random.default_rng(0)
    lists = [range(8), [0, 2, 3, 5, 7], [0, 2, 3, 5, 7], [1, 6], [6, 1], [4, 4, 2], range(8), [0, 2, 3, 5, 6], [1, 6]]
    sets = [np.array(m) for m in lists]  # all, scatter (twice), gather, reordered, repeated member, ...
    for members in sets + [s.astype(np.int32) for s in sets] + [list(s) for s in sets]:
        obs = rng.normal(size=(len(members), 4)).astype(np.float32)
        want = fresh(members, obs)
        np.testing.assert_array_equal(actor(members, obs), want)
        assert torch.equal(actor(members, torch.as_tensor(obs)), torch.as_tensor(want))
    scatter = np.array([0, 2, 3, 5, 7])
    for dtype in (np.float32, np.float64, np.float32):  # the same set, observations of another dtype
        obs = rng.normal(size=(5, 4)).astype(dtype)
        np.testing.assert_array_equal(actor(scatter, obs), fresh(scatter, obs))


def test_two_lanes_keep_their_own_plans():
    """Slots stepped in two lanes alternate between two member sets: each keeps its plan (its gathered
    parameters, its scattered calls left), so alternating costs no more than running each set alone."""
    policy = make_policy("mlp", gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), gym.spaces.Box(-2, 2, (1,)))
    params = make_encoding("dense", policy).decode([(0, 100 + s) for s in range(8)])
    actor = PopulationActor(policy, params, torch.device("cpu"))
    even, odd = np.arange(0, 8, 2), np.arange(1, 8, 2)  # 4 of 8 each: scattered for 2 calls, then gathered
    rng = np.random.default_rng(2)
    for call in range(6):
        for members in (even, odd):
            obs = rng.normal(size=(4, 3)).astype(np.float32)
            got = actor(members, obs)
            want = policy.act(params.select(torch.as_tensor(members)), torch.as_tensor(obs)).numpy()
            assert got.tobytes() == want.tobytes()
            plan = actor._plans[members.tobytes()]
            assert (plan.active is None) == (call < 2)
    gathered = actor._plans[even.tobytes()].active
    actor(odd, rng.normal(size=(4, 3)).astype(np.float32))
    actor(even, rng.normal(size=(4, 3)).astype(np.float32))
    assert actor._plans[even.tobytes()].active is gathered  # not gathered again after the other lane's call
    for k in range(PopulationActor.PLANS + 1):  # more sets than it keeps: the oldest go
        actor(np.array([k % 8, 7 - k // 8]), rng.normal(size=(2, 3)).astype(np.float32))
    assert len(actor._plans) == PopulationActor.PLANS and even.tobytes() not in actor._plans


@pytest.mark.parametrize("encoding", ["dense", "lowrank-perturb"])
def test_a_scattered_set_that_lasts_switches_to_gathering_bit_for_bit(encoding):
    """Continuous actions, so every bit of the forward shows: scattered calls, then gathered ones."""
    policy = make_policy("mlp", gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), gym.spaces.Box(-2, 2, (1,)))
    params = make_encoding(encoding, policy).decode([(0, 100 + s) for s in range(8)])
    actor = PopulationActor(policy, params, torch.device("cpu"))
    members = np.array([0, 2, 3, 5, 7])  # 5 of 8: scattered for ceil(2 * 5 / 3) = 4 calls
    rng = np.random.default_rng(1)
    ways = []
    for _ in range(7):
        obs = rng.normal(size=(5, 3)).astype(np.float32)
        got = actor(members, obs)
        ways.append("scatter" if actor._plans[members.tobytes()].active is None else "gather")
        want = policy.act(params.select(torch.as_tensor(members)), torch.as_tensor(obs)).numpy()
        assert got.tobytes() == want.tobytes()
        everyone = np.zeros((8, 3), dtype=np.float32)
        everyone[members] = obs
        assert got.tobytes() == policy.act(params, torch.as_tensor(everyone))[members].numpy().tobytes()
    assert ways == ["scatter"] * 4 + ["gather"] * 3


def test_greedy_actions_fail_exactly_the_non_finite_rows():
    big = torch.tensor([[3e38, 2e38], [1.0, -1.0], [float("nan"), 0.0], [0.0, float("inf")], [-5.0, 7.0]])
    assert greedy_actions(big).tolist() == [0, 0, -1, -1, 1]  # the first row's sum overflows: full check
    assert greedy_actions(big[[1, 4]]).tolist() == [0, 1]


def test_noise_rows_drawn_in_place_equal_noise_per_seed():
    for name in ("dense", "lowrank"):
        task = envs.make("Pendulum-v1")
        encoding = make_encoding(name, make_policy("mlp", task.observation_space, task.action_space))
        task.close()
        seeds = [0, 1, 7, 1000, 2**31 - 1, 7]
        expected = torch.stack([noise(s, encoding.search_dims, encoding.device) for s in seeds])
        assert torch.equal(encoding.noises(seeds), expected)
    for dims in (1, 3, 15, 16, 17, 4610):  # below 16 torch draws normals one by one; above, 16 at a time
        encoding.search_dims = dims
        assert torch.equal(encoding.noises([5, 6]), torch.stack([noise(5, dims, "cpu"), noise(6, dims, "cpu")]))
