"""Factorized low-rank encoding: each chosen weight matrix is W = U V^T and only U and V evolve.

Garbus & Pollack 2025 (low-rank factorized neuroevolution): a rank-r factorization shrinks
the search space of an (out, in) matrix from out*in to r*(out+in) numbers, so a GA searches
far fewer dimensions and a forward costs r*(in+out) per token instead of out*in. Conv
kernels are factorized as (out, in*k*k) matrices and embedding tables as (vocab, width),
with their own ranks. Biases and unfactorized weights stay dense.

Defaults follow their code, Jevo.jl (github.com/jarbus/Jevo.jl), except where a fair comparison
with ``dense`` needs otherwise (each departure is a setting):
- the factor init splits a product std evenly between U and V (``factor_std`` says why that gives
  the same GA runs as Jevo.jl's uneven split, ``create_kaiming_nfactor_init``). U V^T starts with
  std ``factor_gain * s`` for a layer of dense init std s. Default 1: it starts where ``dense``
  starts, so the two differ only in the encoding. ``factor_gain = sqrt(2)`` is Jevo.jl's Kaiming
  product (variance 2/in). Jevo.jl gives both factors a full Kaiming std when in > out (its "core
  matrix" branch, product variance 4/in); evoboard does not copy that.
- equal steps (``base``; measured by ``evoboard bench mutation-scale``): a child's U V^T moves by
  sigma x its init std per entry, as ``dense``'s W does. Both factors move, each adding the same
  variance to the product (dU V^T + U dV^T), so each factor moves by sigma / sqrt(2) times its own
  std. Measured before this (HalfCheetah MLP, sigma 0.1): U V^T moved 2.0x dense's W per entry,
  sqrt(2) from the Kaiming gain and sqrt(2) from the two factors. Jevo.jl mutates factors by
  sqrt(mr) of their std (``nback_mutate``): ``factor_sigma = 0.1`` with ``factor_gain = sqrt(2)``.
- the output layer (``LayerSpec.output``: an RL policy's action layer, the char transformer's head)
  stays dense, as in every Jevo.jl Atari and CarRacing config (``experiments/*/02-*-lora-*/0/config.jl``:
  the last ``Dense`` has no rank); ``factorize_output`` factorizes it too. Jevo.jl's char models
  decode through the tied embedding at rank 32; evoboard's transformer has an untied head, kept dense.
- embedding rank 32 (``experiments/tinystories/02-relu-lora-01-06-25/0/config.jl``).
LayerNorm follows the convention shared by every encoding (``base``): frozen unless ``evolve_norms``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from evoboard.agents.encodings.base import EncodingOptions, SeedChainEncoding, noise_rows
from evoboard.agents.layers import (
    DenseConv2d,
    DenseEmbedding,
    DenseLinear,
    LayerParams,
    LayerSpec,
    TensorSpec,
    member_conv,
)
from evoboard.options import bounded

FACTORIZABLE = ("linear", "conv2d", "embedding")


@dataclass
class LowRankOptions(EncodingOptions):
    """Settings of the factorized low-rank encoding (plus the shared ``sigma`` and ``evolve_norms``)."""

    rank: int = bounded(4, ge=1)
    """Rank r of factorized linear weights W = U V^T."""
    conv_rank: int | None = bounded(None, ge=1)
    """Rank of factorized conv kernels, seen as (out, in*k*k) matrices; default: rank."""
    embedding_rank: int | None = bounded(32, ge=1)
    """Rank of factorized embedding tables (vocab, width), 32 as in Jevo.jl; None: rank."""
    factorize: tuple[str, ...] = ()
    """Layers to factorize, by name; empty: every linear, conv and embedding layer whose factors are smaller."""
    factorize_output: bool = False
    """With no names in factorize, factorize a policy's output layer too; False keeps it dense, as Jevo.jl."""
    factor_gain: float = bounded(1.0, gt=0, finite=True)
    """Init std of U V^T over the layer's dense init std: 1 starts where dense starts; sqrt(2) is Jevo.jl's Kaiming."""
    factor_sigma: float | None = bounded(None, gt=0, finite=True)
    """Mutation std of U and V relative to their init std; None: sigma / sqrt(2), dense's step on U V^T."""
    plain_sigma: float | None = bounded(None, gt=0, finite=True)
    """Mutation std of biases, unfactorized weights and norms, relative to their scale; None: sigma."""

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


