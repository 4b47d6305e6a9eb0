"""SNES: separable natural evolution strategies, a mean and one sigma per parameter.

Schaul, Glasmachers & Schmidhuber 2011, "High Dimensions and Heavy Tails for Natural
Evolution Strategies". Members are mu + sigma * eps with eps ~ N(0, I) the member's seed's
slice of the shared noise table (``encodings.noise``), all members in one gather; fitness is
replaced by the NES rank utilities; the natural gradient moves
mu by eta_mu * sigma * sum_k u_k eps_k and sigma multiplicatively by
exp(eta_sigma / 2 * sum_k u_k (eps_k^2 - 1)). Its per-parameter sigma gives the
signal-to-noise score |mu_i| / sigma_i that Lange & Sprekeler 2023 ("Lottery Tickets in
Evolutionary Optimization") prune by. The per-parameter scaling needs independent
Gaussian noise per search dimension: ``dense`` and ``lowrank`` (its factors), not the
rank-r noise of ``lowrank-perturb``. The mean and sigmas are float32 tensors on the
encoding's device; ``tell`` is a fixed number of tensor ops on them and on the noise rows
decoding drew, whatever the population.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from evoboard.agents.algorithms.base import draw_seed, rng_from
from evoboard.agents.algorithms.es import MeanSearch, MeanState
from evoboard.agents.encodings.base import Genome
from evoboard.options import Checked, bounded


def nes_utilities(fitness: np.ndarray) -> np.ndarray:
    """NES rank utilities of finite-or--inf fitness: u_k = max(0, log(n/2 + 1) - log k) normalised, minus 1/n
    (k = 1 is the best)."""
    fitness = np.asarray(fitness, dtype=np.float64)
    n = len(fitness)
    k = np.arange(1, n + 1)
    raw = np.maximum(0.0, math.log(n / 2 + 1) - np.log(k))
    by_rank = raw / raw.sum() - 1.0 / n
    out = np.empty(n)
    out[np.argsort(-fitness, kind="stable")] = by_rank
    return out


@dataclasses.dataclass
class SNESOptions(Checked):
    """Settings of SNES."""

    snes_sigma: float = bounded(0.05, gt=0, finite=True)
    """Initial per-parameter noise std."""
    snes_lr: float = bounded(1.0, gt=0, finite=True)
    """Learning rate of the mean (Schaul et al.: 1)."""
    snes_sigma_lr: float | None = bounded(None, gt=0, finite=True)
    """Learning rate of log sigma; default (3 + ln D) / (5 sqrt D) (Schaul et al. 2011)."""


@dataclasses.dataclass(eq=False)
class SNESState(MeanState):
    sigma: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))

    tensor_fields = ("mean", "sigma")


class SNES(MeanSearch):
    """Separable NES (Schaul et al. 2011): Gaussian search with one sigma per parameter."""

    name = "snes"
    Options = SNESOptions
    State = SNESState
    needs = "independent_noise"  # independent noise per dimension, as the per-parameter sigma needs

    def init(self, seed: int) -> SNESState:
        init_seed, mean = self.initial_mean(seed)
        rng = np.random.default_rng([seed, 1])
        return SNESState(generation=0, rng=rng.bit_generator.state, init_seed=init_seed, mean=mean,
                         sigma=torch.full_like(mean, self.options.snes_sigma))  # fmt: skip

    def ask(self, state: SNESState) -> tuple[list[Genome], SNESState]:
        rng = rng_from(state.rng)
        keys = [(state.generation, draw_seed(rng), 1) for _ in range(self.population)]
        return keys, dataclasses.replace(state, rng=rng.bit_generator.state, population=list(keys))

    def member_vectors(self, genomes: Sequence[Genome], state: SNESState) -> torch.Tensor:
        seeds = [seed for _, seed, sign in genomes if sign != 0]  # the update's order: one seed a member
        return self.perturbed(genomes, state.mean, state.sigma, seeds)  # (P, D)

    def update(self, state: SNESState, genomes: Sequence[Genome], fitness: np.ndarray) -> SNESState:
        sampled = [i for i, g in enumerate(genomes) if g[2] != 0]
        u = self.weights(nes_utilities(np.asarray(fitness)[sampled]))  # (n,)
        eps = self.directions([genomes[i][1] for i in sampled])  # (n, D): the rows decoding drew
        mu, sigma = state.mean, state.sigma
        dims = len(mu)
        eta_sigma = self.options.snes_sigma_lr or (3 + math.log(dims)) / (5 * math.sqrt(dims))
        mu = mu + self.options.snes_lr * sigma * (u @ eps)
        sigma = sigma * torch.exp(0.5 * eta_sigma * (u @ eps.square().sub_(1.0)))  # one (n, D) temporary
        return dataclasses.replace(state, mean=mu, sigma=sigma, best=(state.generation, 0, 0),
                                   best_fitness=float(np.max(fitness)))  # fmt: skip

    def signal_to_noise(self, state: SNESState) -> np.ndarray:
        """|mu_i| / sigma_i per search dimension (D,): Lange & Sprekeler's pruning score."""
        return (state.mean.abs() / state.sigma).double().cpu().numpy()
