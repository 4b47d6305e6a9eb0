"""OpenAI-ES: antithetic Gaussian perturbations of a mean, centred ranks, Adam on the mean, weight decay.

Salimans, Ho, Chen, Sidor & Sutskever 2017, "Evolution Strategies as a Scalable Alternative
to Reinforcement Learning". Each generation draws n seeds; members are the mean plus and
minus sigma times the noise of each seed (antithetic pairs), their fitness is replaced by
centred ranks in [-0.5, 0.5], and the search gradient
g = 1/(2n sigma) sum_j rank_j sign_j eps(seed_j) moves the mean through Adam, with an L2
weight decay on the mean. An odd population adds the mean itself as its last member, so
each generation also reports the fitness of the point being optimised.

Members are not seed chains: a genome is the key (generation, seed, sign) and ``decode``
builds mean + sign * sigma * eps(seed) in the encoding's search space. ``best`` is
(generation, 0, 0), which decodes to the mean. The mean and the Adam moments live in the
JSON state as lists. The noise eps is the encoding's own direction for a seed
(``SeedChainEncoding.direction``): standard normal in the search vector for ``dense`` and
``lowrank`` (whose search vector is the factors), rank-r noise A B^T / sqrt(r) for
``lowrank-perturb`` (EGGROLL, Sarkar et al. 2025: each entry has unit variance and entries
are uncorrelated, so the same estimator holds). ``sparse`` mutations touch a seed-chosen
subset with their own scale; that pairing is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from agents.algorithms.base import AlgorithmState, VectorSearch, draw_seed, rng_from
from agents.encodings.base import Genome, SeedChainEncoding
from agents.layers import PopulationParams


def centred_ranks(fitness: np.ndarray) -> np.ndarray:
    """Finite-or--inf fitness -> ranks scaled to [-0.5, 0.5] (worst -0.5, best +0.5), ties by position."""
    fitness = np.asarray(fitness, dtype=np.float64)
    n = len(fitness)
    if n < 2:
        return np.zeros(n)
    ranks = np.empty(n)
    ranks[np.argsort(fitness, kind="stable")] = np.arange(n)
    return ranks / (n - 1) - 0.5


def antithetic_keys(generation: int, seeds: Sequence[int], with_mean: bool) -> list[Genome]:
    """(generation, seed, +1), (generation, seed, -1) per seed, then (generation, 0, 0) for the mean if asked."""
    keys = [(generation, s, sign) for s in seeds for sign in (1, -1)]
    return keys + [(generation, 0, 0)] if with_mean else keys


@dataclasses.dataclass
class MeanState(AlgorithmState):
    """A search distribution's mean (and what moves it) as JSON-ready lists."""

    init_seed: int = 0
    mean: list[float] = dataclasses.field(default_factory=list)
    population: list[Genome] = dataclasses.field(default_factory=list)

    genome_lists = ("population",)


class MeanSearch(VectorSearch):
    """Shared part of the evolution strategies: a mean in the encoding's search space, keys as genomes.

    The search space is the encoding's, so an ES is bound to an encoding (``bind``) before
    ``init``; the runner binds it when it builds a run.
    """

    supported: ClassVar[tuple[str, ...]] = ("dense", "lowrank", "lowrank-perturb")

    encoding: SeedChainEncoding | None = None

    def bind(self, encoding) -> None:
        super().bind(encoding)
        self._directions: dict[int, torch.Tensor] = {}

    def _bound(self) -> SeedChainEncoding:
        if self.encoding is None:
            raise RuntimeError(f"algorithm {self.name} searches an encoding's space: call bind(encoding) first")
        return self.encoding

    def direction(self, seed: int) -> torch.Tensor:
        """Unit-variance noise eps(seed) (D,) in the search space, from the seed alone (cached per generation)."""
        if seed not in self._directions:
            self._directions[seed] = self._bound().direction(seed)
        return self._directions[seed]

    def directions(self, seeds: Sequence[int]) -> np.ndarray:
        """eps of each seed as float64: (n, D); the cache keeps only these seeds."""
        eps = [self.direction(s) for s in seeds]
        self._directions = dict(zip(seeds, eps, strict=True))
        return torch.stack(eps).double().cpu().numpy()

    def initial_mean(self, seed: int) -> tuple[int, list[float]]:
        """The init seed (the GA's first member for ``seed``) and the encoding's initial vector for it."""
        init_seed = draw_seed(np.random.default_rng(seed))
        return init_seed, self._bound().init_vector(init_seed).double().cpu().tolist()

    def member_vectors(self, genomes: Sequence[Genome], state: MeanState) -> torch.Tensor:
        """Search vectors of keyed members: (P, D). Subclasses say how sigma scales the noise."""
        raise NotImplementedError

    def decode(self, encoding, genomes: Sequence[Genome], state: MeanState) -> PopulationParams:
        if encoding is not self.encoding:
            self.bind(encoding)
        for g in genomes:
            if len(g) != 3 or g[0] != state.generation:
                raise ValueError(f"{self.name} decodes keys (generation {state.generation}, seed, sign), got {g}")
        return encoding.to_params(self.member_vectors(genomes, state))

    def best(self, state: MeanState) -> Genome:
        """The current mean: what the strategy optimises and what the run reports."""
        return (state.generation, 0, 0)

    def _mean_tensor(self, state: MeanState) -> torch.Tensor:
        return torch.tensor(state.mean, dtype=torch.float32, device=self._bound().device)


