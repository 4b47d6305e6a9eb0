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
x W0^T + ((x B) A^T) * scale, instead of P distinct matmuls (the forms in ``perturbed_layers``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from evoboard.agents.encodings.base import EncodingOptions, Genome, SeedChainEncoding, block_views, noise
from evoboard.agents.encodings.perturbed_layers import (
    PerturbedConv2d,
    PerturbedEmbedding,
    PerturbedLinear,
    low_rank_product,
)
from evoboard.agents.layers import LayerSpec, PopulationParams
from evoboard.options import bounded


@dataclass
class LowRankPerturbOptions(EncodingOptions):
    """Settings of the low-rank perturbation encoding (plus the shared ``sigma`` and ``evolve_norms``)."""

    perturb_rank: int = bounded(4, ge=1)
    """Rank r of each child's weight perturbation A B^T (per layer at most min(out, in))."""
    perturb_sigma: float | None = bounded(None, gt=0, finite=True)
    """Older name of sigma for this encoding; when set, it replaces sigma."""
    shared_min: int = bounded(32768, ge=0)
    """Linear and embedding weights of at least this many entries share one matmul per parent (smaller: dense
    per member; 0: all). Convolutions always share one conv per parent (docs/atari-speed.md)."""


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
            if layer.name in self.ranks
            and (layer.kind == "conv2d" or self._weight_size(layer) >= self.options.shared_min)
        }  # convolutions always: one shared conv plus a rank-r conv beat the grouped conv at every size measured
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
