"""Seed-chain genomes and the encoding contract.

A genome is a seed chain (Such et al. 2017, "Deep Neuroevolution"): the init seed
followed by one mutation seed per generation of lineage. It costs 4 bytes a link, so it
crosses process and machine boundaries cheaply and replays exactly. An encoding turns
genomes into population-batched layer parameters. It keeps the last decodes' search vectors
(``replay.DecodeCache``), so a child costs one mutation of its cached parent, and a whole
population's children mutate in one batched op: a generation's decode is a number of tensor
ops that does not grow with P (``evoboard bench launches`` counts them).

Noise is read, not generated: a seed's noise is its slice of one shared table (``noise``), the
same on every device, GPU model and thread count by construction, and a member's weights are
elementwise IEEE arithmetic on it (a mul, then an add: never a fused multiply-add or a
reduction whose order a device picks), so a genome decodes to the same bits everywhere.

One convention for every encoding (``EncodingOptions``), so a comparison of encodings
compares encodings: equal steps at equal ``sigma``. A child's effective weights (W for dense;
U V^T for lowrank; W plus its rank-r term for lowrank-perturb; W plus its changes for sparse)
move from its parent's by ``sigma`` times that tensor's init std per entry (RMS over the tensor),
as Jevo.jl's dense mutation does (``src/organisms/nn/utils.jl``: every gene adds
``randn * init_std * mr``); tensors that start constant use ``TensorSpec.mutation_scale``. Each
encoding says how it meets this (lowrank: each factor by sigma / sqrt(2) of its std; sparse: each
chosen entry by sigma / sqrt(k / n)), and ``evoboard bench mutation-scale`` measures it for every
registered encoding (a contract test holds each, plugins too, within 10% of dense). LayerNorm
gains and biases are either searched by every encoding or frozen at their init by every encoding
(``evolve_norms``; Jevo.jl's ``NBackMutator`` freezes them, ``no_layer_norm=true``). The papers'
own calibrations stay reachable as settings (lowrank's ``factor_gain``/``factor_sigma``,
sparse's ``sparse_sigma``).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import torch

from evoboard.agents.encodings.noise import noise, noise_rows
from evoboard.agents.encodings.replay import DecodeCache, Genome, Rows, gather
from evoboard.agents.layers import DenseNorm, LayerParams, LayerSpec, PopulationParams, TensorSpec, dense_form
from evoboard.options import Checked, bounded

SEED_BYTES = 4  # seeds are drawn in [0, 2**31): one uint32 each
MAX_SEED = 2**31 - 1
__all__ = ["MAX_SEED", "SEED_BYTES", "Genome", "noise", "noise_rows"]


@dataclass(frozen=True)
class Block:
    """Where one evolved tensor of a layer lives in the flat search vector, and its init."""

    layer: str
    role: str  # "weight", "bias", or an encoding's own (e.g. "U", "V")
    start: int
    shape: tuple[int, ...]
    std: float
    mean: float = 0.0
    scale: float = 0.0  # the unit of its mutations (TensorSpec.mutation_scale)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def stop(self) -> int:
        return self.start + self.size

    def view(self, z: torch.Tensor) -> torch.Tensor:
        """This block of a population's search vectors: z (P, D) -> (P, *shape), a view."""
        return z[:, self.start : self.stop].reshape(z.shape[0], *self.shape)


def layout(tensors: Sequence[tuple[str, TensorSpec]]) -> tuple[list[Block], int]:
    """Pack (layer name, tensor) pairs back to back; returns their blocks and the total size."""
    blocks, start = [], 0
    for layer, t in tensors:
        block = Block(layer, t.role, start, tuple(t.shape), t.std, t.mean, t.mutation_scale)
        blocks.append(block)
        start = block.stop
    return blocks, start


