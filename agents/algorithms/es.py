"""OpenAI-ES: antithetic Gaussian perturbations of a mean, centred ranks, Adam on the mean, weight decay.

Salimans, Ho, Chen, Sidor & Sutskever 2017, "Evolution Strategies as a Scalable Alternative
to Reinforcement Learning". Each generation draws n seeds; members are the mean plus and
minus sigma times the noise of each seed (antithetic pairs), their fitness is replaced by
centred ranks in [-0.5, 0.5], and Adam minimises -g + l2 * theta with

    g = 1/(2n) sum_j (rank_j+ - rank_j-) eps(seed_j)

exactly as the authors' code does (openai/evolution-strategies-starter, es_distributed/es.py:
``g, count = batched_weighted_sum(...)``; ``g /= returns_n2.size``;
``optimizer.update(-g + config.l2coeff * theta)``): g is *not* divided by sigma, so the L2
term keeps its weight against it; Adam's step normalises g's scale either way. An odd
population adds the mean itself as its last member, so each generation also reports the
fitness of the point being optimised.

Members are not seed chains: a genome is the key (generation, seed, sign) and ``decode``
builds mean + sign * sigma * eps(seed) in the encoding's search space. ``best`` is
(generation, 0, 0), which decodes to the mean. The mean and the Adam moments are float32
tensors on the encoding's device; a generation's members are one gather of their noise rows
(a seed's slice of the shared noise table, ``encodings.noise``) and two ops, and ``tell`` is a
fixed number of tensor ops on the rows decoding drew, whatever the population. The noise eps is the
encoding's own direction for a seed (``SeedChainEncoding.direction``): standard normal in
the search vector for ``dense`` and ``lowrank`` (whose search vector is the factors), rank-r noise A B^T / sqrt(r) for
``lowrank-perturb`` (EGGROLL, Sarkar et al. 2025: each entry has unit variance and entries
are uncorrelated, so the same estimator holds). ``sparse`` mutations touch a seed-chosen
subset with their own scale; that pairing is refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from evoboard.agents.algorithms.base import AlgorithmState, VectorSearch, draw_seed, rng_from
from evoboard.agents.encodings.base import Genome, SeedChainEncoding
from evoboard.agents.layers import PopulationParams
from evoboard.options import Checked, bounded


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


@dataclasses.dataclass(eq=False)
class MeanState(AlgorithmState):
    """A search distribution's mean (D,) (and what moves it) as tensors on the run's device."""

    init_seed: int = 0
    mean: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))
    population: list[Genome] = dataclasses.field(default_factory=list)

    genome_lists = ("population",)
    tensor_fields = ("mean",)


class MeanSearch(VectorSearch):
    """Shared part of the evolution strategies: a mean in the encoding's search space, keys as genomes.

    The search space is the encoding's, so an ES is bound to an encoding (``bind``) before
    ``init``; the runner binds it when it builds a run.
    """

    needs: ClassVar[str] = "uncorrelated_noise"  # the estimator needs unit-variance, uncorrelated directions

    encoding: SeedChainEncoding | None = None

    def bind(self, encoding) -> None:
        super().bind(encoding)
        self._noise: tuple[tuple[int, ...], torch.Tensor] | None = None  # the last directions' seeds and rows

    def _bound(self) -> SeedChainEncoding:
        if self.encoding is None:
            raise RuntimeError(f"algorithm {self.name} searches an encoding's space: call bind(encoding) first")
        return self.encoding

    def direction(self, seed: int) -> torch.Tensor:
        """Unit-variance noise eps(seed) (D,) in the search space, from the seed alone."""
        return self.directions([seed])[0]

    def directions(self, seeds: Sequence[int]) -> torch.Tensor:
        """eps of each seed: (n, D) float32 on the device, read-only, drawn in one batch. The last call's rows
        are kept, so ``tell`` reuses what decoding the same generation drew (a generation's noise is drawn once)."""
        key = tuple(seeds)
        if self._noise is None or self._noise[0] != key:
            self._noise = None  # free the previous generation's rows before drawing this one's
            self._noise = (key, self._bound().directions(key).float())
        return self._noise[1]

    def perturbed(
        self, genomes: Sequence[Genome], mean: torch.Tensor, scale: torch.Tensor | float, seeds: Sequence[int]
    ) -> torch.Tensor:
        """Rows mean + (sign * scale) * eps(seed) of keyed members (P, D); a sign-0 key is the mean itself.

        ``seeds``: the members' distinct seeds in the order ``tell`` asks ``directions`` for them,
        so a generation's noise is drawn once. All rows at once: one gather of each member's eps,
        then eps * scale * sign (sign is +-1, so the product is exactly (sign * scale) * eps), then
        + mean, a fixed number of tensor ops whatever P.
        """
        at = {s: k for k, s in enumerate(seeds)}
        device = mean.device
        rows = [at[seed] if sign else 0 for _, seed, sign in genomes]
        signs = [sign for _, _, sign in genomes]
        if not seeds:
            return mean.expand(len(genomes), -1).clone()
        eps = self.directions(seeds).index_select(0, torch.as_tensor(rows, device=device))  # (P, D), a copy
        if isinstance(scale, torch.Tensor):
            eps.mul_(scale)
            if any(sign != 1 for sign in signs):
                eps.mul_(torch.tensor(signs, dtype=mean.dtype, device=device)[:, None])
        else:
            eps.mul_(torch.tensor([sign * scale for sign in signs], dtype=mean.dtype, device=device)[:, None])
        members = eps.add_(mean)  # (P, D)
        keep = [i for i, sign in enumerate(signs) if sign == 0]
        if keep:
            members[torch.as_tensor(keep, device=device)] = mean  # the mean itself, not mean + 0 * eps
        return members

    def initial_mean(self, seed: int) -> tuple[int, torch.Tensor]:
        """The init seed (the GA's first member for ``seed``) and the encoding's initial vector (D,) for it."""
        init_seed = draw_seed(np.random.default_rng(seed))
        return init_seed, self._bound().init_vector(init_seed).float().clone()

    def weights(self, values: np.ndarray) -> torch.Tensor:
        """Per-member weights (fitness shaping, n values) as a float32 tensor on the search's device."""
        return torch.as_tensor(np.asarray(values, dtype=np.float32), device=self._bound().device)

    def state_from_json(self, data, tensors=None) -> MeanState:
        state = super().state_from_json(data, tensors)
        device = self._bound().device
        moved = {key: getattr(state, key).to(device=device, dtype=torch.float32) for key in state.tensor_fields}
        return dataclasses.replace(state, **moved)

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


@dataclasses.dataclass
class ESOptions(Checked):
    """Settings of OpenAI-ES."""

    es_sigma: float = bounded(0.02, gt=0, finite=True)
    """Noise std of the antithetic perturbations, in search-vector units."""
    es_lr: float = bounded(0.01, gt=0, finite=True)
    """Adam step size on the mean."""
    es_weight_decay: float = bounded(0.005, ge=0, finite=True)
    """L2 coefficient on the mean: Adam minimises -g + es_weight_decay * theta, g not divided by sigma
    (Salimans et al.'s code)."""
    es_beta1: float = bounded(0.9, ge=0, lt=1)
    """Adam first-moment decay."""
    es_beta2: float = bounded(0.999, ge=0, lt=1)
    """Adam second-moment decay."""


@dataclasses.dataclass(eq=False)
class ESState(MeanState):
    adam_m: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))
    adam_v: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))

    tensor_fields = ("mean", "adam_m", "adam_v")


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
        rng = np.random.default_rng([seed, 1])
        return ESState(generation=0, rng=rng.bit_generator.state, init_seed=init_seed, mean=mean,
                       adam_m=torch.zeros_like(mean), adam_v=torch.zeros_like(mean))  # fmt: skip

    def ask(self, state: ESState) -> tuple[list[Genome], ESState]:
        rng = rng_from(state.rng)
        seeds = [draw_seed(rng) for _ in range(self.pairs)]
        keys = antithetic_keys(state.generation, seeds, self.with_mean)
        return keys, dataclasses.replace(state, rng=rng.bit_generator.state, population=list(keys))

    def member_vectors(self, genomes: Sequence[Genome], state: ESState) -> torch.Tensor:
        seeds = sorted({seed for _, seed, sign in genomes if sign != 0})  # the gradient's order
        return self.perturbed(genomes, state.mean, self.options.es_sigma, seeds)  # (P, D)

    def gradient(self, genomes: Sequence[Genome], fitness: np.ndarray) -> torch.Tensor:
        """g = 1/(2n) sum_j (rank_j+ - rank_j-) eps(seed_j): (D,), not divided by sigma (Salimans et al.'s code)."""
        pairs = [(i, g) for i, g in enumerate(genomes) if g[2] != 0]
        shaped = centred_ranks(np.asarray(fitness)[[i for i, _ in pairs]])  # (2n,)
        seeds = sorted({g[1] for _, g in pairs})
        at = {s: k for k, s in enumerate(seeds)}
        weight = np.zeros(len(seeds))
        np.add.at(weight, [at[g[1]] for _, g in pairs], np.array([g[2] for _, g in pairs]) * shaped)
        return self.weights(weight) @ self.directions(seeds) / len(pairs)  # (n,) @ (n, D)

    def update(self, state: ESState, genomes: Sequence[Genome], fitness: np.ndarray) -> ESState:
        """One Adam step (Kingma & Ba 2015, as the starter's optimizers.Adam) on -g + l2 * theta."""
        o = self.options
        theta = state.mean
        step_grad = -self.gradient(genomes, fitness) + o.es_weight_decay * theta  # minimised, as in Salimans et al.
        t = state.generation  # already this generation's count: Adam's step number
        m = o.es_beta1 * state.adam_m + (1 - o.es_beta1) * step_grad
        v = o.es_beta2 * state.adam_v + (1 - o.es_beta2) * step_grad.square()
        lr = o.es_lr * math.sqrt(1 - o.es_beta2**t) / (1 - o.es_beta1**t)
        theta = theta - lr * m / (v.sqrt() + 1e-8)
        best = float(fitness[-1]) if self.with_mean else float(np.max(fitness))
        return dataclasses.replace(state, mean=theta, adam_m=m, adam_v=v, best=(t, 0, 0), best_fitness=best)
