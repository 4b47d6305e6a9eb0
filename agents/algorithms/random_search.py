"""Random search: every generation P fresh members from the encoding's init; the best are crowned as the GA does.

Such et al. 2017 found random search competitive with DQN, A3C and ES on some Atari games, so it
belongs on every table as a baseline. It is the GA with no inheritance: a genome is a fresh
init seed ``(seed,)``, generation 0 is exactly the GA's, and the elites are chosen by the GA's
own re-evaluation (the previous elites among the candidates), so the two differ only in
mutation. Unlike the GA, the elites are not copied into the next population: all P members
are new, and with ``elite_candidates=0`` the reported best is the generation's best.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from evoboard.agents.algorithms.base import draw_seed, rng_from
from evoboard.agents.algorithms.ga import GA, EliteOptions, GAState
from evoboard.agents.encodings.base import Genome


class RandomSearch(GA):
    name = "random"
    Options = EliteOptions

    def parents_kept(self, options: EliteOptions) -> int:
        return 0  # nothing is inherited

    def ask(self, state: GAState) -> tuple[list[Genome], GAState]:
        if state.generation == 0:
            return list(state.population), state
        rng = rng_from(state.rng)
        population = [(draw_seed(rng),) for _ in range(self.population)]
        return list(population), dataclasses.replace(state, rng=rng.bit_generator.state, population=population)

    def references(self, state: GAState) -> list[Genome]:
        return []

    def metrics(self, state, genomes: Sequence[Genome], fitness: np.ndarray, references, reference_fitness) -> dict:
        return {}  # no child has a parent
