"""The ask/tell contract over explicit, checkpointable state (fitness is maximised).

The runner's loop is: ask -> decode -> evaluate -> tell, then, for algorithms that
re-evaluate their best candidates on extra episodes before crowning an elite
(Such et al. 2017), candidates -> evaluate -> crown. State is a plain dataclass of
JSON-ready values (genomes are seed chains, the RNG is numpy's bit-generator state), so
a checkpoint is a small JSON file and never needs unpickling.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from agents.encodings.base import MAX_SEED, Genome


def rng_from(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def draw_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, MAX_SEED))


@dataclasses.dataclass
class AlgorithmState:
    """What every algorithm tracks: generation, RNG, best genome and its fitness."""

    generation: int
    rng: dict
    best: list[int] | None = None
    best_fitness: float = float("-inf")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlgorithmState:
        return cls(**data)


class Algorithm(ABC):
    """One population size and option set; all methods are pure functions of the state."""

    name: ClassVar[str]
    Options: ClassVar[type]
    State: ClassVar[type[AlgorithmState]] = AlgorithmState

    def __init__(self, population: int, options):
        if population < 2:
            raise ValueError(f"population must be >= 2, got {population}")
        self.population, self.options = population, options

    @abstractmethod
    def init(self, seed: int) -> AlgorithmState:
        """Fresh state whose every random draw follows from ``seed``."""

    @abstractmethod
    def ask(self, state: AlgorithmState) -> tuple[list[Genome], AlgorithmState]:
        """The genomes to evaluate this generation."""

    @abstractmethod
    def tell(self, state: AlgorithmState, genomes: Sequence[Genome], fitness: np.ndarray) -> AlgorithmState:
        """Update with one fitness per genome (higher is better)."""

    reevaluation_episodes: int = 0
    """Episodes each of ``candidates`` is re-evaluated on."""

    def candidates(self, state: AlgorithmState) -> list[Genome]:
        """Genomes to re-evaluate on extra episodes before crowning; none by default."""
        return []

    def crown(self, state: AlgorithmState, genomes: Sequence[Genome], fitness: np.ndarray) -> AlgorithmState:
        """Take the extra-episode fitness of ``candidates``; nothing to do by default."""
        return state

    def decode(self, encoding, genomes: Sequence[Genome], state: AlgorithmState):
        """Parameters of ``genomes``: their seed chains through the encoding, by default.

        An algorithm whose members are not seed chains (an ES perturbing its mean) overrides this.
        """
        return encoding.decode(genomes)

    def best(self, state: AlgorithmState) -> Genome:
        """The genome the run reports: its final score is measured on held-out episodes."""
        if state.best is None:
            raise RuntimeError("no generation has been told yet")
        return tuple(state.best)

    def state_from_json(self, data: dict[str, Any]) -> AlgorithmState:
        return self.State.from_json(data)
