"""Factorized low-rank encoding: each chosen weight matrix is W = U V^T and only U and V evolve.

Garbus & Pollack 2025 (low-rank factorized neuroevolution): a rank-r factorization shrinks
the search space of an (out, in) matrix from out*in to r*(out+in) numbers, so a GA searches
far fewer dimensions and a forward costs r*(in+out) per token instead of out*in. Conv
kernels are factorized as (out, in*k*k) matrices and embedding tables as (vocab, width),
with their own ranks. Biases and unfactorized weights stay dense; LayerNorm stays at its
init (gain 1, bias 0) and is not searched. Mutation rates are relative to each tensor's
init scale, as in their code: ``factor_sigma`` (sqrt(0.01)) times a factor's init std,
``plain_sigma`` (0.01) times the layer's weight std for dense tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agents.encodings.base import SeedChainEncoding, block_views
from agents.layers import (
    DenseConv2d,
    DenseEmbedding,
    DenseLinear,
    DenseNorm,
    LayerParams,
    LayerSpec,
    PopulationParams,
    TensorSpec,
    dense_form,
    member_conv,
)
from evoboard.options import Checked, bounded

FACTORIZABLE = ("linear", "conv2d", "embedding")


@dataclass
class LowRankOptions(Checked):
    """Settings of the factorized low-rank encoding."""

    rank: int = bounded(4, ge=1)
    """Rank r of factorized linear weights W = U V^T."""
    conv_rank: int | None = bounded(None, ge=1)
    """Rank of factorized conv kernels, seen as (out, in*k*k) matrices; default: rank."""
    embedding_rank: int | None = bounded(None, ge=1)
    """Rank of factorized embedding tables (vocab, width); default: rank."""
    factorize: tuple[str, ...] = ()
    """Layers to factorize, by name; empty: every linear, conv and embedding layer whose factors are smaller."""
    factor_sigma: float = bounded(0.1, gt=0)
    """Mutation std of U and V relative to their init std (Garbus & Pollack: sqrt(0.01))."""
    plain_sigma: float = bounded(0.01, gt=0)
    """Mutation std of biases and unfactorized weights relative to the layer's init weight std."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.factorize = tuple(self.factorize)

    def rank_for(self, kind: str) -> int:
        """The rank this layer kind is factorized with."""
        if kind == "conv2d" and self.conv_rank is not None:
            return self.conv_rank
        if kind == "embedding" and self.embedding_rank is not None:
            return self.embedding_rank
        return self.rank


def factor_std(weight_std: float, rank: int) -> float:
    """Init std of U and V so that each entry of U V^T (a sum of r products) has std ``weight_std``."""
    return math.sqrt(weight_std / math.sqrt(rank))


@dataclass(frozen=True)
class FactorizedLinear(LayerParams):
    """W = U V^T per member, applied as (x V) U^T: cost r(in+out) per row, W never formed."""

    U: torch.Tensor  # (P, out, r)
    V: torch.Tensor  # (P, in, r)
    bias: torch.Tensor  # (P, out)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), torch.bmm(x, self.V), self.U.transpose(1, 2))  # (P, N, out)

    def materialize(self) -> DenseLinear:
        """The same layer with each member's W = U V^T formed (for tests and export)."""
        return DenseLinear(torch.bmm(self.U, self.V.transpose(1, 2)), self.bias)

    def select(self, members: torch.Tensor) -> FactorizedLinear:
        return FactorizedLinear(self.U[members], self.V[members], self.bias[members])

    def __len__(self) -> int:
        return self.U.shape[0]


@dataclass(frozen=True)
class FactorizedConv2d(LayerParams):
    """Kernel (out, in*k*k) = U V^T: r filters V (one grouped conv), then a 1x1 mix by U.

    conv(x, U V^T)[o] = sum_j U[o, j] conv(x, V_j) because convolution is linear in the
    kernel, so the (P, out, in, k, k) kernels are never formed.
    """

    U: torch.Tensor  # (P, out, r)
    V: torch.Tensor  # (P, in*k*k, r), rows in (in, kh, kw) order like weight.reshape(out, -1)
    bias: torch.Tensor  # (P, out)
    kernel: int
    stride: int = 1

    def conv2d(self, x: torch.Tensor) -> torch.Tensor:
        p, n, c, h, w = x.shape
        r = self.U.shape[-1]
        filters = self.V.transpose(1, 2).reshape(p * r, c, self.kernel, self.kernel)  # member i's r filters
        low = member_conv(x, filters, None, self.stride)  # (P, N, r, H', W')
        hh, ww = low.shape[-2:]
        low = low.reshape(p, n, r, hh * ww)  # (P, N, r, H'W')
        y = torch.matmul(self.U.unsqueeze(1), low) + self.bias[:, None, :, None]  # (P, N, out, H'W')
        return y.reshape(p, n, -1, hh, ww)

    def materialize(self) -> DenseConv2d:
        p, out = self.U.shape[:2]
        weight = torch.bmm(self.U, self.V.transpose(1, 2)).reshape(p, out, -1, self.kernel, self.kernel)
        return DenseConv2d(weight, self.bias, self.stride)

    def select(self, members: torch.Tensor) -> FactorizedConv2d:
        return FactorizedConv2d(self.U[members], self.V[members], self.bias[members], self.kernel, self.stride)

    def __len__(self) -> int:
        return self.U.shape[0]


