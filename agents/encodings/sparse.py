"""Sparse mutation: each child mutates a random fraction p of every layer's parameters.

Whitaker & Whitley 2023, "Sparse Mutation Decompositions: Fine Tuning Deep Neural Networks
with Subspace Evolution". Equal steps (``base``; measured by ``evoboard bench mutation-scale``): at
``sigma`` a layer's step has dense's norm, so each of its k chosen entries moves by sigma / sqrt(k / n)
times its tensor's init std, which is how the paper scales its per-entry step. ``sparse_sigma``, when
set, is the step of a chosen entry instead (sigma times its init std, the step norm sqrt(k / n) of
dense's): the knob of the critical-window sweep, which states steps per entry. The subset is drawn
from the child's seed: exactly k = max(1, round(p * n)) of a layer's n parameters (weights and
biases together) change, so a child differs from its parent in a known number of entries.

How the subset is drawn, the same on every device (see ``noise``): the seed's slice of the noise
table gives every entry a key (its first D numbers, the same numbers ``dense`` would mutate by)
and the k entries of a layer with the largest keys change: iid keys make every k-subset equally
likely. Ties only matter at the k-th key; where one occurs (a few in a hundred children of a
million-entry layer) the key's float bits and the entry's position make a unique integer key, so
the subset never depends on how a device breaks ties. A chosen entry j moves by its scale times
table entry offset + D + j, so which number an entry gets does not depend on the order a device
returns the subset in. All of a population's children draw their subsets in one top-k per layer.

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

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch

from evoboard.agents.encodings.base import EncodingOptions, Genome, SeedChainEncoding
from evoboard.agents.encodings.noise import TABLE_SIZE, offsets, table, windows
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
    """Step of a chosen entry relative to its init std; None: sigma / sqrt(k/n), dense's step norm per layer."""
    disjoint: bool = False
    """Mask = part (seed mod parts) of a fixed per-layer partition: siblings with distinct residues never overlap."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.layer_density = tuple(self.layer_density)
        for name, p in self.densities().items():
            check_density(f"density of layer {name!r}", p)

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
    searches_weights = True  # its noise is masked, not Gaussian on every coordinate: no ES

    def __init__(self, policy, options: SparseOptions, device: torch.device):
        names = [layer.name for layer in policy.layers]
        unknown = sorted(set(options.densities()) - set(names))
        if unknown:
            raise ValueError(f"unknown layer {unknown[0]!r} in layer_density; layers: {', '.join(names)}")
        super().__init__(policy, options, device)
        names = [layer.name for layer in self.evolved_layers()]
        density = {name: options.densities().get(name, options.density) for name in names}
        self.segments: list[Segment] = []
        for name in names:
            blocks = [b for b in self.blocks if b.layer == name]  # a layer's blocks are contiguous
            n = sum(b.size for b in blocks)
            self.segments.append(Segment(name, blocks[0].start, n, max(1, round(density[name] * n))))
        self._mutation_scale = self._entry_scale()  # (D,)
        self._partitions = {s.layer: self._partition(s) for s in self.segments} if options.disjoint else {}

    def _entry_scale(self) -> torch.Tensor:
        """A chosen entry's step (D,): sparse_sigma, or sigma / sqrt(k / n) so a layer's step norm is dense's,
        times the tensor's scale; each entry's number one product of Python floats, rounded once."""
        o, scale = self.options, torch.empty(self.search_dims)
        segment = {s.layer: s for s in self.segments}
        for block in self.blocks:
            s = segment[block.layer]
            step = o.sparse_sigma if o.sparse_sigma is not None else o.sigma / math.sqrt(s.chosen / s.size)
            scale[block.start : block.stop] = step * block.scale
        return scale.to(self.device)

    @property
    def mutated_per_child(self) -> int:
        """Entries a child changes: the sum of k over layers."""
        return sum(s.chosen for s in self.segments)

    def _partition(self, segment: Segment) -> torch.Tensor:
        """The layer's fixed permutation, seeded by its name, padded cyclically to parts * k entries: (parts, k).

        Drawn by a CPU generator (integer Fisher-Yates, the same on every machine), then moved.
        """
        generator = torch.Generator(device="cpu").manual_seed(zlib.crc32(segment.layer.encode()))
        perm = torch.randperm(segment.size, generator=generator)
        padded = perm[torch.arange(segment.parts * segment.chosen) % segment.size]
        return padded.reshape(segment.parts, segment.chosen).to(self.device)

    def mask(self, seed: int) -> torch.Tensor:
        """Indices into the search vector a child with ``seed`` mutates: (sum of k,), ascending."""
        return self.masks([seed])[0].sort().values

    def masks(self, seeds: Sequence[int]) -> torch.Tensor:
        """Indices each child mutates: (C, sum of k), layer by layer, in no particular order within a layer.

        Disjoint: part ``seed mod parts`` of each layer's partition. Otherwise the k largest of the
        layer's keys in the seed's slice of the noise table (module docstring).
        """
        starts = torch.as_tensor(offsets(seeds), device=self.device)  # (C,)
        picks = []
        for s in self.segments:
            if self.options.disjoint:
                part = torch.as_tensor(np.asarray(seeds, dtype=np.int64) % s.parts, device=self.device)
                local = self._partitions[s.layer].index_select(0, part)  # (C, k)
            else:
                local = top_k_entries(windows((starts + s.start) % TABLE_SIZE, s.size, self.device), s.chosen)
            picks.append(local + s.start)
        return torch.cat(picks, dim=1)

    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        index = self.masks(seeds)  # (C, K)
        # Entry j's number: table[offset + D + j], read by position, whatever order the subset came in.
        starts = torch.as_tensor(offsets(seeds), device=self.device)[:, None] + self.search_dims  # (C, 1)
        values = table(self.device, TABLE_SIZE + 2 * self.search_dims)[starts + index]  # (C, K)
        delta = values.mul_(self._mutation_scale[index])  # (C, K)
        return parents.clone().scatter_add_(1, index, delta)  # distinct indices per row: one add each

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


def top_k_entries(keys: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of the k largest keys of each row (C, n) -> (C, k), the same set on every device.

    A row with a tie at the k-th key is chosen again by unique integer keys that order as the floats
    do and then by position (earlier first), so no device's tie order decides a set.
    """
    n = keys.shape[1]
    if k >= n:
        return torch.arange(n, device=keys.device).expand(len(keys), n)
    values, picked = _largest(keys, k + 1)  # (C, k + 1): the k + 1 largest, in any order
    low, at = values.min(dim=1)  # the (k + 1)-th largest key: dropped, unless another key equals it
    rows = torch.arange(len(keys), device=keys.device)
    picked[rows, at] = picked[:, k].clone()  # the last column takes the dropped one's place, then is cut off
    tied = torch.nonzero((values == low[:, None]).sum(dim=1) > 1).flatten()
    if len(tied):
        bits = keys.index_select(0, tied).view(torch.int32)  # (T, n)
        ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)  # signed ints in the floats' order
        unique = ordered * 2**32 + (2**32 - 1 - torch.arange(n, device=keys.device))  # then earlier first
        picked[tied, :k] = unique.topk(k, dim=1).indices
    return picked[:, :k]


