"""Space adapters: flattened observations, image preprocessing, the action head, action checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from evoboard.agents.policies import ActionHead, make_policy
from evoboard.envs.base import valid_actions
from evoboard.envs.pixels import GreyResize, PixelOptions, area_weights, preprocess
from evoboard.envs.spaces import adapt_observations, check_actions, is_image


@pytest.mark.parametrize(
    ("task_id", "width"),
    [("FrozenLake-v1", 16), ("Blackjack-v1", 32 + 11 + 2), ("CartPole-v1", 4)],
)
def test_observations_become_flat_boxes(task_id, width):
    env = adapt_observations(gym.make(task_id), task_id)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (width,) and obs.shape == (width,)
    if task_id == "FrozenLake-v1":  # one-hot of the start state
        assert obs.tolist() == [1.0] + [0.0] * 15


def test_a_box_env_is_left_as_it_is():
    env = gym.make("CartPole-v1")
    assert adapt_observations(env, "CartPole-v1") is env


def test_spaces_without_a_vector_form_are_named():
    class TextEnv(gym.Env):
        observation_space = gym.spaces.Text(8)
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(ValueError, match=r"Text\(") as err:
        adapt_observations(TextEnv(), "text-v0")
    assert "text-v0" in str(err.value)
    TextEnv.observation_space = gym.spaces.Tuple(
        (gym.spaces.Discrete(2), gym.spaces.Graph(gym.spaces.Discrete(2), None))
    )
    with pytest.raises(ValueError, match="Graph"):
        adapt_observations(TextEnv(), "graph-v0")
    with pytest.raises(ValueError, match="MultiBinary"):
        check_actions(gym.spaces.MultiBinary(3), "bits-v0")
    check_actions(gym.spaces.MultiDiscrete([3, 2]), "ok-v0")


def test_image_spaces_are_told_from_vectors_and_stacks():
    assert is_image(gym.spaces.Box(0, 255, (96, 96, 3), np.uint8))
    assert is_image(gym.spaces.Box(0, 255, (64, 48), np.uint8))
    assert not is_image(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8))  # already a (C, H, W) stack
    assert not is_image(gym.spaces.Box(0, 1, (96, 96, 3), np.float32))


def test_area_weights_average_the_cells_each_output_covers():
    assert area_weights(4, 2).tolist() == [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]]
    weights = area_weights(96, 84)
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
    assert (weights > 0).sum(1).tolist() == [2] * 84  # an output cell is 8/7 input cells wide, never 3


class Frames(gym.Env):
    """A 6x4 RGB image whose value is the step count; episodes never end."""

    observation_space = gym.spaces.Box(0, 255, (6, 4, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        self.t = 10
        return np.full((6, 4, 3), self.t, np.uint8), {}

    def step(self, action):
        self.t += 10
        return np.full((6, 4, 3), self.t, np.uint8), 0.0, False, False, {}


def test_grey_resize_keeps_a_flat_grey_and_goes_channels_first():
    rgb = np.zeros((6, 4, 3), np.uint8)
    rgb[:3] = (200, 100, 50)  # top half one colour, bottom half black
    env = GreyResize(Frames(), grey=True, size=2)
    grey = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert env.observation(rgb).tolist() == [[[grey, grey], [0, 0]]]
    colour = GreyResize(Frames(), grey=False, size=2).observation(rgb)
    assert colour.shape == (3, 2, 2) and colour[:, 0, 0].tolist() == [200, 100, 50]


def test_stacks_pad_a_fresh_episode_with_its_first_frame():
    env = preprocess(Frames(), PixelOptions(pixels_size=8, pixels_stack=3))
    assert env.observation_space == gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)
    obs, _ = env.reset()
    assert obs[:, 0, 0].tolist() == [10, 10, 10]
    obs = env.step(0)[0]
    assert obs[:, 0, 0].tolist() == [10, 10, 20]  # newest last
    assert env.reset()[0][:, 0, 0].tolist() == [10, 10, 10]


@pytest.mark.parametrize("settings", [{"pixels_size": 7}, {"pixels_stack": 0}])
def test_pixel_options_refuse_impossible_values(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        PixelOptions(**settings)


def test_multidiscrete_actions_are_one_argmax_per_dimension():
    space = gym.spaces.MultiDiscrete([3, 2])
    head = ActionHead(space)
    out = torch.tensor([[0.1, 0.9, 0.0, 1.0, -1.0], [5.0, 0.0, 0.0, 0.0, 2.0], [float("nan"), 0, 0, 0, 0]])
    actions = head(out)
    assert head.width == 5 and actions.tolist() == [[1, 0], [0, 1], [-1, -1]]
    assert valid_actions(space, actions.numpy()).tolist() == [True, True, False]
    policy = make_policy("mlp", gym.spaces.Box(-1, 1, (4,)), space)
    assert policy.layers[-1].out_features == 5


def test_the_nature_cnn_drives_box_actions_inside_their_bounds():
    space = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.ones(3, np.float32))
    policy = make_policy("nature_cnn", gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), space)
    assert policy.layers[-1].out_features == 3