def block_views(blocks: Sequence[Block], z: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Views of z (P, D) by layer name, then role: each (P, *shape)."""
    views: dict[str, dict[str, torch.Tensor]] = {}
    for block in blocks:
        views.setdefault(block.layer, {})[block.role] = block.view(z)
    return views


@dataclass
class EncodingOptions(Checked):
    """The settings every encoding shares, with one meaning and one default for all."""

    sigma: float = bounded(0.1, gt=0, finite=True)
    """Mutation std relative to each tensor's init std (biases: their layer's weight std; norms: 1)."""
    evolve_norms: bool = False
    """Search LayerNorm gains and biases; False: frozen at their init (gain 1, bias 0), as in Jevo.jl."""


def frozen_norm(layer: LayerSpec, p: int, device: torch.device) -> DenseNorm:
    """A LayerNorm at its init for ``p`` members: gain 1, bias 0, expanded views of one row."""
    width = layer.out_features
    ones, zeros = torch.ones(1, width, device=device), torch.zeros(1, width, device=device)
    return DenseNorm(ones.expand(p, width), zeros.expand(p, width))


class Encoding(ABC):
    """Genomes -> population-batched parameters for one policy. Subclass ``SeedChainEncoding``."""

    name: ClassVar[str]
    Options: ClassVar[type]

    # What the encoding can do, declared by its class (a subclass inherits them; ``False`` makes no promise).
    # The algorithms, checkpoints and masks read these; tests/test_capabilities.py holds every
    # registered encoding (plugins included) to what it declares.
    uncorrelated_noise: ClassVar[bool] = False
    """``direction(seed)`` has zero-mean, unit-variance, uncorrelated entries: OpenAI-ES's gradient estimate holds."""
    independent_noise: ClassVar[bool] = False
    """``direction(seed)`` is standard normal, independent per search dimension: SNES's per-dimension sigma needs it."""
    searches_weights: ClassVar[bool] = False
    """The search vector is the policy's own tensors, block by block as dense weights: a checkpoint can start it
    (``--set init``) and a mask can shrink it (``--set mask``)."""

    search_dims: int

    @abstractmethod
    def decode(self, genomes: Sequence[Genome]) -> PopulationParams:
        """Parameters for every genome, population first."""

    def genome_bytes(self, genome: Genome) -> int:
        return SEED_BYTES * len(genome)

    def canonical(self, genome: Genome) -> Genome:
        """The genome as it replays (a run rooted at a checkpoint names it); by default itself."""
        return tuple(genome)


