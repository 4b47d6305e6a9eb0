"""What the Atari test files share: a task maker and a deterministic pixel policy (ale-py tests only)."""

from __future__ import annotations

import numpy as np

from evoboard import envs
from evoboard.envs.atari import AtariOptions, AtariTask

RIGHTFIRE = 4  # Space Invaders: moving and firing scores 5 points within 60 steps of seed 0


def make(game: str, **settings) -> AtariTask:
    return envs.make(f"ALE/{game}-v5", AtariOptions(**settings))


def pixel_policy(n_actions: int):
    """A deterministic act that depends on the frames and the member, so trajectories do too."""

    def act(members: np.ndarray, obs: np.ndarray) -> np.ndarray:
        seen = obs[:, -1].astype(np.int64).sum(axis=(1, 2))  # (A,) brightness of the newest frame
        return (seen // 7 + 3 * members) % n_actions

    return act
