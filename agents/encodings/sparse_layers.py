"""Layer form of sparsely mutated children: the parent's shared forward plus each child's gathered changes.

A sparse child (``SparseEncoding``, Whitaker & Whitley 2023) differs from its parent in k = p * n
entries of a layer, so x W_i^T = x W0^T + sum over its changed entries (o, j) of delta_oj * x_j:
one matmul per distinct parent (``shared_forward``) plus k multiply-adds per row, gathered and
scattered. Measured on the Nature CNN's fc layer (P=32, one input row each, one thread): the
dense batched matmul ~11 ms; shared ~1.3 ms plus the correction ~0.7 ms at p = 0.01 and ~9 ms
at p = 0.1 (``python -m evoboard.suite.speed.forwards encodings``). Convolutions stay dense: a
gathered correction of a conv (an unfolded input's rows) measured 2-40x slower than the grouped conv.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from evoboard.agents.encodings.shared_forward import SharedPlan, shared_linear
from evoboard.agents.layers import DenseLinear, LayerParams

SHARED_MIN = 32_768
"""Linear weights of at least this many entries run shared (smaller ones are cheap to run dense per member)."""
SHARED_DENSITY_MAX = 0.05
"""The largest density run shared: where the gathered correction stops beating the dense matmul (about 0.1
on the fc layer above), with a margin."""


@dataclass(frozen=True)
class SparseLinear(LayerParams):
    """Members with weight W_i = base[group[i]] plus ``delta[i]`` at (``rows[i]``, ``cols[i]``), never formed.

    Each member's changed entries are padded to the longest list with zero changes at (0, 0).
    """

    base: torch.Tensor  # (K, out, in): distinct parents' weights
    group: torch.Tensor  # (P,) long: each member's parent
    rows: torch.Tensor  # (P, k) long: output index of each changed entry
    cols: torch.Tensor  # (P, k) long: input index of each changed entry
    delta: torch.Tensor  # (P, k): child minus parent at that entry
    bias: torch.Tensor  # (P, out)

    @classmethod
    def of_children(cls, base: torch.Tensor, group: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        """The form of members whose dense weights are ``weight`` (P, out, in), children of base[group]."""
        changed = (weight != base[group]).flatten(1)  # (P, out*in)
        counts = changed.sum(1)
        k = max(int(counts.max()), 1) if len(counts) else 1
        # Each member's changed positions first, in index order (a stable sort of the flags), then padding.
        order = torch.sort(changed.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :k]  # (P, k)
        real = torch.arange(k, device=weight.device) < counts[:, None]  # (P, k)
        flat = weight.flatten(1)
        delta = torch.where(real, flat.gather(1, order) - base[group].flatten(1).gather(1, order), 0.0)
        order = torch.where(real, order, 0)
        cols_per_row = weight.shape[-1]
        return cls(base, group, order // cols_per_row, order % cols_per_row, delta, bias)

    @cached_property
    def _plan(self) -> SharedPlan:
        return SharedPlan.of(self.group, self.base.shape[0])

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        p, n, _ = x.shape
        y = shared_linear(x, self.base, self._plan)  # (P, N, out): one matmul per parent
        k = self.cols.shape[1]
        taps = x.gather(2, self.cols[:, None, :].expand(p, n, k)) * self.delta[:, None, :]  # (P, N, k)
        y = y.scatter_add(2, self.rows[:, None, :].expand(p, n, k), taps)
        return y + self.bias.unsqueeze(1)  # (P, N, out)

    def materialize(self) -> DenseLinear:
        """Each member's dense weight, base plus its changes."""
        weight = self.base[self.group].flatten(1)
        weight = weight.scatter_add(1, self.rows * self.base.shape[-1] + self.cols, self.delta)
        return DenseLinear(weight.reshape(len(self), *self.base.shape[1:]), self.bias)

    def select(self, members: torch.Tensor) -> SparseLinear:
        return SparseLinear(
            self.base, self.group[members], self.rows[members], self.cols[members], self.delta[members],
            self.bias[members],
        )  # fmt: skip

    def __len__(self) -> int:
        return self.group.shape[0]