@dataclasses.dataclass
class ESOptions:
    """Settings of OpenAI-ES."""

    es_sigma: float = 0.02
    """Noise std of the antithetic perturbations, in search-vector units."""
    es_lr: float = 0.01
    """Adam step size on the mean."""
    es_weight_decay: float = 0.005
    """L2 coefficient on the mean, added to the (minimised) negative gradient as in Salimans et al."""
    es_beta1: float = 0.9
    """Adam first-moment decay."""
    es_beta2: float = 0.999
    """Adam second-moment decay."""

    def __post_init__(self) -> None:
        for key in ("es_sigma", "es_lr"):
            if not 0 < getattr(self, key) < float("inf"):
                raise ValueError(f"{key} must be > 0 and finite, got {getattr(self, key)}")
        if not 0 <= self.es_weight_decay < float("inf"):
            raise ValueError(f"es_weight_decay must be >= 0, got {self.es_weight_decay}")
        for key in ("es_beta1", "es_beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"{key} must be in [0, 1), got {getattr(self, key)}")


@dataclasses.dataclass
class ESState(MeanState):
    adam_m: list[float] = dataclasses.field(default_factory=list)
    adam_v: list[float] = dataclasses.field(default_factory=list)


class OpenAIES(MeanSearch):
    """OpenAI-ES (Salimans et al. 2017): antithetic noise, centred ranks, Adam on the mean."""

    name = "openai-es"
    Options = ESOptions
    State = ESState

    def __init__(self, population: int, options: ESOptions):
        super().__init__(population, options)
        self.pairs = population // 2
        self.with_mean = population % 2 == 1

    def init(self, seed: int) -> ESState:
        init_seed, mean = self.initial_mean(seed)
        zeros = [0.0] * len(mean)
        rng = np.random.default_rng([seed, 1])
        return ESState(generation=0, rng=rng.bit_generator.state, init_seed=init_seed, mean=mean,
                       adam_m=zeros, adam_v=list(zeros))  # fmt: skip

    def ask(self, state: ESState) -> tuple[list[Genome], ESState]:
        rng = rng_from(state.rng)
        seeds = [draw_seed(rng) for _ in range(self.pairs)]
        keys = antithetic_keys(state.generation, seeds, self.with_mean)
        return keys, dataclasses.replace(state, rng=rng.bit_generator.state, population=list(keys))

    def member_vectors(self, genomes: Sequence[Genome], state: ESState) -> torch.Tensor:
        mean = self._mean_tensor(state)
        rows = [mean if sign == 0 else mean + (sign * self.options.es_sigma) * self.direction(seed)
                for _, seed, sign in genomes]  # fmt: skip
        return torch.stack(rows)  # (P, D)

    def gradient(self, genomes: Sequence[Genome], fitness: np.ndarray) -> np.ndarray:
        """The search gradient estimate (D,) from the antithetic members' centred ranks."""
        pairs = [(i, g) for i, g in enumerate(genomes) if g[2] != 0]
        shaped = centred_ranks(np.asarray(fitness)[[i for i, _ in pairs]])  # (2n,)
        seeds = sorted({g[1] for _, g in pairs})
        eps = self.directions(seeds)  # (n, D)
        weight = np.zeros(len(seeds))
        at = {s: k for k, s in enumerate(seeds)}
        for r, (_, (_, seed, sign)) in zip(shaped, pairs, strict=True):
            weight[at[seed]] += sign * r
        return weight @ eps / (len(pairs) * self.options.es_sigma)

    def update(self, state: ESState, genomes: Sequence[Genome], fitness: np.ndarray) -> ESState:
        o = self.options
        theta = np.asarray(state.mean)
        step_grad = -self.gradient(genomes, fitness) + o.es_weight_decay * theta  # minimised, as in Salimans et al.
        t = state.generation  # already this generation's count: Adam's step number
        m = o.es_beta1 * np.asarray(state.adam_m) + (1 - o.es_beta1) * step_grad
        v = o.es_beta2 * np.asarray(state.adam_v) + (1 - o.es_beta2) * step_grad**2
        lr = o.es_lr * np.sqrt(1 - o.es_beta2**t) / (1 - o.es_beta1**t)
        theta = theta - lr * m / (np.sqrt(v) + 1e-8)
        best = float(fitness[-1]) if self.with_mean else float(np.max(fitness))
        return dataclasses.replace(state, mean=theta.tolist(), adam_m=m.tolist(), adam_v=v.tolist(), best=(t, 0, 0),
                                   best_fitness=best)  # fmt: skip