def factor_std(weight_std: float, rank: int, gain: float) -> float:
    """Init std of U and V so that each entry of U V^T (a sum of r products) has std ``gain * weight_std``.

    Jevo.jl splits the same product std unevenly (Var(U) = g/r, Var(V) = g/in). W = U V^T is
    unchanged by U -> aU, V -> V/a, and so is a mutation relative to each factor's std, so
    under the shared convention a GA run is the same function of its seeds for either split
    (up to rounding). The even split keeps U and V at one scale, which an evolution strategy,
    stepping by one absolute es_sigma in search space, needs (Jevo.jl's split left a 4-generation
    SNES on digits at chance).
    """
    return math.sqrt(gain * weight_std / math.sqrt(rank))


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
    uncorrelated_noise = independent_noise = True  # N(0, I) in the factors and biases (its search vector)

    def __init__(self, policy, options: LowRankOptions, device: torch.device):
        self.ranks = plan_factorization(policy.layers, options)  # layer name -> rank, factorized layers only
        super().__init__(policy, options, device)
        self._mutation_scale = self._relative_scale()

    def tensor_shapes(self) -> list[tuple[str, TensorSpec]]:
        shapes = []
        for layer in self.evolved_layers():
            weight, *rest = layer.tensors()
            if layer.name in self.ranks:
                r = self.ranks[layer.name]
                rows, cols = layer.matrix_shape
                u_std = v_std = factor_std(weight.std, r, self.options.factor_gain)
                # Stored rank-major, (r, rows), and viewed transposed: the forward's bmm then reads the
                # factors with unit stride (3-4x faster than r-fastest storage for one row per member).
                weight_specs = [TensorSpec("U", (r, rows), u_std), TensorSpec("V", (r, cols), v_std)]
            else:
                weight_specs = [weight]
            shapes += [(layer.name, t) for t in weight_specs + rest]
        return shapes

    def _relative_scale(self) -> torch.Tensor:
        """Per-dimension mutation std: factor_sigma (or sigma / sqrt(2): both factors move, and U V^T then
        moves by sigma x its init std, as dense's W does) on U and V; plain_sigma (or sigma) elsewhere."""
        o = self.options
        factor = self.mutation_scale(o.factor_sigma if o.factor_sigma is not None else o.sigma / math.sqrt(2))
        plain = self.mutation_scale(o.plain_sigma if o.plain_sigma is not None else o.sigma)
        is_factor = torch.zeros(self.search_dims, dtype=torch.bool, device=self.device)
        for block in self.blocks:
            is_factor[block.start : block.stop] = block.role in ("U", "V")
        return torch.where(is_factor, factor, plain)

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int], out: torch.Tensor | None = None) -> torch.Tensor:
        eps = noise_rows(seeds, self.search_dims, self.device, out=out)  # (C, D), in ``out`` when given
        return eps.mul_(self._mutation_scale).add_(parents)  # in place: the same values, two fewer (C, D) buffers

    def form(self, layer: LayerSpec, tensors: dict[str, torch.Tensor] | None, p: int) -> LayerParams:
        if layer.name not in self.ranks:
            return super().form(layer, tensors, p)
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
    factorized, except a policy's output layer unless ``factorize_output``; a rank larger
    than min(rows, cols) of every such layer is an error.
    """
    by_name = {layer.name: layer for layer in layers}
    candidates = [
        layer for layer in layers if layer.kind in FACTORIZABLE and (options.factorize_output or not layer.output)
    ]
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
