"""Gymnasium ids with image observations: grey, resized, stacked frames for a CNN.

An (H, W, C) uint8 observation becomes a (stack * C', size, size) uint8 stack, C' = 1 when
grey, the preprocessing of Mnih et al. 2015 that ``nature_cnn`` expects; Garbus & Pollack's
CarRacing-v3 runs the same way. Grey and resize need no opencv: an area resize is two small
matrix products, done in torch on the run's thread (numpy's OpenBLAS spread a 84x96 @ 96x96
product over threads and took 2 ms on this busy 2-core machine, torch 50 us). Stacking is
gymnasium's ``FrameStackObservation``, which pads a fresh episode with its first frame. The
settings are task options, so the spec's ``config`` records them.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import FrameStackObservation, ReshapeObservation

from evoboard.envs.base import EpisodeOptions
from evoboard.envs.gym_task import GymTask
from evoboard.options import bounded

GREY = torch.tensor([[0.299], [0.587], [0.114]])  # ITU-R 601 luma, as gymnasium's GrayscaleObservation


@dataclass
class PixelOptions(EpisodeOptions):
    """Episode settings plus how image observations are preprocessed."""

    pixels_grey: bool = True
    """Average colour channels to one grey channel (luma weights)."""
    pixels_size: int = bounded(84, ge=8)
    """Side of the square each frame is resized to (84 in Mnih et al. 2015)."""
    pixels_stack: int = bounded(4, ge=1)
    """Frames stacked per observation, the newest last."""


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging the input cells each output cell covers (area resampling)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)  # output cell j covers [edges[j], edges[j + 1]) of the input
    cells = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], cells[None, :] + 1) - np.maximum(edges[:-1, None], cells[None, :])
    return (np.clip(overlap, 0.0, None) * (n_out / n_in)).astype(np.float32)


class GreyResize(gym.ObservationWrapper):
    """(H, W[, C]) uint8 -> (C', size, size) uint8, channels first; C' = 1 when ``grey``."""

    def __init__(self, env: gym.Env, grey: bool, size: int):
        super().__init__(env)
        shape = env.observation_space.shape
        height, width = shape[:2]
        self.channels = 1 if len(shape) == 2 else shape[2]
        self.grey = grey and self.channels >= 3
        self.rows = torch.from_numpy(area_weights(height, size))  # (size, H)
        self.cols = torch.from_numpy(area_weights(width, size).T.copy())  # (W, size)
        out = 1 if (self.grey or self.channels == 1) else self.channels
        self.observation_space = gym.spaces.Box(0, 255, (out, size, size), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(obs).reshape(*obs.shape[:2], self.channels).to(torch.float32)  # (H, W, C)
        if self.grey:
            x = x[..., :3] @ GREY  # (H, W, 1); an alpha channel is dropped
        x = self.rows @ x.movedim(-1, 0) @ self.cols  # (C', H, W) -> (C', size, size)
        return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


def preprocess(env: gym.Env, options: PixelOptions) -> gym.Env:
    """``env`` whose image observations come as (stack * C', size, size) uint8 stacks."""
    env = GreyResize(env, options.pixels_grey, options.pixels_size)
    channels, size = env.observation_space.shape[0], options.pixels_size
    env = FrameStackObservation(env, options.pixels_stack)  # (stack, C', size, size)
    return ReshapeObservation(env, (options.pixels_stack * channels, size, size))


class PixelGymTask(GymTask):
    """A gymnasium id with image observations, preprocessed for the Nature CNN (``nature_cnn``)."""

    Options = PixelOptions
    default_policy = "nature_cnn"

    def _adapt(self, env: gym.Env) -> gym.Env:
        return preprocess(env, self.options)
