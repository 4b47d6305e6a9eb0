"""Policies written once against the layer API, for Box and Discrete action spaces.

A policy describes its layers (``LayerSpec``) so an encoding can decide how to store
and mutate them, and runs a population forward on whatever forms the encoding
produced. ``PopulationActor`` turns a policy plus decoded parameters into the plain
callable a task sees: (member indices, observations) -> actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from agents.layers import PopulationParams, linear

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


@dataclass(frozen=True)
class LayerSpec:
    """A linear layer's shape; ``fan_in`` sets its initial scale."""

    name: str
    in_features: int
    out_features: int

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def init_std(self) -> float:
        """LeCun-normal scale, 1/sqrt(fan_in): keeps tanh/relu activations O(1)."""
        return 1.0 / math.sqrt(self.in_features)


@dataclass
class MLPOptions:
    """Settings of the MLP policy."""

    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths."""
    activation: str = "tanh"
    """Hidden activation: tanh or relu."""

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")


@dataclass
class MLPPolicy:
    """MLP from a flat observation to action logits (Discrete) or a squashed action (Box)."""

    obs_dim: int
    action_space: gym.Space
    options: MLPOptions = field(default_factory=MLPOptions)
    name: str = "mlp"

    def __post_init__(self) -> None:
        if isinstance(self.action_space, gym.spaces.Discrete):
            out = int(self.action_space.n)
        elif isinstance(self.action_space, gym.spaces.Box):
            out = int(np.prod(self.action_space.shape))
            low, high = self.action_space.low.ravel(), self.action_space.high.ravel()
            bounded = bool(np.all(np.isfinite(low)) and np.all(np.isfinite(high)))
            # Box actions: tanh-squashed into [low, high] when bounded, raw otherwise.
            self._low = torch.as_tensor(low, dtype=torch.float32) if bounded else None
            self._high = torch.as_tensor(high, dtype=torch.float32) if bounded else None
        else:
            raise ValueError(f"MLP policy needs a Discrete or Box action space, got {self.action_space}")
        widths = (self.obs_dim, *self.options.hidden, out)
        self.layers = tuple(LayerSpec(f"fc{i}", a, b) for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)))
        self._act = ACTIVATIONS[self.options.activation]

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_space, gym.spaces.Discrete)

    def forward(self, params: PopulationParams, x: torch.Tensor) -> torch.Tensor:
        """Network output for every member: x (P, N, obs_dim) -> (P, N, out)."""
        *hidden, last = self.layers
        for layer in hidden:
            x = self._act(linear(x, params[layer.name]))
        return linear(x, params[last.name])

    def actions(self, output: torch.Tensor) -> torch.Tensor:
        """Map network output (..., out) to env actions: argmax or squashed box."""
        if self.discrete:
            return output.argmax(-1)
        if self._low is None:
            return output
        low, high = self._low.to(output.device), self._high.to(output.device)
        return low + (torch.tanh(output) + 1.0) * 0.5 * (high - low)


POLICIES = {"mlp": (MLPPolicy, MLPOptions)}


def policy_for(observation_space: gym.Space, action_space: gym.Space, options: MLPOptions | None = None) -> MLPPolicy:
    """The policy network for a task's spaces (flat Box observations -> MLP)."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"MLP policy needs Box observations, got {observation_space}")
    return MLPPolicy(int(np.prod(observation_space.shape)), action_space, options or MLPOptions())


class PopulationActor:
    """The callable a task steps with: (member indices, obs batch) -> actions, one forward.

    Finished members leave the batch, so the active set shrinks over an episode. Gathering
    the active members' parameters costs a copy of their weights; it is done only when the
    active set changes (rarely: at episode ends), not every step.
    """

    def __init__(self, policy: MLPPolicy, params: PopulationParams, device: torch.device):
        self.policy, self.params, self.device = policy, params, device
        self._members: np.ndarray | None = None
        self._active: PopulationParams | None = None

    def __call__(self, members: np.ndarray, obs: np.ndarray) -> np.ndarray:
        if self._members is None or not np.array_equal(members, self._members):
            self._members = members.copy()
            index = torch.as_tensor(members, device=self.device)
            self._active = self.params.select(index)
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(len(members), 1, -1)
        with torch.inference_mode():
            out = self.policy.forward(self._active, x)  # (A, 1, out)
            return self.policy.actions(out[:, 0]).cpu().numpy()
