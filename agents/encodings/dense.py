"""Dense Gaussian mutation: theta_child = theta_parent + sigma * eps(seed).

The reference encoding of Such et al. 2017: every weight and bias evolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agents.encodings.base import SeedChainEncoding
from evoboard.options import Checked, bounded


@dataclass
class DenseOptions(Checked):
    """Settings of the dense encoding."""

    sigma: float = bounded(0.02, gt=0, finite=True)
    """Mutation standard deviation, the same for every parameter."""


class DenseEncoding(SeedChainEncoding):
    """Every weight and bias of every layer is a search dimension."""

    name = "dense"
    Options = DenseOptions

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        eps = self.noises(seeds)  # (C, D)
        return eps.mul_(self.options.sigma).add_(parents)  # in place: the same values, two fewer (C, D) buffers
