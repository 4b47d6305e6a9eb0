"""Low-rank perturbation encoding: dense weights, each child's mutation sigma * s * A B^T / sqrt(r).

Sarkar et al. 2025, "Evolution Strategies at the Hyperscale" (EGGROLL). Weights stay dense
and the whole lineage is searched, but every single mutation of a weight matrix is rank r:
A (out, r) and B (in, r) are standard normal, regenerated from the child's seed, so each
entry of A B^T / sqrt(r) has unit variance like dense Gaussian noise. Conv kernels are
perturbed as (out, in*k*k) matrices and embedding tables as (vocab, width). Biases (and
LayerNorm tensors, with ``evolve_norms``) get dense Gaussian noise. As in every evoboard
encoding (``base``), the step is sigma times each tensor's init std s; EGGROLL's sigma is
one absolute number. For the GA a lineage folds into dense weights:
a child's search vector is its parent's plus the formed perturbation, so grandchildren
mutate from it (an ES would instead accumulate the perturbations into its mean).

The payoff is the forward. Children of one parent share its dense weights W0, so the
population runs one shared matmul per parent plus each member's rank-r correction,
x W0^T + ((x B) A^T) * scale, instead of P distinct matmuls (see ``PerturbedLinear``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from agents.encodings.base import EncodingOptions, Genome, SeedChainEncoding, block_views, noise
from agents.layers import (
    DenseConv2d,
    DenseEmbedding,
    DenseLinear,
    LayerParams,
    LayerSpec,
    PopulationParams,
    member_conv,
)
from evoboard.options import bounded


@dataclass
class LowRankPerturbOptions(EncodingOptions):
    """Settings of the low-rank perturbation encoding (plus the shared ``sigma`` and ``evolve_norms``)."""

    perturb_rank: int = bounded(4, ge=1)
    """Rank r of each child's weight perturbation A B^T (per layer at most min(out, in))."""
    perturb_sigma: float | None = bounded(None, gt=0, finite=True)
    """Older name of sigma for this encoding; when set, it replaces sigma."""
    shared_min: int = bounded(32768, ge=0)
    """Weights of at least this many entries share one matmul per parent (smaller: dense per member; 0: all)."""


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


