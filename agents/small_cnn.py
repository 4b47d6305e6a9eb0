"""A small convolutional classifier for square single-channel images (8x8 digits), population-batched.

Two 3x3 convolutions (stride 1, no padding, ReLU) and a linear head, the size of network
RSO (Tripathi & Singh 2020) and the ES lottery-ticket study (Lange & Sprekeler 2023) use
on small images. Written against the layer API, so dense members run as one grouped
convolution and a low-rank or sparse encoding plugs in its own conv form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from evoboard.agents.layers import LayerSpec, PopulationParams, conv2d, linear
from evoboard.agents.policies import POLICIES, Policy
from evoboard.options import Checked


@dataclass
class SmallCNNOptions(Checked):
    """Settings of the small CNN classifier."""

    cnn_channels: tuple[int, ...] = (8, 16)
    """Channels of the 3x3 convolutions, one entry per convolution."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cnn_channels = tuple(self.cnn_channels)
        if not self.cnn_channels or any(c < 1 for c in self.cnn_channels):
            raise ValueError(f"cnn_channels must be one or more widths >= 1, got {self.cnn_channels}")


@POLICIES.register("small_cnn")
class SmallCNN(Policy):
    """Images (P, B, side*side) in [0, 1] -> class logits (P, B, classes) through 3x3 convolutions."""

    name = "small_cnn"
    Options = SmallCNNOptions

    def __init__(self, side: int, classes: int, options: SmallCNNOptions | None = None):
        self.options = options or SmallCNNOptions()
        self.side, self.classes = side, classes
        size, channels, layers = side, 1, []
        for i, out in enumerate(self.options.cnn_channels):
            size -= 2
            if size < 1:
                raise ValueError(f"{side}x{side} images are too small for {len(self.options.cnn_channels)} 3x3 convs")
            layers.append(LayerSpec(f"conv{i}", "conv2d", channels, out, kernel=3))
            channels = out
        self.flat = channels * size * size  # 16 * 4 * 4 = 256 for 8x8 digits
        layers.append(LayerSpec("out", "linear", self.flat, classes))
        self.layers = tuple(layers)

    @classmethod
    def for_spaces(cls, observation_space, action_space, options=None) -> SmallCNN:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"the small_cnn policy needs a Discrete space of classes, got {action_space}")
        pixels = int(np.prod(getattr(observation_space, "shape", ()) or (0,)))
        side = math.isqrt(pixels)
        if not isinstance(observation_space, gym.spaces.Box) or side * side != pixels or side < 3:
            raise ValueError(f"the small_cnn policy needs square single-channel images, got {observation_space}")
        return cls(side, int(action_space.n), options)

    def forward(self, params: PopulationParams, x: torch.Tensor) -> torch.Tensor:
        """Logits for every member: x (P, B, 1, side, side) -> (P, B, classes)."""
        for layer in self.layers[:-1]:
            x = torch.relu(conv2d(x, params[layer.name]))  # (P, B, C', H', W')
        return linear(x.flatten(2), params["out"])  # (P, B, classes)

    def act(self, params: PopulationParams, obs: torch.Tensor) -> torch.Tensor:
        """Images (P, B, side*side) -> logits (P, B, classes); one image per member (P, side*side) -> (P, classes)."""
        batched = obs.dim() > 2
        x = obs.reshape(obs.shape[0], -1, 1, self.side, self.side).to(torch.float32)  # (P, B, 1, side, side)
        logits = self.forward(params, x)
        return logits if batched else logits[:, 0]

    def describe(self) -> str:
        return f"small_cnn({','.join(map(str, self.options.cnn_channels))})"
