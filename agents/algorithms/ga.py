"""Truncation-selection genetic algorithm with elitism over seed-chain genomes.

Such et al. 2017, "Deep Neuroevolution: Genetic Algorithms Are a Competitive Alternative
for Training Deep Neural Networks for Reinforcement Learning". Each generation the top T
members become parents; every child is a uniformly chosen parent plus one mutation seed.
The top few members are re-evaluated on extra episodes and the best of them is crowned
elite and copied unchanged into the next generation (a noisy single episode does not crown
a lucky member).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from agents.algorithms.base import AlgorithmState, SearchAlgorithm, draw_seed, rng_from
from agents.encodings.base import Genome


@dataclasses.dataclass
class GAOptions:
    """Settings of the genetic algorithm."""

    truncation: int | None = None
    """Parents kept each generation (top T); default: a quarter of the population, at least 2."""
    elites: int = 1
    """Members copied unchanged into the next generation."""
    elite_candidates: int = 3
    """Top members re-evaluated on extra episodes before the elites are chosen (raised to at least
    ``elites``; 0: no re-evaluation, the generation's best are the elites)."""
    elite_episodes: int = 3
    """Extra episodes each elite candidate is re-evaluated on."""

    def __post_init__(self) -> None:
        if self.truncation is not None and self.truncation < 1:
            raise ValueError(f"truncation must be >= 1, got {self.truncation}")
        if self.elites < 0:
            raise ValueError(f"elites must be >= 0, got {self.elites}")
        if self.elite_candidates < 0:
            raise ValueError(f"elite_candidates must be >= 0, got {self.elite_candidates}")
        if self.elite_episodes < 1:
            raise ValueError(f"elite_episodes must be >= 1, got {self.elite_episodes}")


@dataclasses.dataclass
class GAState(AlgorithmState):
    population: list[Genome] = dataclasses.field(default_factory=list)
    parents: list[Genome] = dataclasses.field(default_factory=list)
    elites: list[Genome] = dataclasses.field(default_factory=list)
    candidates: list[Genome] = dataclasses.field(default_factory=list)

    genome_lists = ("population", "parents", "elites", "candidates")


class GA(SearchAlgorithm):
    name = "ga"
    Options = GAOptions
    State = GAState

    def __init__(self, population: int, options: GAOptions):
        super().__init__(population, options)
        self.truncation = options.truncation or max(2, population // 4)
        if self.truncation > population:
            raise ValueError(f"truncation ({self.truncation}) must be <= population ({population})")
        if options.elites >= population:
            raise ValueError(f"elites ({options.elites}) must be < population ({population})")
        self.n_candidates = (
            min(max(options.elite_candidates, options.elites), population) if options.elite_candidates else 0
        )
        self.reevaluation_episodes = options.elite_episodes

    def init(self, seed: int) -> GAState:
        rng = np.random.default_rng(seed)
        population = [(draw_seed(rng),) for _ in range(self.population)]
        return GAState(generation=0, rng=rng.bit_generator.state, population=population)

    def ask(self, state: GAState) -> tuple[list[Genome], GAState]:
        if state.generation == 0:
            return list(state.population), state
        rng = rng_from(state.rng)
        picks = rng.integers(0, len(state.parents), size=self.population - len(state.elites))
        children = [(*state.parents[p], draw_seed(rng)) for p in picks]
        population = list(state.elites) + children
        return list(population), dataclasses.replace(state, rng=rng.bit_generator.state, population=population)

    def update(self, state: GAState, genomes: Sequence[Genome], fitness: np.ndarray) -> GAState:
        ranked = [tuple(genomes[i]) for i in rank(fitness)]
        state = dataclasses.replace(state, parents=ranked[: self.truncation])
        if self.n_candidates:
            return dataclasses.replace(state, candidates=ranked[: self.n_candidates])
        return self._crowned(state, ranked, fitness)

    def candidates(self, state: GAState) -> list[Genome]:
        return list(state.candidates)

    def update_elite(self, state: GAState, genomes: Sequence[Genome], fitness: np.ndarray) -> GAState:
        return self._crowned(state, [tuple(genomes[i]) for i in rank(fitness)], fitness, candidates=[])

    def _crowned(self, state: GAState, ranked: list[Genome], fitness: np.ndarray, **changes) -> GAState:
        """The top of ``ranked`` become the elites; the first is the reported best."""
        best = float(np.max(fitness))
        return dataclasses.replace(state, elites=ranked[: self.options.elites], best=ranked[0], best_fitness=best,
                                   **changes)  # fmt: skip


def rank(fitness: np.ndarray) -> np.ndarray:
    """Indices of finite-or--inf ``fitness`` from best to worst; ties keep population order (stable)."""
    return np.argsort(-np.asarray(fitness, dtype=np.float64), kind="stable")
