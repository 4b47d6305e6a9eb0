"""Dense Gaussian mutation: theta_child = theta_parent + sigma * eps(seed).

The reference encoding of Such et al. 2017: every weight and bias evolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agents.encodings.base import SeedChainEncoding, noise
from agents.layers import DenseLinear, PopulationParams


@dataclass
class DenseOptions:
    """Settings of the dense encoding."""

    sigma: float = 0.02
    """Mutation standard deviation, the same for every parameter."""

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")


class DenseEncoding(SeedChainEncoding):
    """Every weight and bias of every layer is a search dimension."""

    name = "dense"
    Options = DenseOptions

    def tensor_shapes(self):
        shapes = []
        for layer in self.policy.layers:
            shapes.append((layer.name, "weight", layer.weight_shape, layer.init_std))
            shapes.append((layer.name, "bias", (layer.out_features,), 0.0))
        return shapes

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        eps = torch.stack([noise(s, self.search_dims, self.device) for s in seeds])  # (C, D)
        return parents + self.options.sigma * eps

    def to_params(self, z: torch.Tensor) -> PopulationParams:
        views = {(b.layer, b.role): b.view(z) for b in self.blocks}
        return PopulationParams(
            {
                layer.name: DenseLinear(views[layer.name, "weight"], views[layer.name, "bias"])
                for layer in self.policy.layers
            }
        )