CANDIDATES_BELOW = 0.05
"""Rows choosing at most this fraction of their entries take the top k of a few candidates (``_largest``)."""


def _largest(keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest keys of each row and their positions (C, k), in no particular order: ``topk``'s set.

    Where k is small beside n (a sparse layer's few percent), a full top-k over a million keys costs
    most of a sparse decode; the keys are the noise table's standard normals, so only entries above
    the normal quantile that about 1.5 k + 8 sqrt(k) of n exceed can be among the k largest. The top
    k of those candidates is the same set as that of the whole row whenever a row has at least k
    candidates (every other key lies below each of them); a row with fewer, however unlikely, sends
    every row to the full top-k. So the set never depends on the shortcut, only the time does.
    """
    c, n = keys.shape
    expected = 1.5 * k + 8.0 * math.sqrt(k)  # candidates wanted a row
    if k > CANDIDATES_BELOW * n or expected >= n:
        return keys.topk(k, dim=1, sorted=False)
    threshold = NormalDist().inv_cdf(1.0 - expected / n)
    rows, cols = (keys > threshold).nonzero(as_tuple=True)  # row-major: each row's candidates in position order
    counts = torch.bincount(rows, minlength=c)  # (C,); a bool (C, n) sum costs several times more
    if bool((counts < k).any()):
        return keys.topk(k, dim=1, sorted=False)
    slot = torch.arange(len(rows), device=keys.device) - (counts.cumsum(0) - counts)[rows]
    width = int(counts.max())
    values = torch.full((c, width), -math.inf, dtype=keys.dtype, device=keys.device)  # (C, width): padding -inf
    where = torch.zeros((c, width), dtype=torch.long, device=keys.device)
    values[rows, slot], where[rows, slot] = keys[rows, cols], cols
    top, chosen = values.topk(k, dim=1, sorted=False)
    return top, where.gather(1, chosen)