class SeedChainEncoding(Encoding):
    """A search vector z of ``search_dims`` per member, built from a seed chain.

    Subclasses say how to initialise z from a seed, how to mutate a batch of parents,
    and how to view z as layer parameters; caching, batching and replay live here.
    """

    def __init__(self, policy, options, device: torch.device):
        self.policy, self.options, self.device = policy, options, torch.device(device)
        self.blocks, self.search_dims = layout(self.tensor_shapes())
        self._init_scale, self._init_shift = self._init_affine()
        self._cache = DecodeCache()  # the last decodes' rows
        self._pretrained: dict[int, torch.Tensor] = {}  # checkpoint link (< 0) -> its search vector
        self.root: int | None = None  # set by start_from: every initial member is that checkpoint

    def evolved_layers(self) -> list[LayerSpec]:
        """The layers with evolved tensors: all but LayerNorms unless ``evolve_norms``."""
        evolve = getattr(self.options, "evolve_norms", False)  # a plugin's own options may predate the setting
        return [layer for layer in self.policy.layers if layer.kind != "norm" or evolve]

    def tensor_shapes(self) -> list[tuple[str, TensorSpec]]:
        """(layer name, tensor) of every evolved tensor, in search-vector order; default: all of them."""
        return [(layer.name, t) for layer in self.evolved_layers() for t in layer.tensors()]

    def mutation_scale(self, sigma: float | None = None) -> torch.Tensor:
        """Per-dimension mutation std (D,): ``sigma`` (default the option) times each block's scale."""
        sigma = self.options.sigma if sigma is None else sigma
        scale = torch.empty(self.search_dims, device=self.device)
        for block in self.blocks:
            scale[block.start : block.stop] = sigma * block.scale
        return scale

    @abstractmethod
    def mutate(self, parents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Children of ``parents`` (C, D), one per seed: (C, D), a new tensor.

        ``parents`` may be a view of cached rows: read it, never write it. Every number from the seeds
        alone (``noises``, one gather for all C), with one rounding per op, so a child is the same
        alone or in a batch and on every device (``noise``).
        """

    def to_params(self, z: torch.Tensor) -> PopulationParams:
        """Layer parameters viewing the search vectors z (P, D); default: dense forms of every layer."""
        views = block_views(self.blocks, z)
        return PopulationParams(
            {layer.name: self.form(layer, views.get(layer.name), len(z)) for layer in self.policy.layers}
        )

    def form(self, layer: LayerSpec, tensors: dict[str, torch.Tensor] | None, p: int) -> LayerParams:
        """One layer's parameters from its views of z; default: dense, or a frozen norm when not evolved."""
        if tensors is None and layer.kind == "norm":
            return frozen_norm(layer, p, self.device)
        return dense_form(layer, tensors)

    def noises(self, seeds: Sequence[int]) -> torch.Tensor:
        """One standard normal search-space vector per seed: (C, D), row c equal to ``noise(seeds[c], D)``.

        One gather from the shared noise table (``noise``), whatever C.
        """
        return noise_rows(seeds, self.search_dims, self.device)

    def direction(self, seed: int) -> torch.Tensor:
        """The unit-variance noise eps(seed) (D,) a mutation by ``seed`` moves along, from the seed alone."""
        return self.directions([seed])[0]

    def directions(self, seeds: Sequence[int]) -> torch.Tensor:
        """eps of each seed (C, D): what an evolution strategy perturbs its mean by; default: ``noises``."""
        return self.noises(seeds)

    def _init_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = torch.zeros(self.search_dims, device=self.device)
        shift = torch.zeros(self.search_dims, device=self.device)
        for block in self.blocks:
            scale[block.start : block.stop] = block.std
            shift[block.start : block.stop] = block.mean
        return scale, shift

    def init_vector(self, seed: int) -> torch.Tensor:
        """A member's initial search vector (D,); see ``init_vectors``."""
        return self.init_vectors([seed])[0]

    def init_vectors(self, seeds: Sequence[int]) -> torch.Tensor:
        """Initial search vectors (C, D): each block ~ N(its mean, its std^2), noise times std, plus mean.

        A negative first link names a pretrained checkpoint (``evoboard.agents.checkpoints``): its vector.
        In a run started from a checkpoint (``start_from``), every seed the algorithm draws for an
        initial member maps to that checkpoint, so GA, ES, Adam and RSO all start from it unchanged.
        """
        seeds = list(seeds)
        links = [s if s < 0 else self.root for s in seeds]  # None: drawn from the seed
        fresh = [i for i, link in enumerate(links) if link is None]
        if len(fresh) == len(seeds):
            return self.noises(seeds).mul_(self._init_scale).add_(self._init_shift)  # two roundings, any device
        out = torch.empty(len(seeds), self.search_dims, device=self.device)  # (C, D): every row written below
        if fresh:
            drawn = self.init_vectors([seeds[i] for i in fresh])
            out.index_copy_(0, torch.as_tensor(fresh, device=self.device), drawn)
        for link in dict.fromkeys(link for link in links if link is not None):
            if link not in self._pretrained:
                seed = next(s for s, k in zip(seeds, links, strict=True) if k == link)
                raise KeyError(f"genome link {seed} names checkpoint {link}, which this encoding was not given")
            rows = [i for i, k in enumerate(links) if k == link]
            out[torch.as_tensor(rows, device=self.device)] = self._pretrained[link]
        return out

    def start_from(self, link: int, vector: torch.Tensor) -> None:
        """Root every genome at a checkpoint: link ``link`` (< 0) replays as ``vector`` (D,)."""
        if link >= 0 or vector.shape != (self.search_dims,):
            raise ValueError(f"a checkpoint link is < 0 with a vector of {self.search_dims} dims")
        self._pretrained[link] = vector.to(self.device, torch.float32)
        self.root = link

    def canonical(self, genome: Genome) -> Genome:
        """The genome as it replays: in a rooted run its first link is the checkpoint's."""
        genome = tuple(genome)
        return (self.root, *genome[1:]) if self.root is not None and genome and genome[0] >= 0 else genome

    def vector(self, genome: Genome) -> torch.Tensor:
        """A genome's search vector (D,): from the cache, or replayed from its seeds alone."""
        return self.vectors([genome])[0]

    def vectors(self, genomes: Sequence[Genome]) -> torch.Tensor:
        """Search vectors of ``genomes`` (n, D), cached or replayed; the cache is not renewed."""
        genomes = [tuple(g) for g in genomes]
        rows, _ = self.replay(genomes)
        return rows.take([rows.index[g] for g in genomes])

    def replay(self, genomes: Sequence[Genome]) -> tuple[Rows, Rows | None]:
        """Rows of the distinct ``genomes``, and of the parents the deepest mutation started from (or None).

        Each genome is found in the cache, or drawn from its init seed, or mutated from its parent,
        found the same way. Cached rows are gathered with one op per cached tensor, inits drawn in one
        batch, and every genome at the same depth below its nearest known ancestor mutated in one
        batch: a steady GA generation is one gather, one mutation; a lineage replayed from its seeds
        costs one mutation per generation of its depth, for all members together.
        """
        where: dict[Genome, tuple[Rows, int]] = {}
        depth: dict[Genome, int] = {}
        levels: dict[int, list[Genome]] = {}
        inits: list[Genome] = []
        for genome in dict.fromkeys(genomes):
            chain, known = [], genome
            while known not in depth:
                hit = self._cache.find(known)
                if hit is not None:
                    where[known], depth[known] = hit, 0
                elif len(known) <= 1:
                    if not known:
                        raise ValueError("a genome is at least one seed long")
                    inits.append(known)
                    depth[known] = 0
                else:
                    chain.append(known)
                    known = known[:-1]
            for level, node in enumerate(reversed(chain), start=depth[known] + 1):
                depth[node] = level
                levels.setdefault(level, []).append(node)
        if inits:
            drawn = Rows(self.init_vectors([g[0] for g in inits]), inits)
            where.update((g, (drawn, i)) for i, g in enumerate(inits))
        targets = list(dict.fromkeys(genomes))
        parents = children = z = None
        for level in sorted(levels):
            nodes = levels[level]
            parents = self.rows_of(list(dict.fromkeys(node[:-1] for node in nodes)), where)
            picks = [parents.index[node[:-1]] for node in nodes]
            at = block(targets, nodes) if level == max(levels) and self._mutates_into else None
            if at is None:
                children = Rows(self.mutate(parents.take(picks), [node[-1] for node in nodes]), nodes)
            else:  # the children are a block of the decode's rows: mutate them in place there, no copy
                z = torch.empty(len(targets), self.search_dims, device=self.device)  # (P, D)
                out = z[at : at + len(nodes)]
                children = Rows(self.mutate(parents.take(picks), [node[-1] for node in nodes], out=out), nodes)
            where.update((g, (children, i)) for i, g in enumerate(nodes))
        if z is not None:
            gather([where[g] for g in targets], self.search_dims, self.device, out=z, written=children)
            return Rows(z, targets), parents
        return self.rows_of(targets, where), parents

    @cached_property
    def _mutates_into(self) -> bool:
        """Whether ``mutate`` takes ``out=`` (dense and lowrank do): children written where the decode wants them."""
        return "out" in inspect.signature(self.mutate).parameters

    def rows_of(self, genomes: list[Genome], where: dict[Genome, tuple[Rows, int]]) -> Rows:
        """One Rows of distinct ``genomes`` whose places are known."""
        return Rows(gather([where[g] for g in genomes], self.search_dims, self.device), genomes)

    def decode(self, genomes: Sequence[Genome]) -> PopulationParams:
        genomes = [tuple(g) for g in genomes]
        rows, parents = self.replay(genomes)
        z = rows.take([rows.index[g] for g in genomes])  # (P, D); no copy when the rows are the population
        self._cache.add([rows] if parents is None else [rows, parents])
        return self.to_params(z)


def block(targets: list[Genome], nodes: list[Genome]) -> int | None:
    """Where ``nodes`` sit in ``targets`` as one consecutive block in order, when they do and are not all of it."""
    if not nodes or len(nodes) == len(targets):
        return None  # all of it: the mutation's own output is the decode's rows already
    try:
        at = targets.index(nodes[0])
    except ValueError:
        return None
    return at if targets[at : at + len(nodes)] == nodes else None
