"""Gradient reference: the same network trained by backprop with Adam, for the same forward passes.

Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization". Not a search over seed
chains, so it is a ``DirectTrainer``, not ask/tell: the runner drives an ``AdamTrainer`` on the
task's differentiable ``loss``, one step per member-evaluation evolution would have spent (P x
episodes minibatches per generation). The trained tensor is the encoding's own search vector
viewed as layer parameters, so the model is exactly the one evolution searches (dense: every
weight; a factorized encoding: its factors), and step 0 starts from the GA's first member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from evoboard.agents.algorithms.base import DirectTrainer, draw_seed
from evoboard.agents.encodings.base import Encoding, SeedChainEncoding
from evoboard.agents.layers import PopulationParams
from evoboard.options import Checked, bounded

Forward = Callable[[torch.Tensor], torch.Tensor]
LossFn = Callable[[Forward, int], tuple[torch.Tensor, Any]]
"""(forward on tokens with autograd, minibatch seed) -> (scalar loss, the task's Evaluation of the step)."""


@dataclasses.dataclass
class AdamOptions(Checked):
    """Settings of the Adam gradient reference."""

    adam_lr: float = bounded(3e-3, gt=0, finite=True)
    """Adam step size."""
    adam_clip: float | None = bounded(1.0, gt=0)
    """Clip the gradient's global norm to this (off when unset)."""


class AdamTrainer:
    """One model's search vector z (D,) as a leaf tensor, trained one minibatch per ``step``."""

    def __init__(self, encoding: SeedChainEncoding, policy, options: AdamOptions, init_seed: int):
        self.encoding, self.policy, self.options = encoding, policy, options
        self.vector = encoding.init_vector(init_seed).clone().requires_grad_(True)  # (D,)
        self.optimizer = torch.optim.Adam([self.vector], lr=options.adam_lr)
        self.steps = 0

    def params(self) -> PopulationParams:
        """The current model as a population of one (P = 1), detached from autograd."""
        return self.encoding.to_params(self.vector.detach().unsqueeze(0))

    def step(self, loss_fn: LossFn, seed: int) -> Any:
        """One Adam step on the minibatch of ``seed``; returns the task's Evaluation of it (pre-step)."""
        params = self.encoding.to_params(self.vector.unsqueeze(0))  # views of z: gradients reach z
        loss, evaluation = loss_fn(lambda tokens: self.policy.act(params, tokens), seed)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.options.adam_clip is not None:
            torch.nn.utils.clip_grad_norm_([self.vector], self.options.adam_clip)
        self.optimizer.step()
        self.steps += 1
        return evaluation


class Adam(DirectTrainer):
    """``--algorithm adam``: backprop on the task's differentiable loss (``task.loss``)."""

    name = "adam"
    Options = AdamOptions

    def objective(self, task) -> LossFn:
        """The task's differentiable loss; ValueError for a task without one."""
        if not hasattr(task, "loss"):
            raise ValueError(f"algorithm {self.name} needs a task with a differentiable loss (charlm/*)")
        return task.loss

    def trainer(self, encoding: Encoding, policy, seed: int) -> AdamTrainer:
        """A trainer starting from the GA's first initial member for ``seed`` (the same first draw)."""
        if not isinstance(encoding, SeedChainEncoding):
            raise ValueError(f"algorithm adam trains a search vector; encoding {encoding.name!r} has none")
        return AdamTrainer(encoding, policy, self.options, draw_seed(np.random.default_rng(seed)))

    def steps_per_generation(self, episodes: int) -> int:
        """Backprop steps that spend the forwards one evolution generation spends on its population."""
        return self.population * episodes
