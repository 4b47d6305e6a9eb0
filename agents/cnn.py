"""The Nature-DQN convolutional network, one distinct network per population member.

Mnih et al. 2015 ("Human-level control through deep reinforcement learning"): three
convolutions (32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1) and a 512-unit hidden
layer on 4 stacked 84x84 grey frames, one output per action; Such et al. 2017 evolve the
same network with a GA. Written once against the layer API (``conv2d`` then ``linear``),
so the dense form runs all P members as one grouped convolution and one batched matmul,
and a low-rank or sparse encoding plugs in its own conv form without touching this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

from evoboard.agents.layers import LayerSpec, PopulationParams, conv2d, linear
from evoboard.agents.policies import POLICIES, ActionHead, Policy
from evoboard.options import Checked, bounded

CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))  # (channels out, kernel, stride), Mnih et al. 2015
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class CNNOptions(Checked):
    """Settings of the Nature-DQN CNN policy."""

    cnn_hidden: int = bounded(512, ge=1)
    """Width of the fully connected layer after the convolutions (512 in Mnih et al. 2015; 256 is cheaper)."""
    dtype: str = "float32"
    """Precision of the population's forward: float32, or bfloat16 (opt-in: half the weight traffic, fast where
    the hardware has bf16 units, e.g. avx512_bf16 or a GPU; scores differ from float32's: docs/atari-speed.md)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


@POLICIES.register("nature_cnn")
class NatureCNN(Policy):
    """Stacked frames (P, C, H, W) uint8 -> outputs (P, actions) -> actions by the ActionHead (argmax if Discrete)."""

    name = "nature_cnn"
    Options = CNNOptions

    def __init__(self, frame_shape: tuple[int, int, int], action_space: gym.Space, options: CNNOptions | None = None):
        self.options = options or CNNOptions()
        self.head = ActionHead(action_space)
        self.frame_shape, self.actions = frame_shape, self.head.width
        channels, height, width = frame_shape
        layers = []
        for i, (out, kernel, stride) in enumerate(CONVS):
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
            if height < 1 or width < 1:
                raise ValueError(f"frames of shape {frame_shape} are too small for the Nature CNN (needs >= 36x36)")
            layers.append(LayerSpec(f"conv{i}", "conv2d", channels, out, kernel=kernel, stride=stride))
            channels = out
        self.flat = channels * height * width  # 64 * 7 * 7 = 3136 for 84x84 frames
        layers.append(LayerSpec("fc", "linear", self.flat, self.options.cnn_hidden))
        layers.append(LayerSpec("out", "linear", self.options.cnn_hidden, self.head.width, output=True))
        self.layers = tuple(layers)

    @classmethod
    def for_spaces(cls, observation_space, action_space, options=None) -> NatureCNN:
        shape = getattr(observation_space, "shape", None)
        if not isinstance(observation_space, gym.spaces.Box) or shape is None or len(shape) != 3:
            raise ValueError(f"the Nature CNN needs stacked frames (C, H, W), got {observation_space}")
        return cls(tuple(int(s) for s in shape), action_space, options)

    def forward(self, params: PopulationParams, x: torch.Tensor) -> torch.Tensor:
        """Action values for every member: x (P, N, C, H, W) in [0, 1] -> (P, N, actions) float32.

        With ``dtype`` bfloat16 the weights (converted once per decoded population) and activations are bf16.
        """
        dtype = DTYPES[self.options.dtype]
        if dtype != torch.float32:
            params, x = params.cast(dtype), x.to(dtype)
        for layer in self.layers[: len(CONVS)]:
            x = torch.relu(conv2d(x, params[layer.name]))  # (P, N, C', H', W')
        x = x.flatten(2)  # (P, N, flat)
        x = torch.relu(linear(x, params["fc"]))  # (P, N, hidden)
        return linear(x, params["out"]).float()  # (P, N, actions)

    def act(self, params: PopulationParams, obs: torch.Tensor) -> torch.Tensor:
        x = obs.unsqueeze(1).to(torch.float32).mul_(1.0 / 255.0)  # uint8 (P, C, H, W) -> (P, 1, C, H, W) in [0, 1]
        return self.head(self.forward(params, x)[:, 0])  # (P, actions) -> actions

    def describe(self) -> str:
        precision = "" if self.options.dtype == "float32" else f",{self.options.dtype}"
        return f"nature_cnn({self.options.cnn_hidden}{precision})"
