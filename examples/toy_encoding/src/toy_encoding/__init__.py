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
    """Dense mutation with noise uniform in [-toy_width, toy_width], drawn from each child's seed.

    The noise is drawn on the CPU and then moved, so a seed means the same weights on every device
    (a generator on a GPU draws other numbers). It declares no ES capability: an evolution strategy
    would step along dense's Gaussian directions, not this encoding's uniform ones.
    """

    name = "toy-uniform"
    Options = UniformOptions
    uncorrelated_noise = independent_noise = False

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int], out: torch.Tensor | None = None) -> torch.Tensor:
        generator = torch.Generator()
        rows = []
        for seed in seeds:
            generator.manual_seed(seed)
            rows.append(torch.rand(self.search_dims, generator=generator))
        step = self.options.toy_width * (2 * torch.stack(rows).to(parents.device) - 1)  # (C, D)
        return torch.add(parents, step, out=out)
