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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from evoboard.agents.encodings.base import EncodingOptions, Genome, SeedChainEncoding, block_views, noise_rows
from evoboard.agents.encodings.perturbed_layers import (
    PerturbedConv2d,
    PerturbedEmbedding,
    PerturbedLinear,
    low_rank_product,
)
from evoboard.agents.encodings.replay import Rows
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
    uncorrelated_noise = True  # rank-r A B^T / sqrt(r): unit variance, uncorrelated, not independent

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
        self.shared = {
            layer.name
            for layer in policy.layers
            if layer.name in self.ranks and (layer.kind == "conv2d" or self._weight_size(layer) >= options.shared_min)
        }
        # Blocks every member holds itself (small weights, biases, norms): not a shared weight.
        self._own = [j for j, b in enumerate(self.blocks) if not (b.layer in self.shared and b.role == "weight")]

    def _noise_size(self, layer: str, role: str, size: int, shape: tuple[int, ...]) -> int:
        if role == "weight" and layer in self.ranks:
            rows = shape[0]
            return self.ranks[layer] * (rows + size // rows)
        return size

    def scale(self, layer: str) -> float:
        """sigma * s / sqrt(r) of a layer's weight perturbation, s its init std."""
        return self.sigma * self._weight_scale[layer] / math.sqrt(self.ranks[layer])

    def _factors(self, eps: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A (C, rows, r) and B (C, cols, r) of block j's perturbed weight, views of the noise rows eps (C, N)."""
        layer, _, _, at, size = self._pieces[j]
        r, rows = self.ranks[layer], self.blocks[j].shape[0]
        a = eps[:, at : at + rows * r].view(len(eps), rows, r)
        return a, eps[:, at + rows * r : at + size].view(len(eps), -1, r)

    def _deltas(self, eps: torch.Tensor, blocks: Sequence[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """(block number, the mutation of that block (C, size)) for the noise rows eps (C, N) of C children.

        A perturbed weight moves by scale * A B^T (a sum of r outer products, elementwise), any other
        tensor by sigma * its scale * its noise: the same arithmetic for a child alone or in a batch.
        """
        for j in blocks:
            block, (layer, role, _, at, size) = self.blocks[j], self._pieces[j]
            if role == "weight" and layer in self.ranks:
                yield j, (low_rank_product(*self._factors(eps, j)) * self.scale(layer)).view(len(eps), -1)
            else:
                yield j, eps[:, at : at + size] * (self.sigma * block.scale)

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """children = parents + each child's mutation, block by block: (C, D)."""
        children = torch.empty_like(parents)  # (C, D): every block is written below
        eps = noise_rows(seeds, self.noise_dims, self.device)  # (C, N)
        for j, delta in self._deltas(eps, range(len(self.blocks))):
            block = self.blocks[j]
            torch.add(parents[:, block.start : block.stop], delta, out=children[:, block.start : block.stop])
        return children

    def directions(self, seeds: Sequence[int]) -> torch.Tensor:
        """The rank-r noise of each seed (C, D), rescaled to unit variance per entry (EGGROLL's estimator holds)."""
        zero = torch.zeros(len(seeds), self.search_dims, device=self.device)
        return self.mutate(zero, seeds).div_(self._mutation_scale)

    def decode(self, genomes: Sequence[Genome]) -> PopulationParams:
        """Shared-base perturbed forms for large weights when members share parents, else dense forms.

        A child not yet decoded is (its parent's weights, its seed); anything cached (elites,
        re-evaluated candidates) is its own base with no perturbation. Children are not folded
        into dense weights here: the cache keeps each as its parent and seed, and folds it (all
        such children at once) only if it is asked for again, as a parent or a re-evaluated candidate.
        """
        genomes = [tuple(g) for g in genomes]
        fresh = [len(g) > 1 and self._cache.find(g) is None for g in genomes]
        keys = list(dict.fromkeys(g[:-1] if new else g for g, new in zip(genomes, fresh, strict=True)))
        if not self.shared or 2 * len(keys) > len(genomes):
            return super().decode(genomes)
        bases, _ = self.replay(keys)  # (K, D) rows of the distinct parents and of the cached members
        group = [bases.index[g[:-1] if new else g] for g, new in zip(genomes, fresh, strict=True)]
        new = [i for i, is_new in enumerate(fresh) if is_new]
        group_t = torch.as_tensor(group, device=self.device)  # (P,)
        new_t = torch.as_tensor(new, device=self.device)  # (F,)
        eps = noise_rows([genomes[i][-1] for i in new], self.noise_dims, self.device)  # (F, N), once per child
        # Each member's own values of the tensors that run dense (small layers, biases); the
        # shared weights' blocks of z stay unwritten: their forms read the bases and factors.
        z = torch.empty(len(genomes), self.search_dims, device=self.device)  # (P, D), only own blocks written
        for j in self._own:
            block = self.blocks[j]
            z[:, block.start : block.stop] = bases.tensor[:, block.start : block.stop].index_select(0, group_t)
        for j, delta in self._deltas(eps, self._own):
            block = self.blocks[j]
            z[:, block.start : block.stop].index_add_(0, new_t, delta)  # one add per entry: parent + delta
        self._cache.add([Children(self, bases.tensor, genomes, group, fresh), bases])
        return self._perturbed(bases.tensor, group_t, new_t, eps, self.to_params(z))

    def _perturbed(
        self, bases: torch.Tensor, group: torch.Tensor, new: torch.Tensor, eps: torch.Tensor, dense: PopulationParams
    ) -> PopulationParams:
        base_views = block_views(self.blocks, bases)
        params = PopulationParams()
        for j, layer in self._shared_weights():
            a, b = self._stack_factors(layer, new, eps, j, len(group))
            base, form, scale = base_views[layer.name]["weight"], dense[layer.name], self.scale(layer.name)
            if layer.kind == "linear":
                params[layer.name] = PerturbedLinear(base, group, a, b, form.bias, scale)
            elif layer.kind == "conv2d":
                params[layer.name] = PerturbedConv2d(base, group, a, b, form.bias, scale, layer.stride)
            else:
                params[layer.name] = PerturbedEmbedding(base, group, a, b, scale)
        return PopulationParams({layer.name: params.get(layer.name, dense[layer.name]) for layer in self.policy.layers})

    def _shared_weights(self) -> list[tuple[int, LayerSpec]]:
        by_name = {layer.name: layer for layer in self.policy.layers}
        return [
            (j, by_name[b.layer]) for j, b in enumerate(self.blocks) if b.layer in self.shared and b.role == "weight"
        ]

    @staticmethod
    def _weight_size(layer: LayerSpec) -> int:
        rows, cols = layer.matrix_shape
        return rows * cols

    def _stack_factors(
        self, layer: LayerSpec, new: torch.Tensor, eps: torch.Tensor, j: int, p: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A (P, rows, r) and B (P, cols, r); zeros for members that carry no new mutation."""
        rows, cols = layer.matrix_shape
        r = self.ranks[layer.name]
        # Rank-major memory, (P, r, rows) viewed as (P, rows, r): the forward's bmm reads A^T and B
        # with unit stride, 3-4x faster than r-fastest storage for one input row per member.
        a = torch.zeros(p, r, rows, device=self.device).transpose(1, 2)
        b = torch.zeros(p, r, cols, device=self.device).transpose(1, 2)
        if len(new):
            fa, fb = self._factors(eps, j)
            a.index_copy_(0, new, fa)
            b.index_copy_(0, new, fb)
        return a, b


class Children(Rows):
    """A shared-base decode's members kept as (their base, their seed): folded, in one batch, when asked for."""

    def __init__(self, encoding: LowRankPerturbEncoding, bases: torch.Tensor, genomes, group, fresh):
        super().__init__(bases, genomes)
        self.encoding, self.genomes = encoding, list(genomes)
        self.group, self.fresh = group, fresh  # member i: its row of bases, and whether its seed is still to add

    def take(self, rows: Sequence[int]) -> torch.Tensor:
        device = self.tensor.device
        out = self.tensor.index_select(0, torch.as_tensor([self.group[i] for i in rows], device=device))
        new = [k for k, i in enumerate(rows) if self.fresh[i]]
        if new:
            seeds = [self.genomes[rows[k]][-1] for k in new]
            folded = self.encoding.mutate(out[new], seeds)
            out[torch.as_tensor(new, device=device)] = folded
        return out


def perturbation_ranks(layers: Sequence[LayerSpec], rank: int) -> dict[str, int]:
    """Rank of each weight matrix's perturbation: ``rank`` capped at min(rows, cols) (a full-rank delta).

    A rank above min(rows, cols) of every layer is an error rather than a silent cap.
    """
    matrices = [layer for layer in layers if layer.kind != "norm"]
    if matrices and all(rank > min(layer.matrix_shape) for layer in matrices):
        sizes = ", ".join(f"{layer.name} {min(layer.matrix_shape)}" for layer in matrices)
        raise ValueError(f"perturb_rank {rank} exceeds min(out, in) of every layer ({sizes})")
    return {layer.name: min(rank, *layer.matrix_shape) for layer in matrices}
