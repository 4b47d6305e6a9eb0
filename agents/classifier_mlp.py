"""An MLP that answers class logits for batches of inputs: the policy of supervised tasks.

The control ``mlp`` maps one observation per member to an action (the argmax for Discrete
spaces). A supervised task needs the logits of many inputs per member, as the char
transformer gives them, so this policy reuses the MLP's layers and forward and returns
the output layer itself. Its output layer is not an RL action layer (``LayerSpec.output``
is False), so ``lowrank`` factorizes it like any other, as Jevo.jl factorizes the (tied)
output of its text models.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import torch

from evoboard.agents.policies import POLICIES, MLPPolicy


@POLICIES.register("classifier_mlp")
class ClassifierMLP(MLPPolicy):
    """MLP from flat inputs to class logits: x (P, B, *obs) -> (P, B, classes), or (P, *obs) -> (P, classes)."""

    name = "classifier_mlp"

    def __init__(self, obs_dim: int, action_space: gym.Space, options=None):
        super().__init__(obs_dim, action_space, options)
        self.layers = tuple(dataclasses.replace(layer, output=False) for layer in self.layers)

    @classmethod
    def for_spaces(cls, observation_space, action_space, options=None) -> ClassifierMLP:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"the classifier_mlp policy needs a Discrete space of classes, got {action_space}")
        return super().for_spaces(observation_space, action_space, options)

    def act(self, params, obs: torch.Tensor) -> torch.Tensor:
        batched = obs.dim() > 2  # flat observations: (P, B, obs_dim) or (P, obs_dim)
        x = obs.reshape(obs.shape[0], -1, self.obs_dim).to(torch.float32)  # (P, B, obs_dim)
        logits = self.forward(params, x)  # (P, B, classes)
        return logits if batched else logits[:, 0]

    def describe(self) -> str:
        return "classifier_" + super().describe()
