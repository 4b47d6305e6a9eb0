"""Layer forms of low-rank perturbed members: each child's weights are its parent's dense W0 plus a rank-r
correction, so children of one parent share one matmul with W0 (``LowRankPerturbEncoding`` builds them).

Linear: x W0^T + ((x B) A^T) * scale; conv: the shared kernel's grouped conv plus the low-rank
correction of the kernel as an (out, in*k*k) matrix; embedding: rows of W0 plus rows of A B^T.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

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


def _segments(group: torch.Tensor, bases: int) -> tuple[torch.Tensor | None, torch.Tensor | None, list[int]]:
    """Sort order that makes each base's members contiguous, its inverse, and the run lengths."""
    counts = torch.bincount(group, minlength=bases).tolist()
    order = torch.argsort(group, stable=True)
    if bool((order == torch.arange(len(group), device=group.device)).all()):
        return None, None, counts
    return order, torch.argsort(order), counts


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
    def _plan(self) -> tuple[torch.Tensor | None, torch.Tensor | None, list[int]]:
        return _segments(self.group, self.base.shape[0])

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        p, n, d = x.shape
        order, inverse, counts = self._plan
        xs = (x if order is None else x[order]).reshape(p * n, d)  # rows grouped by base
        if len(counts) == 1:
            shared = xs @ self.base[0].T  # (P*N, out): the whole population in one matmul
        else:
            shared = xs.new_empty(p * n, self.base.shape[1])
            start = 0
            for k, count in enumerate(counts):
                if count:
                    rows = slice(start * n, (start + count) * n)
                    torch.mm(xs[rows], self.base[k].T, out=shared[rows])
                    start += count
        shared = shared.reshape(p, n, -1)
        if inverse is not None:
            shared = shared[inverse]  # back to member order
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
    def _plan(self) -> tuple[torch.Tensor | None, torch.Tensor | None, list[int]]:
        return _segments(self.group, self.base.shape[0])

    def conv2d(self, x: torch.Tensor) -> torch.Tensor:
        p, n, c, h, w = x.shape
        order, inverse, counts = self._plan
        xs = x if order is None else x[order]
        parts, start = [], 0
        for k, count in enumerate(counts):
            if count:
                frames = xs[start : start + count].reshape(count * n, c, h, w)
                parts.append(F.conv2d(frames, self.base[k], stride=self.stride))  # one conv for all its children
                start += count
        shared = torch.cat(parts).reshape(p, n, *parts[0].shape[1:])  # (P, N, out, H', W')
        if inverse is not None:
            shared = shared[inverse]
        r, k = self.A.shape[-1], self.base.shape[-1]
        filters = self.B.transpose(1, 2).reshape(p * r, c, k, k)
        low = member_conv(x, filters, None, self.stride)  # (P, N, r, H', W')
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
