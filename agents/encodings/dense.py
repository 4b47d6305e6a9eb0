"""Dense Gaussian mutation: theta_child = theta_parent + sigma * scale * eps(seed).

The reference encoding of Such et al. 2017: every weight and bias evolves (LayerNorms too
with ``evolve_norms``). Where evoboard differs: Such et al. mutate every parameter by one
absolute sigma (0.002 on Atari); here, as in Jevo.jl and every other encoding of evoboard,
each tensor moves by sigma times its own init std (``base.EncodingOptions``), so a small
fan-in layer is not mutated relatively less than a wide one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from evoboard.agents.encodings.base import EncodingOptions, SeedChainEncoding, noise_rows


@dataclass
class DenseOptions(EncodingOptions):
    """Settings of the dense encoding: the shared ``sigma`` and ``evolve_norms``."""


class DenseEncoding(SeedChainEncoding):
    """Every weight and bias of every layer is a search dimension."""

    name = "dense"
    Options = DenseOptions
    uncorrelated_noise = independent_noise = True  # the default direction: N(0, I) in the weights
    searches_weights = True

    @cached_property
    def _mutation_scale(self) -> torch.Tensor:
        """sigma times each dimension's scale (D,); built on first use, so a subclass's own mutate needs no sigma."""
        return self.mutation_scale()

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int], out: torch.Tensor | None = None) -> torch.Tensor:
        """parents + sigma * scale * eps(seed), in ``out`` when given (the decode's own rows: no copy)."""
        eps = noise_rows(seeds, self.search_dims, self.device, out=out)  # (C, D)
        return eps.mul_(self._mutation_scale).add_(parents)  # in place: the same values, two fewer (C, D) buffers
