"""Observation and action spaces a task can serve, and the adapters that make others fit.

Policies read flat or image ``Box`` observations. Any other observation space gymnasium can
flatten to a vector (``Discrete`` one-hot, ``MultiDiscrete``, ``MultiBinary``, ``Tuple`` and
``Dict`` of those) is flattened by ``gymnasium.spaces.flatten`` in a ``FlattenObservation``
wrapper; image ``Box`` observations go to ``evoboard.envs.pixels``. Text, graphs and sequences have
no fixed-size vector form of numbers, so a task refuses them in one line that names the space.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FlattenObservation

ACTIONS = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete)
"""Action spaces a policy head can produce (``evoboard.agents.policies.ActionHead``)."""


def is_image(space: gym.Space) -> bool:
    """A uint8 ``Box`` of (H, W) or (H, W, C) pixels, C in 1, 3, 4: what ``evoboard.envs.pixels`` preprocesses."""
    if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8:
        return False
    shape = space.shape
    return (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))) and min(shape[:2]) >= 8


def has_vector_form(space: gym.Space) -> bool:
    """Whether ``space`` is a fixed-size vector of numbers (gymnasium also pads Text to one, but
    a string's character codes are no magnitudes for a network to read)."""
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        return True
    if isinstance(space, gym.spaces.Tuple):
        return all(has_vector_form(part) for part in space.spaces)
    if isinstance(space, gym.spaces.Dict):
        return all(has_vector_form(part) for part in space.spaces.values())
    return False


def adapt_observations(env: gym.Env, task_id: str) -> gym.Env:
    """``env`` with ``Box`` observations: as it is when they already are, else flattened.

    Raises ValueError naming the space when it has no vector form.
    """
    space = env.observation_space
    if isinstance(space, gym.spaces.Box):
        return env
    if not has_vector_form(space):
        raise ValueError(
            f"task {task_id} has {space} observations, which have no fixed-size vector form; "
            "evoboard takes Box, Discrete, MultiDiscrete, MultiBinary, and Tuple/Dict of those"
        )
    return FlattenObservation(env)


def check_actions(space: gym.Space, task_id: str) -> None:
    """Raise ValueError naming ``space`` unless a policy head can produce its actions."""
    flat_multi = isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1
    if not isinstance(space, ACTIONS) or (isinstance(space, gym.spaces.MultiDiscrete) and not flat_multi):
        raise ValueError(f"task {task_id} has {space} actions; evoboard takes Box, Discrete or 1-D MultiDiscrete")
