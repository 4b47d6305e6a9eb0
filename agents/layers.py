"""Population-batched parameter forms and the layer API that dispatches on them.

Every tensor carries the population first: a layer's parameters for P members are
one object, and its forward runs all P members in one batched call. A policy calls
``linear(x, p)``; the form ``p`` decides how (dense stacked matmul here; encodings add
factorized, low-rank-perturbed or sparse forms as new classes without touching any
policy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


class LayerParams(ABC):
    """One layer's parameters for a whole population: members along dim 0."""

    @abstractmethod
    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """Apply as an affine layer: x (P, N, in) -> (P, N, out)."""

    @abstractmethod
    def select(self, members: torch.Tensor) -> LayerParams:
        """The same layer for a subset of members (indices may repeat)."""

    @abstractmethod
    def __len__(self) -> int:
        """Population size P."""


@dataclass(frozen=True)
class DenseLinear(LayerParams):
    """Dense weights W (P, out, in) and bias b (P, out): one ``baddbmm`` for all members."""

    weight: torch.Tensor  # (P, out, in)
    bias: torch.Tensor  # (P, out)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def select(self, members: torch.Tensor) -> DenseLinear:
        return DenseLinear(self.weight[members], self.bias[members])

    def __len__(self) -> int:
        return self.weight.shape[0]


def linear(x: torch.Tensor, params: LayerParams) -> torch.Tensor:
    """Affine layer for every member at once: x (P, N, in) -> (P, N, out)."""
    return params.linear(x)


class PopulationParams(dict[str, LayerParams]):
    """All layers of a population of networks, by layer name; every layer has P members."""

    def select(self, members: torch.Tensor) -> PopulationParams:
        """The parameters of ``members`` only (e.g. the members still running)."""
        return PopulationParams({name: p.select(members) for name, p in self.items()})

    @property
    def population(self) -> int:
        return len(next(iter(self.values())))
