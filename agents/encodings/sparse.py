"""Sparse mutation: each child mutates a random fraction p of every layer's parameters.

Whitaker & Whitley 2023, "Sparse Mutation Decompositions: Fine Tuning Deep Neural Networks
with Subspace Evolution". Each chosen entry moves by sigma times its tensor's init std, the
convention every evoboard encoding shares (``base``), so ``sigma`` means the same step on a
mutated entry here as on every entry of ``dense``. Where evoboard differs: the paper (and
evoboard before) raised the per-entry step to sigma / sqrt(p) to keep dense's expected
mutation norm; set ``sigma`` (or ``sparse_sigma``) to that for their setting. The subset is drawn from the child's seed:
exactly k = max(1, round(p * n)) of a layer's n parameters (weights and biases together)
change, so a child differs from its parent in a known number of entries.

Disjoint masks (``disjoint``): a child's mutation must be replayable from its seed chain
alone, so its mask cannot depend on which siblings happen to share its generation. Each
layer instead has one fixed partition: a permutation of its n entries, seeded by the
layer's name only, cut into ceil(n / k) consecutive parts of k entries (the last wraps
around to the start, so every entry belongs to a part). A child mutates part
``seed mod parts``. Any two mutations whose seeds differ mod the part count touch disjoint
entries (except with the wrapping last part); siblings get disjoint masks whenever the
algorithm gives them seeds with different residues, e.g. consecutive seeds.

No ES direction: the OpenAI-ES estimator E[F(theta + s eps) eps] / s is the gradient of
one smoothed objective only for Gaussian eps on every coordinate (Stein's lemma); with a
seed-chosen mask m it estimates E_m[m * grad J_m], a density-weighted gradient of a
different smoothing J_m per mask, exact only as s -> 0.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from evoboard.agents.encodings.base import EncodingOptions, Genome, SeedChainEncoding
from evoboard.agents.encodings.sparse_layers import SHARED_DENSITY_MAX, SHARED_MIN, SparseLinear
from evoboard.agents.layers import PopulationParams
from evoboard.options import bounded


@dataclass
class SparseOptions(EncodingOptions):
    """Settings of the sparse mutation encoding (plus the shared ``sigma`` and ``evolve_norms``)."""

    density: float = bounded(0.1, gt=0, le=1)
    """Fraction p of each layer's parameters a child mutates, 0 < p <= 1."""
    layer_density: tuple[str, ...] = ()
    """Per-layer densities as name:p pairs, e.g. fc0:0.05,fc2:0.5; other layers use density."""
    sparse_sigma: float | None = bounded(None, gt=0)
    """Older name of sigma for this encoding (relative to init std, per chosen entry); when set, it replaces sigma."""
    disjoint: bool = False
    """Mask = part (seed mod parts) of a fixed per-layer partition: siblings with distinct residues never overlap."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.layer_density = tuple(self.layer_density)
        for name, p in self.densities().items():
            check_density(f"density of layer {name!r}", p)

    @property
    def entry_sigma(self) -> float:
        """The relative step of a chosen entry: sparse_sigma when set, else sigma."""
        return self.sigma if self.sparse_sigma is None else self.sparse_sigma

    def densities(self) -> dict[str, float]:
        """``layer_density`` as {layer name: p}."""
        out = {}
        for item in self.layer_density:
            name, sep, value = item.partition(":")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not name.strip():
                raise ValueError(f"layer_density takes name:p pairs (e.g. fc0:0.05), got {item!r}")
        return out


def check_density(what: str, p: float) -> None:
    if not 0 < p <= 1:
        raise ValueError(f"{what} must be in (0, 1], got {p}")


@dataclass(frozen=True)
class Segment:
    """One layer's stretch of the search vector and how many of its entries a child mutates."""

    layer: str
    start: int
    size: int  # n
    chosen: int  # k

    @property
    def parts(self) -> int:
        return -(-self.size // self.chosen)


class SparseEncoding(SeedChainEncoding):
    """Every parameter is searched; each mutation touches k = p * n entries per layer."""

    name = "sparse"
    Options = SparseOptions

    def __init__(self, policy, options: SparseOptions, device: torch.device):
        names = [layer.name for layer in policy.layers]
        unknown = sorted(set(options.densities()) - set(names))
        if unknown:
            raise ValueError(f"unknown layer {unknown[0]!r} in layer_density; layers: {', '.join(names)}")
        super().__init__(policy, options, device)
        names = [layer.name for layer in self.evolved_layers()]
        self._mutation_scale = self.mutation_scale(options.entry_sigma)  # (D,)
        density = {name: options.densities().get(name, options.density) for name in names}
        self.segments: list[Segment] = []
        for name in names:
            blocks = [b for b in self.blocks if b.layer == name]  # a layer's blocks are contiguous
            n = sum(b.size for b in blocks)
            self.segments.append(Segment(name, blocks[0].start, n, max(1, round(density[name] * n))))
        self._partitions = {s.layer: self._partition(s) for s in self.segments} if options.disjoint else {}

    @property
    def mutated_per_child(self) -> int:
        """Entries a child changes: the sum of k over layers."""
        return sum(s.chosen for s in self.segments)

    def _partition(self, segment: Segment) -> torch.Tensor:
        """The layer's fixed permutation, seeded by its name, padded cyclically to parts * k entries."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(zlib.crc32(segment.layer.encode()))
        perm = torch.randperm(segment.size, generator=generator, device=self.device)
        return perm[torch.arange(segment.parts * segment.chosen, device=self.device) % segment.size]

    def mask(self, seed: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices into the search vector a child with ``seed`` mutates: (sum of k,), layer by layer.

        Disjoint: part ``seed mod parts`` of each layer's partition. Otherwise k draws without
        replacement from ``generator`` (seeded with ``seed`` when not given).
        """
        if generator is None and not self.options.disjoint:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
        picks = []
        for s in self.segments:
            if self.options.disjoint:
                part = seed % s.parts
                local = self._partitions[s.layer][part * s.chosen : (part + 1) * s.chosen]
            else:
                local = torch.randperm(s.size, generator=generator, device=self.device)[: s.chosen]
            picks.append(local + s.start)
        return torch.cat(picks)

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        children = parents.clone()  # (C, D)
        for c, seed in enumerate(seeds):
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
            index = self.mask(seed, generator)  # the mask first, then the values, from one stream
            values = torch.randn(len(index), generator=generator, device=self.device)
            children[c, index] += self._mutation_scale[index] * values
        return children

    def decode(self, genomes: Sequence[Genome]) -> PopulationParams:
        """The base class's dense children, with their large sparsely mutated linear layers run as their
        parents' shared forward plus each child's changes (``sparse_layers``).

        A member's form follows from its genome alone, so its output is the same bits on any backend shard:
        a child (two links or more) is its parent plus its changes, cached or not; a first link is its own base.
        """
        genomes = [tuple(g) for g in genomes]
        params = super().decode(genomes)
        density = {s.layer: s.chosen / s.size for s in self.segments}
        shared = [
            layer.name
            for layer in self.policy.layers
            if layer.kind == "linear"
            and layer.in_features * layer.out_features >= SHARED_MIN
            and density.get(layer.name, 1.0) <= SHARED_DENSITY_MAX
        ]
        if not shared:
            return params
        keys: dict[Genome, int] = {}
        group = [keys.setdefault(g[:-1] if len(g) > 1 else g, len(keys)) for g in genomes]
        bases = self.to_params(torch.stack([self.vector(k) for k in keys]))  # (K, ...) the distinct parents
        members = torch.tensor(group, device=self.device)
        for name in shared:
            child = params[name]
            params[name] = SparseLinear.of_children(bases[name].weight, members, child.weight, child.bias)
        return params

    def direction(self, seed: int) -> torch.Tensor:
        raise TypeError(
            "sparse noise is masked, not Gaussian on every coordinate, so the ES gradient estimator "
            "does not hold for it (see agents/encodings/sparse.py); use dense, lowrank or lowrank-perturb"
        )