class LowRankPerturbEncoding(SeedChainEncoding):
    """Dense weights searched through rank-r mutations; children of a parent share its forward."""

    name = "lowrank-perturb"
    Options = LowRankPerturbOptions

    def __init__(self, policy, options: LowRankPerturbOptions, device: torch.device):
        self.ranks = perturbation_ranks(policy.layers, options.perturb_rank)
        super().__init__(policy, options, device)
        # Per-seed noise layout, block by block: A then B for a perturbed weight, dense noise
        # for every other tensor (biases, norms).
        self._pieces: list[tuple[str, str, int, int, int]] = []  # (layer, role, block start, noise start, noise size)
        offset = 0
        for block in self.blocks:
            size = self._noise_size(block.layer, block.role, block.size, block.shape)
            self._pieces.append((block.layer, block.role, block.start, offset, size))
            offset += size
        self.noise_dims = offset
        self.sigma = options.perturb_sigma if options.perturb_sigma is not None else options.sigma
        self._weight_scale = {b.layer: b.scale for b in self.blocks if b.role == "weight"}
        self._mutation_scale = self.mutation_scale(self.sigma)  # (D,): sigma * each tensor's scale

    def _noise_size(self, layer: str, role: str, size: int, shape: tuple[int, ...]) -> int:
        if role == "weight" and layer in self.ranks:
            rows = shape[0]
            return self.ranks[layer] * (rows + size // rows)
        return size

    def scale(self, layer: str) -> float:
        """sigma * s / sqrt(r) of a layer's weight perturbation, s its init std."""
        return self.sigma * self._weight_scale[layer] / math.sqrt(self.ranks[layer])

    def factors(self, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """A (rows, r) and B (cols, r) of every perturbed weight, from the child's seed alone."""
        return self._factors(noise(seed, self.noise_dims, self.device))

    def _factors(self, eps: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = {}
        for block, (layer, role, _, at, size) in zip(self.blocks, self._pieces, strict=True):
            if role == "weight" and layer in self.ranks:
                r, rows = self.ranks[layer], block.shape[0]
                a = eps[at : at + rows * r].reshape(rows, r)
                out[layer] = (a, eps[at + rows * r : at + size].reshape(-1, r))
        return out

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        children = torch.empty_like(parents)  # (C, D): every block is written below
        for c, seed in enumerate(seeds):
            self._fold_into(children[c], parents[c], noise(seed, self.noise_dims, self.device))
        return children

    def direction(self, seed: int) -> torch.Tensor:
        """The rank-r noise of ``seed`` (D,), rescaled to unit variance per entry (EGGROLL's estimator holds)."""
        zero = torch.zeros(1, self.search_dims, device=self.device)
        return self.mutate(zero, [seed])[0] / self._mutation_scale

    def _fold_into(self, child: torch.Tensor, parent: torch.Tensor, eps: torch.Tensor, only=None) -> None:
        """child = parent + the mutation drawn as ``eps``, block by block (D,); only blocks numbered in ``only``.

        Each entry is computed the same way alone or in a batch, so a lazily folded parent
        equals the one a batched mutation would have made, bit for bit.
        """
        factors = self._factors(eps)
        for j, (block, (layer, role, start, at, size)) in enumerate(zip(self.blocks, self._pieces, strict=True)):
            if only is not None and j not in only:
                continue
            stop = start + block.size
            if role == "weight" and layer in self.ranks:
                delta = self.scale(layer) * low_rank_product(*factors[layer])  # (rows, cols)
                child[start:stop] = parent[start:stop] + delta.reshape(-1)
            else:
                child[start:stop] = parent[start:stop] + (self.sigma * block.scale) * eps[at : at + size]

    def decode(self, genomes: Sequence[Genome]) -> PopulationParams:
        """Shared-base perturbed forms for large weights when members share parents, else dense forms.

        A child not yet decoded is (its parent's weights, its seed); anything cached (elites,
        re-evaluated candidates) is its own base with no perturbation. Children are not folded
        into dense weights here: each is cached as its parent and noise (drawn once), and
        folded only if it is asked for again, as a parent or a re-evaluated candidate.
        """
        genomes = [tuple(g) for g in genomes]
        self._fold_cached(genomes)
        keys: dict[Genome, int] = {}
        group, seeds = [], []
        for g in genomes:
            fresh = g not in self._cache and len(g) > 1
            key = g[:-1] if fresh else g
            group.append(keys.setdefault(key, len(keys)))
            seeds.append(g[-1] if fresh else None)
        shared = {
            layer.name
            for layer in self.policy.layers
            if layer.name in self.ranks and self._weight_size(layer) >= self.options.shared_min
        }
        if not shared or 2 * len(keys) > len(genomes):
            return super().decode(genomes)
        bases = torch.stack([self.vector(k) for k in keys])  # (K, D), read before the cache is renewed
        eps = [None if s is None else noise(s, self.noise_dims, self.device) for s in seeds]  # once per child
        # Each member's own values of the tensors that run dense (small layers, biases); the
        # shared weights' blocks of z stay unwritten: their forms read the bases and factors.
        own = {j for j, block in enumerate(self.blocks) if not (block.layer in shared and block.role == "weight")}
        z = torch.empty(len(genomes), self.search_dims, device=self.device)  # (P, D), only ``own`` blocks written
        for i, (k, e) in enumerate(zip(group, eps, strict=True)):
            if e is None:
                for j in own:
                    z[i, self.blocks[j].start : self.blocks[j].stop] = bases[
                        k, self.blocks[j].start : self.blocks[j].stop
                    ]
            else:
                self._fold_into(z[i], bases[k], e, own)
        members = zip(genomes, group, eps, strict=True)
        self._remember({g: bases[k] if e is None else Fold(self, bases[k], e) for g, k, e in members})
        return self._perturbed(bases, torch.tensor(group, device=self.device), eps, self.to_params(z), shared)

    def _fold_cached(self, genomes: list[Genome]) -> None:
        """Fold the lazily cached members among ``genomes``, so every cached entry read is a vector."""
        for g in genomes:
            if isinstance(self._cache.get(g), Fold):
                self._cache[g] = self._cache[g].vector()

    def _remember(self, decoded: dict) -> None:
        """The base class's cache of the last two decodes, with children kept as folds."""
        self._cache = {**self._last, **decoded}
        self._last = decoded

    def vector(self, genome: Genome) -> torch.Tensor:
        entry = self._cache.get(tuple(genome))
        return entry.vector() if isinstance(entry, Fold) else super().vector(genome)

    def _perturbed(
        self,
        bases: torch.Tensor,
        group: torch.Tensor,
        eps: list[torch.Tensor | None],
        dense: PopulationParams,
        shared: set[str],
    ) -> PopulationParams:
        base_views = block_views(self.blocks, bases)
        factors = [self._factors(e) if e is not None else None for e in eps]
        params = PopulationParams()
        for layer in self.policy.layers:
            if layer.name not in shared:
                params[layer.name] = dense[layer.name]
                continue
            a, b = self._stack_factors(layer, factors)
            base, form, scale = base_views[layer.name]["weight"], dense[layer.name], self.scale(layer.name)
            if layer.kind == "linear":
                params[layer.name] = PerturbedLinear(base, group, a, b, form.bias, scale)
            elif layer.kind == "conv2d":
                params[layer.name] = PerturbedConv2d(base, group, a, b, form.bias, scale, layer.stride)
            else:
                params[layer.name] = PerturbedEmbedding(base, group, a, b, scale)
        return params

    @staticmethod
    def _weight_size(layer: LayerSpec) -> int:
        rows, cols = layer.matrix_shape
        return rows * cols

    def _stack_factors(self, layer: LayerSpec, factors: list) -> tuple[torch.Tensor, torch.Tensor]:
        """A (P, rows, r) and B (P, cols, r); zeros for members that carry no new mutation."""
        rows, cols = layer.matrix_shape
        r = self.ranks[layer.name]
        # Rank-major memory, (P, r, rows) viewed as (P, rows, r): the forward's bmm reads A^T and B
        # with unit stride, 3-4x faster than r-fastest storage for one input row per member.
        a = torch.zeros(len(factors), r, rows, device=self.device).transpose(1, 2)
        b = torch.zeros(len(factors), r, cols, device=self.device).transpose(1, 2)
        for i, f in enumerate(factors):
            if f is not None:
                a[i], b[i] = f[layer.name]
        return a, b


class Fold:
    """A decoded child kept as its parent's vector and its mutation noise; folded on first use, once."""

    def __init__(self, encoding: LowRankPerturbEncoding, parent: torch.Tensor, eps: torch.Tensor):
        self.encoding, self.parent, self.eps = encoding, parent, eps
        self._vector: torch.Tensor | None = None

    def vector(self) -> torch.Tensor:
        """The child's search vector (D,)."""
        if self._vector is None:
            self._vector = torch.empty_like(self.parent)
            self.encoding._fold_into(self._vector, self.parent, self.eps)
            self.parent = self.eps = None  # the folded vector replaces them
        return self._vector


def perturbation_ranks(layers: Sequence[LayerSpec], rank: int) -> dict[str, int]:
    """Rank of each weight matrix's perturbation: ``rank`` capped at min(rows, cols) (a full-rank delta).

    A rank above min(rows, cols) of every layer is an error rather than a silent cap.
    """
    matrices = [layer for layer in layers if layer.kind != "norm"]
    if matrices and all(rank > min(layer.matrix_shape) for layer in matrices):
        sizes = ", ".join(f"{layer.name} {min(layer.matrix_shape)}" for layer in matrices)
        raise ValueError(f"perturb_rank {rank} exceeds min(out, in) of every layer ({sizes})")
    return {layer.name: min(rank, *layer.matrix_shape) for layer in matrices}