@dataclass(frozen=True)
class FactorizedEmbedding(LayerParams):
    """Table (vocab, width) = U V^T: look up rows of U, then project by V^T."""

    U: torch.Tensor  # (P, vocab, r)
    V: torch.Tensor  # (P, width, r)

    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        p, n, t = tokens.shape
        rows = torch.gather(self.U, 1, tokens.reshape(p, n * t, 1).expand(-1, -1, self.U.shape[-1]))  # (P, NT, r)
        return torch.bmm(rows, self.V.transpose(1, 2)).reshape(p, n, t, -1)

    def materialize(self) -> DenseEmbedding:
        return DenseEmbedding(torch.bmm(self.U, self.V.transpose(1, 2)))

    def select(self, members: torch.Tensor) -> FactorizedEmbedding:
        return FactorizedEmbedding(self.U[members], self.V[members])

    def __len__(self) -> int:
        return self.U.shape[0]


class LowRankEncoding(SeedChainEncoding):
    """Factors U, V of the chosen layers, plus dense biases and unfactorized weights, evolve."""

    name = "lowrank"
    Options = LowRankOptions

    def __init__(self, policy, options: LowRankOptions, device: torch.device):
        self.ranks = plan_factorization(policy.layers, options)  # layer name -> rank, factorized layers only
        super().__init__(policy, options, device)
        self._mutation_scale = self._relative_scale()

    def tensor_shapes(self) -> list[tuple[str, TensorSpec]]:
        shapes = []
        for layer in self.policy.layers:
            if layer.kind == "norm":
                continue  # not searched: stays at its init
            weight, *rest = layer.tensors()
            if layer.name in self.ranks:
                r = self.ranks[layer.name]
                rows, cols = layer.matrix_shape
                std = factor_std(weight.std, r)
                # Stored rank-major, (r, rows), and viewed transposed: the forward's bmm then reads the
                # factors with unit stride (3-4x faster than r-fastest storage for one row per member).
                weight_specs = [TensorSpec("U", (r, rows), std), TensorSpec("V", (r, cols), std)]
            else:
                weight_specs = [weight]
            shapes += [(layer.name, t) for t in weight_specs + rest]
        return shapes

    def _relative_scale(self) -> torch.Tensor:
        """Per-dimension mutation std: factor_sigma * factor std, plain_sigma * the layer's weight std."""
        weight_std = {layer.name: layer.tensors()[0].std for layer in self.policy.layers}
        scale = torch.empty(self.search_dims, device=self.device)
        for block in self.blocks:
            if block.role in ("U", "V"):
                scale[block.start : block.stop] = self.options.factor_sigma * block.std
            else:
                scale[block.start : block.stop] = self.options.plain_sigma * weight_std[block.layer]
        return scale

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        eps = self.noises(seeds)  # (C, D)
        return eps.mul_(self._mutation_scale).add_(parents)  # in place: the same values, two fewer (C, D) buffers

    def to_params(self, z: torch.Tensor) -> PopulationParams:
        views = block_views(self.blocks, z)
        return PopulationParams(
            {layer.name: self._form(layer, views.get(layer.name), len(z)) for layer in self.policy.layers}
        )

    def _form(self, layer: LayerSpec, tensors: dict[str, torch.Tensor] | None, p: int) -> LayerParams:
        if layer.kind == "norm":
            width = layer.out_features
            ones = torch.ones(1, width, device=self.device).expand(p, width)
            return DenseNorm(ones, torch.zeros(1, width, device=self.device).expand(p, width))
        if layer.name not in self.ranks:
            return dense_form(layer, tensors)
        u, v = tensors["U"].transpose(1, 2), tensors["V"].transpose(1, 2)  # (P, rows, r), (P, cols, r)
        if layer.kind == "linear":
            return FactorizedLinear(u, v, tensors["bias"])
        if layer.kind == "conv2d":
            return FactorizedConv2d(u, v, tensors["bias"], layer.kernel, layer.stride)
        return FactorizedEmbedding(u, v)


def plan_factorization(layers: Sequence[LayerSpec], options: LowRankOptions) -> dict[str, int]:
    """Which layers are factorized and with what rank; ValueError for names or ranks that cannot work.

    Named layers must exist, be linear, conv or embedding, and have rank <= min(rows, cols).
    With no names, every such layer whose factors hold fewer numbers than its weight is
    factorized; a rank larger than min(rows, cols) of every layer is an error.
    """
    by_name = {layer.name: layer for layer in layers}
    candidates = [layer for layer in layers if layer.kind in FACTORIZABLE]
    if options.factorize:
        plan = {}
        for name in options.factorize:
            if name not in by_name:
                raise ValueError(f"unknown layer {name!r} in factorize; layers: {', '.join(by_name)}")
            layer = by_name[name]
            if layer.kind not in FACTORIZABLE:
                raise ValueError(f"layer {name!r} is a {layer.kind} layer; factorize takes {', '.join(FACTORIZABLE)}")
            r = options.rank_for(layer.kind)
            if r > min(layer.matrix_shape):
                raise ValueError(
                    f"rank {r} of layer {name!r} exceeds min{layer.matrix_shape} = {min(layer.matrix_shape)}"
                )
            plan[name] = r
        return plan
    if candidates and all(options.rank_for(layer.kind) > min(layer.matrix_shape) for layer in candidates):
        sizes = ", ".join(f"{layer.name} {min(layer.matrix_shape)}" for layer in candidates)
        raise ValueError(f"rank exceeds min(out, in) of every layer ({sizes})")
    plan = {}
    for layer in candidates:
        rows, cols = layer.matrix_shape
        r = options.rank_for(layer.kind)
        if r <= min(rows, cols) and r * (rows + cols) < rows * cols:
            plan[layer.name] = r
    return plan
