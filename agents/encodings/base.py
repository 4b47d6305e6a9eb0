"""Seed-chain genomes and the encoding contract.

A genome is a seed chain (Such et al. 2017, "Deep Neuroevolution"): the init seed
followed by one mutation seed per generation of lineage. It costs 4 bytes a link, so it
crosses process and machine boundaries cheaply and replays exactly. An encoding turns
genomes into population-batched layer parameters. It keeps the last population's decoded
search vectors, so a child costs one mutation of its cached parent, and a whole
population's children mutate in one batched op.

One convention for every encoding (``EncodingOptions``), so a comparison of encodings
compares encodings: a mutation moves each evolved tensor by ``sigma`` times that tensor's
mutation scale (its init std; ``TensorSpec.mutation_scale`` for tensors that start
constant), as Jevo.jl does (``src/organisms/nn/utils.jl``: every gene adds
``randn * init_std * mr``); and LayerNorm gains and biases are either searched by every
encoding or frozen at their init by every encoding (``evolve_norms``; Jevo.jl's
``NBackMutator`` freezes them, ``no_layer_norm=true``). Where evoboard differs: Jevo.jl
takes sqrt(mr) for the factors of a factorized weight (``nback_mutate``); here ``sigma`` is
the same number on every evolved tensor, factors included.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from evoboard.agents.layers import DenseNorm, LayerParams, LayerSpec, PopulationParams, TensorSpec, dense_form
from evoboard.options import Checked, bounded

Genome = tuple[int, ...]
SEED_BYTES = 4  # seeds are drawn in [0, 2**31): one uint32 each
MAX_SEED = 2**31 - 1


def noise(seed: int, dims: int, device: torch.device) -> torch.Tensor:
    """Standard normal vector of ``dims`` from ``seed`` alone (independent of batch and order)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return torch.randn(dims, generator=generator, device=device)


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
        self._cache: dict[Genome, torch.Tensor] = {}  # the last two decodes
        self._last: dict[Genome, torch.Tensor] = {}
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
        """Children of ``parents`` (C, D), one per seed: (C, D)."""

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

        On the CPU each row is drawn in place from one reseeded generator (``manual_seed`` resets
        its whole state), which skips a generator per seed and the copy of stacking the rows
        (decode -7% at P=64 for a 4-64-64-2 MLP); the values are checked equal to ``noise``'s in
        the tests. Other devices keep ``noise`` itself, where that equality is not checked.
        """
        if self.device.type != "cpu":
            return torch.stack([noise(s, self.search_dims, self.device) for s in seeds])
        out = torch.empty(len(seeds), self.search_dims, device=self.device)  # (C, D)
        generator = torch.Generator(device=self.device)
        for row, seed in zip(out, seeds, strict=True):
            generator.manual_seed(seed)
            row.normal_(generator=generator)
        return out

    def direction(self, seed: int) -> torch.Tensor:
        """The unit-variance noise eps(seed) (D,) a mutation by ``seed`` moves along, from the seed alone.

        What an evolution strategy perturbs its mean by; default: standard normal, independent per dimension.
        """
        return noise(seed, self.search_dims, self.device)

    def _init_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = torch.zeros(self.search_dims, device=self.device)
        shift = torch.zeros(self.search_dims, device=self.device)
        for block in self.blocks:
            scale[block.start : block.stop] = block.std
            shift[block.start : block.stop] = block.mean
        return scale, shift

    def init_vector(self, seed: int) -> torch.Tensor:
        """A member's initial search vector: each block ~ N(its mean, its std^2).

        A negative first link names a pretrained checkpoint (``evoboard.agents.checkpoints``): its vector.
        In a run started from a checkpoint (``start_from``), every seed the algorithm draws for an
        initial member maps to that checkpoint, so GA, ES, Adam and RSO all start from it unchanged.
        """
        if seed < 0 or self.root is not None:
            link = seed if seed < 0 else self.root
            if link not in self._pretrained:
                raise KeyError(f"genome link {seed} names checkpoint {link}, which this encoding was not given")
            return self._pretrained[link]
        return torch.addcmul(self._init_shift, noise(seed, self.search_dims, self.device), self._init_scale)

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
        """Replay a genome from its seeds alone (slow path; used on cache misses)."""
        if genome in self._cache:
            return self._cache[genome]
        if len(genome) == 1:
            return self.init_vector(genome[0])
        return self.mutate(self.vector(genome[:-1]).unsqueeze(0), genome[-1:])[0]

    def decode(self, genomes: Sequence[Genome]) -> PopulationParams:
        genomes = [tuple(g) for g in genomes]
        rows: list[torch.Tensor | None] = [self._cache.get(g) for g in genomes]
        # Children of cached (or replayed) parents: one batched mutation for all of them.
        todo = [i for i, row in enumerate(rows) if row is None and len(genomes[i]) > 1]
        if todo:
            replayed: dict[Genome, torch.Tensor] = {}  # children of one parent replay it once
            for i in todo:
                if genomes[i][:-1] not in replayed:
                    replayed[genomes[i][:-1]] = self.vector(genomes[i][:-1])
            parents = torch.stack([replayed[genomes[i][:-1]] for i in todo])  # (C, D)
            children = self.mutate(parents, [genomes[i][-1] for i in todo])
            for k, i in enumerate(todo):
                rows[i] = children[k]
        if len(todo) == len(genomes):  # every member a new child (a GA generation): no second (P, D) copy
            z = children  # (P, D)
        else:
            for i, row in enumerate(rows):
                if row is None:
                    rows[i] = self.init_vector(genomes[i][0])
            z = torch.stack(rows)  # (P, D)
        # Keep the last two decodes: the next population's parents come from the last
        # population even when the elite candidates were decoded after it.
        decoded = {g: z[i] for i, g in enumerate(genomes)}
        self._cache = {**self._last, **decoded}
        self._last = decoded
        return self.to_params(z)
