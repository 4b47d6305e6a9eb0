"""Truncation-selection genetic algorithm with elitism over seed-chain genomes.

Such et al. 2017, "Deep Neuroevolution: Genetic Algorithms Are a Competitive Alternative
for Training Deep Neural Networks for Reinforcement Learning", Algorithm 1 and Uber's
``es_distributed/ga.py``. Each generation the top T members become parents; every child is a
uniformly chosen parent plus one mutation seed. The top few members are re-evaluated on extra
episodes and the best of them is crowned elite and copied unchanged into the next generation
(a noisy single episode does not crown a lucky member). As in Such et al., the previous elite is
always among the re-evaluated candidates (their candidates: the top 9 plus the elite) and among
the parents (their ``ga.py`` pools it with the children before truncating), so one unlucky
episode cannot drop it.

Where evoboard differs: the elite is also re-scored with the population on this generation's
episodes (their Algorithm 1 evaluates only the N - 1 children), which gives every child's parent
a fitness on its child's episodes for free when the parent is the elite; the other parents are
evaluated beside the population (``references``) to measure mutation effects, costing
up to T - elites extra members a generation (those some child picked; ``mutation_stats=false`` turns
it off). Re-evaluation
defaults to the top 3 on 3 episodes, cheap on two cores; Such et al.'s Atari setting is
``--set elite_candidates=10 --set elite_episodes=30``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from evoboard.agents.algorithms.base import AlgorithmState, SearchAlgorithm, draw_seed, rng_from
from evoboard.agents.encodings.base import Genome
from evoboard.options import Checked, bounded


@dataclasses.dataclass
class EliteOptions(Checked):
    """How a search keeps and crowns its elites (Such et al. 2017)."""

    elites: int = bounded(1, ge=0)
    """Members copied unchanged into the next generation."""
    elite_candidates: int = bounded(3, ge=0)
    """Members re-evaluated on extra episodes before the elites are crowned: the previous elites, then the best
    others (raised to at least ``elites``, and to the previous elites + 1 so a newcomer can win; 0: no
    re-evaluation, the generation's best are the elites). Such et al.: 10 (the top 9 and the elite); evoboard: 3."""
    elite_episodes: int = bounded(3, ge=1)
    """Extra episodes each elite candidate is re-evaluated on. Such et al.: 30; evoboard: 3, cheaper."""


@dataclasses.dataclass
class GAOptions(EliteOptions):
    """Settings of the genetic algorithm."""

    truncation: int | None = bounded(None, ge=1)
    """Parents kept each generation (top T); default: a quarter of the population, at least 2."""
    mutation_stats: bool = True
    """Evaluate the parents beside their children on the same episodes each generation, for the history's
    ``harmful_fraction`` and ``median_delta`` (costs T - elites extra members a generation)."""


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

    def __init__(self, population: int, options: EliteOptions):
        super().__init__(population, options)
        self.truncation = self.parents_kept(options)
        if options.elites >= population:
            raise ValueError(f"elites ({options.elites}) must be < population ({population})")
        self.n_candidates = (
            min(max(options.elite_candidates, options.elites), population) if options.elite_candidates else 0
        )
        self.reevaluation_episodes = options.elite_episodes

    def parents_kept(self, options: GAOptions) -> int:
        """T, the parents kept each generation."""
        truncation = options.truncation or max(2, self.population // 4)
        if truncation > self.population:
            raise ValueError(f"truncation ({truncation}) must be <= population ({self.population})")
        return truncation

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
        previous = list(state.elites)  # the last crowned elites: candidates and parents whatever they scored now
        state = dataclasses.replace(state, parents=distinct(previous + ranked)[: self.truncation])
        if self.n_candidates:
            count = max(self.n_candidates, len(previous) + 1)  # at least one newcomer can take the crown
            return dataclasses.replace(state, candidates=distinct(previous + ranked)[:count])
        return self._crowned(state, ranked, fitness)

    def candidates(self, state: GAState) -> list[Genome]:
        return list(state.candidates)

    def update_elite(self, state: GAState, genomes: Sequence[Genome], fitness: np.ndarray) -> GAState:
        return self._crowned(state, [tuple(genomes[i]) for i in rank(fitness)], fitness, candidates=[])

    def _crowned(self, state: GAState, ranked: list[Genome], fitness: np.ndarray, **changes) -> GAState:
        """The top of ``ranked`` become the elites (and parents); the first is the reported best."""
        elites = ranked[: self.options.elites]
        parents = distinct(elites + state.parents)[: self.truncation] if self.truncation else []
        return dataclasses.replace(state, elites=elites, parents=parents, best=ranked[0],
                                   best_fitness=float(np.max(fitness)), **changes)  # fmt: skip

    # -- mutation effects -----------------------------------------------------------------
    def references(self, state: GAState) -> list[Genome]:
        """The parents of this generation's children that are not in the population (the elites are).

        A parent no child picked is left out: no child's effect is measured against it, and it is the
        one parent a decode would not have at hand (``encodings.replay.DecodeCache`` keeps the parents
        the children were mutated from).
        """
        if not self.options.mutation_stats or state.generation == 0:
            return []
        elites = set(state.elites)
        picked = {tuple(g[:-1]) for g in state.population[len(state.elites) :]}
        return [p for p in state.parents if p not in elites and p in picked]

    def metrics(
        self, state: GAState, genomes: Sequence[Genome], fitness: np.ndarray, references: Sequence[Genome],
        reference_fitness: np.ndarray,
    ) -> dict[str, float]:  # fmt: skip
        """``harmful_fraction`` and ``median_delta`` of the children against their parents on the same episodes."""
        if not self.options.mutation_stats:
            return {}
        first = len(state.elites)  # ask puts the elites first, then the children
        children = [tuple(g) for g in genomes[first:]] if state.generation else []
        known = dict(zip([tuple(g) for g in [*genomes, *references]], [*fitness, *reference_fitness], strict=True))
        return mutation_effects(children, np.asarray(fitness)[first : first + len(children)], known)


def mutation_effects(children: Sequence[Genome], fitness: np.ndarray, known: dict[Genome, float]) -> dict[str, float]:
    """Fraction of children worse than their parent and the median child-minus-parent change.

    A child's parent is its seed chain less the last seed; children whose parent has no fitness in
    ``known`` are left out, as are pairs where both are -inf. NaN when no pair is left.
    """
    deltas = np.array([f - known[tuple(c[:-1])] for c, f in zip(children, fitness, strict=True)
                       if tuple(c[:-1]) in known], dtype=np.float64)  # fmt: skip
    deltas = deltas[~np.isnan(deltas)]
    if not len(deltas):
        return {"harmful_fraction": float("nan"), "median_delta": float("nan")}
    return {"harmful_fraction": float(np.mean(deltas < 0)), "median_delta": float(np.median(deltas))}


def distinct(genomes: Sequence[Genome]) -> list[Genome]:
    """``genomes`` in order with repeats left out."""
    return list(dict.fromkeys(genomes))


def rank(fitness: np.ndarray) -> np.ndarray:
    """Indices of finite-or--inf ``fitness`` from best to worst; ties keep population order (stable)."""
    return np.argsort(-np.asarray(fitness, dtype=np.float64), kind="stable")
