"""A CartPole that counts every step any instance takes: what a library did, not what it says it did.

Importing this registers nothing; ``register()`` adds the gymnasium id once, for whoever needs it.
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

COUNTING_CARTPOLE = "evoboard-bench/CountingCartPole-v1"


class CountingCartPole(CartPoleEnv):
    """CartPole whose class attribute ``steps_taken`` counts every step of every instance."""

    steps_taken = 0

    def step(self, action):
        CountingCartPole.steps_taken += 1
        return super().step(action)


def register() -> str:
    """Register the counting CartPole with gymnasium (once); returns its id."""
    if COUNTING_CARTPOLE not in gym.registry:
        gym.register(COUNTING_CARTPOLE, entry_point=CountingCartPole, max_episode_steps=500)
    return COUNTING_CARTPOLE
