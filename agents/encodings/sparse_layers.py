"""Layer form of sparsely mutated children: the parent's shared forward plus each child's changes.

A sparse child (``SparseEncoding``, Whitaker & Whitley 2023) differs from its parent in k = p * n
entries of a layer, so x W_i^T = x W0^T + sum over its changed entries (o, j) of delta_oj * x_j:
one matmul per distinct parent (``shared_forward``) plus one sparse product of the members'
changes (a block-diagonal CSR matrix, k multiply-adds per row). Measured on the Nature CNN's fc
layer (P=32, one input row each, one thread): at p = 0.01 the shared form takes about a sixth of
the dense batched matmul's time, at p = 0.1 about as long (0.8-0.95x), at p = 0.3 several times
longer (``python -m evoboard.suite.speed.forwards cnn``, docs/atari-speed.md). A gathered correction
(``gather`` then ``scatter_add``) was 3-6x slower than the CSR product. Convolutions stay dense:
a conv's correction gathers shifted input windows (an unfolded input's rows), measured 2-40x
slower than the grouped conv of every member's own kernels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import torch

from evoboard.agents.encodings.shared_forward import SharedPlan, shared_linear
from evoboard.agents.layers import DenseLinear, LayerParams

SHARED_MIN = 32_768
"""Linear weights of at least this many entries run shared (smaller ones are cheap to run dense per member)."""
SHARED_DENSITY_MAX = 0.1
"""The largest density run shared: the shared form and the dense matmul cross between 0.1 and 0.3 on the fc
layer above; at 0.1, the encoding's default, the two take about as long."""


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
        changes = []  # per member: flat indices (row-major order) and child minus parent there
        parents = base.flatten(1)  # (K, out*in)
        for w, parent in zip(weight.flatten(1), group.tolist(), strict=True):
            b = parents[parent]
            where = torch.nonzero(w != b).flatten()  # ascending
            changes.append((where, w[where] - b[where]))
        k = max([len(where) for where, _ in changes] + [1])
        flat = torch.zeros(len(changes), k, dtype=torch.long, device=weight.device)  # (P, k), padding at 0
        delta = torch.zeros(len(changes), k, dtype=weight.dtype, device=weight.device)  # (P, k), padding 0
        for m, (where, values) in enumerate(changes):
            flat[m, : len(where)], delta[m, : len(where)] = where, values
        cols = weight.shape[-1]
        return cls(base, group, flat // cols, flat % cols, delta, bias)

    @cached_property
    def _plan(self) -> SharedPlan:
        return SharedPlan.of(self.group, self.base.shape[0])

    @cached_property
    def _changes(self) -> torch.Tensor:
        """Every member's changes as one block-diagonal CSR matrix (P*out, P*in) in float32, made once per form.

        Entries keep their row-major order, so each output's correction sums its entries in one fixed order
        whoever shares the batch. float32 also under bf16: torch's CSR product has no bf16 kernel on CPU.
        """
        p, out, cols = len(self), self.base.shape[1], self.base.shape[2]
        real = self.delta != 0  # padding has delta 0; a changed entry never does (child != parent there)
        member = torch.arange(p, device=self.delta.device)[:, None]
        rows = (self.rows + member * out)[real]  # ascending: members in order, each in row-major order
        crow = torch.zeros(p * out + 1, dtype=torch.int64, device=rows.device)
        crow[1:] = torch.bincount(rows, minlength=p * out).cumsum(0)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": said once per form, not for the user
            warnings.simplefilter("ignore")
            return torch.sparse_csr_tensor(
                crow, (self.cols + member * cols)[real], self.delta[real].float(), size=(p * out, p * cols),
                check_invariants=False,
            )  # fmt: skip

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        p, n, d = x.shape
        y = shared_linear(x, self.base, self._plan)  # (P, N, out): one matmul per parent
        stacked = x.float().transpose(1, 2).reshape(p * d, n)  # (P*in, N): members stacked
        correction = (self._changes @ stacked).reshape(p, -1, n).transpose(1, 2)  # (P, N, out)
        return y + correction.to(y.dtype) + self.bias.unsqueeze(1)

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
