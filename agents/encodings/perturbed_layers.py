"""Layer forms of low-rank perturbed members: each child's weights are its parent's dense W0 plus a rank-r
correction, so children of one parent share one matmul with W0 (``LowRankPerturbEncoding`` builds them;
the shared product, padded so a member's bits do not depend on its batch, is ``shared_forward``'s).

Linear: x W0^T + ((x B) A^T) * scale; conv: the shared kernel's grouped conv plus the low-rank
correction of the kernel as an (out, in*k*k) matrix; embedding: rows of W0 plus rows of A B^T.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from evoboard.agents.encodings.shared_forward import SharedPlan, shared_conv2d, shared_linear
from evoboard.agents.layers import DenseConv2d, DenseEmbedding, DenseLinear, LayerParams, member_conv


def low_rank_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A B^T for a (..., rows, r) and b (..., cols, r) -> (..., rows, cols), as a sum of r outer products.

    Elementwise products and sums, not a matmul: every entry is computed the same way for
    any batch size or order, so a child replayed alone equals it mutated in a batch, bit for bit.
    """
    out = a[..., :, None, 0] * b[..., None, :, 0]
    for j in range(1, a.shape[-1]):
        out = out + a[..., :, None, j] * b[..., None, :, j]
    return out


@dataclass(frozen=True)
class PerturbedLinear(LayerParams):
    """Members i = 1..P with weight W_i = base[group[i]] + scale * A_i B_i^T, never formed.

    Why this is correct: x W_i^T = x base[g]^T + scale * (x B_i) A_i^T by distributivity, so
    each member's output is its parent's shared product plus a rank-r correction. Members
    are sorted by base so every base multiplies one contiguous block of rows (one matmul
    per distinct parent: K weight reads instead of P), the results are put back in member
    order, and the corrections run as two small batched matmuls of cost r(in+out) per row.
    A member without a perturbation (an elite, a parent) has A = 0.
    """

    base: torch.Tensor  # (K, out, in): distinct parents' dense weights
    group: torch.Tensor  # (P,) long: each member's base
    A: torch.Tensor  # (P, out, r)
    B: torch.Tensor  # (P, in, r)
    bias: torch.Tensor  # (P, out)
    scale: float

    @cached_property
    def _plan(self) -> SharedPlan:
        return SharedPlan.of(self.group, self.base.shape[0])

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        shared = shared_linear(x, self.base, self._plan)  # (P, N, out): one matmul per parent
        y = torch.baddbmm(shared, torch.bmm(x, self.B), self.A.transpose(1, 2), alpha=self.scale)
        return y + self.bias.unsqueeze(1)  # (P, N, out)

    def materialize(self) -> DenseLinear:
        """Each member's dense weight, formed exactly as the encoding folds it into a child."""
        return DenseLinear(self.base[self.group] + self.scale * low_rank_product(self.A, self.B), self.bias)

    def select(self, members: torch.Tensor) -> PerturbedLinear:
        return PerturbedLinear(
            self.base, self.group[members], self.A[members], self.B[members], self.bias[members], self.scale
        )

    def __len__(self) -> int:
        return self.group.shape[0]


@dataclass(frozen=True)
class PerturbedConv2d(LayerParams):
    """Kernels base[group[i]] + scale * (A_i B_i^T reshaped): one shared conv per parent plus a rank-r conv.

    Convolution is linear in the kernel, so conv(x, K0 + s A B^T) = conv(x, K0) + s * A mixes
    conv(x, B^T as r filters); as in ``PerturbedLinear`` the shared part runs once per parent.
    """

    base: torch.Tensor  # (K, out, in, k, k)
    group: torch.Tensor  # (P,)
    A: torch.Tensor  # (P, out, r)
    B: torch.Tensor  # (P, in*k*k, r)
    bias: torch.Tensor  # (P, out)
    scale: float
    stride: int = 1

    @cached_property
    def _plan(self) -> SharedPlan:
        return SharedPlan.of(self.group, self.base.shape[0])

    @cached_property
    def _filters(self) -> torch.Tensor:
        """B^T as r filters per member, (P*r, in, k, k), made contiguous once rather than every step."""
        return self.B.transpose(1, 2).reshape(-1, *self.base.shape[2:])

    def conv2d(self, x: torch.Tensor) -> torch.Tensor:
        p, n = x.shape[:2]
        shared = shared_conv2d(x, self.base, self._plan, self.stride)  # (P, N, out, H', W'): one conv per parent
        r = self.A.shape[-1]
        low = member_conv(x, self._filters, None, self.stride)  # (P, N, r, H', W')
        hh, ww = low.shape[-2:]
        low = low.reshape(p, n, r, hh * ww)  # (P, N, r, H'W')
        correction = torch.matmul(self.A.unsqueeze(1), low).reshape(p, n, -1, hh, ww)  # (P, N, out, H', W')
        return shared + self.scale * correction + self.bias[:, None, :, None, None]

    def materialize(self) -> DenseConv2d:
        delta = low_rank_product(self.A, self.B).reshape(len(self), *self.base.shape[1:])
        return DenseConv2d(self.base[self.group] + self.scale * delta, self.bias, self.stride)

    def select(self, members: torch.Tensor) -> PerturbedConv2d:
        return PerturbedConv2d(
            self.base,
            self.group[members],
            self.A[members],
            self.B[members],
            self.bias[members],
            self.scale,
            self.stride,
        )

    def __len__(self) -> int:
        return self.group.shape[0]


@dataclass(frozen=True)
class PerturbedEmbedding(LayerParams):
    """Tables base[group[i]] + scale * A_i B_i^T: shared rows looked up, plus A's rows times B^T."""

    base: torch.Tensor  # (K, vocab, width)
    group: torch.Tensor  # (P,)
    A: torch.Tensor  # (P, vocab, r)
    B: torch.Tensor  # (P, width, r)
    scale: float

    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        p, n, t = tokens.shape
        k, vocab, width = self.base.shape
        flat = tokens.reshape(p, n * t)
        shared = self.base.reshape(k * vocab, width)[self.group[:, None] * vocab + flat]  # (P, NT, width)
        rows = torch.gather(self.A, 1, flat.unsqueeze(-1).expand(-1, -1, self.A.shape[-1]))  # (P, NT, r)
        return torch.baddbmm(shared, rows, self.B.transpose(1, 2), alpha=self.scale).reshape(p, n, t, width)

    def materialize(self) -> DenseEmbedding:
        return DenseEmbedding(self.base[self.group] + self.scale * low_rank_product(self.A, self.B))

    def select(self, members: torch.Tensor) -> PerturbedEmbedding:
        return PerturbedEmbedding(self.base, self.group[members], self.A[members], self.B[members], self.scale)

    def __len__(self) -> int:
        return self.group.shape[0]
