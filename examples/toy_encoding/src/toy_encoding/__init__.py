"""An example plugin encoding for evoboard: uniform instead of Gaussian mutation noise.

Installed with ``pip install examples/toy_encoding``, it registers itself through the
``evoboard.encodings`` entry point and runs like a built-in:
``evoboard run --task CartPole-v1 --encoding toy-uniform --set toy_width=1.0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from evoboard.agents.encodings.base import EncodingOptions
from evoboard.agents.encodings.dense import DenseEncoding


@dataclass
class UniformOptions(EncodingOptions):
    """Settings of the toy encoding (plus the shared ``sigma`` and ``evolve_norms``)."""

    toy_width: float = math.sqrt(3)
    """Half-width of the uniform noise in units of sigma x each tensor's init std; sqrt(3): dense's step."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.toy_width > 0:
            raise ValueError(f"toy_width must be > 0, got {self.toy_width}")


class UniformEncoding(DenseEncoding):
    """Dense mutation with noise uniform in +-toy_width x sigma x each tensor's init std, from each child's seed.

    At the default width its per-entry std is dense's, so it honours evoboard's equal-step contract
    (``evoboard bench mutation-scale``) as every encoding must.

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
        unit = self.options.toy_width * (2 * torch.stack(rows).to(parents.device) - 1)  # (C, D) in [-w, w)
        step = unit.mul_(self._mutation_scale)  # sigma x each tensor's scale
        return torch.add(parents, step, out=out)
