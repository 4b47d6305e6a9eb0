"""An example plugin encoding for evoboard: uniform instead of Gaussian mutation noise.

Installed with ``pip install examples/toy_encoding``, it registers itself through the
``evoboard.encodings`` entry point and runs like a built-in:
``evoboard run --task CartPole-v1 --encoding toy-uniform --set toy_width=0.1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from evoboard.agents.encodings.dense import DenseEncoding


@dataclass
class UniformOptions:
    """Settings of the toy encoding."""

    toy_width: float = 0.05
    """Half-width of the uniform mutation."""

    def __post_init__(self) -> None:
        if not self.toy_width > 0:
            raise ValueError(f"toy_width must be > 0, got {self.toy_width}")


class UniformEncoding(DenseEncoding):
    """Dense mutation with noise uniform in [-toy_width, toy_width], drawn from each child's seed."""

    name = "toy-uniform"
    Options = UniformOptions

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        generator = torch.Generator(device=self.device)
        rows = []
        for seed in seeds:
            generator.manual_seed(seed)
            rows.append(torch.rand(self.search_dims, generator=generator, device=self.device))
        return parents + self.options.toy_width * (2 * torch.stack(rows) - 1)  # (C, D)
