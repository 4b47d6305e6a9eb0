"""Algorithms by name, of two kinds: ``SearchAlgorithm`` (ask/tell) and ``DirectTrainer``.

Plugins join through the ``evoboard.algorithms`` entry points.
"""

from __future__ import annotations

from agents.algorithms.adam import Adam
from agents.algorithms.base import Algorithm, AlgorithmState, DirectTrainer, SearchAlgorithm, VectorSearch
from agents.algorithms.es import OpenAIES
from agents.algorithms.ga import GA
from agents.algorithms.rso import RSO
from agents.algorithms.snes import SNES
from agents.registry import Registry

ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm", "evoboard.algorithms")
ALGORITHMS.register("ga")(GA)
ALGORITHMS.register("adam")(Adam)
ALGORITHMS.register("openai-es")(OpenAIES)
ALGORITHMS.register("snes")(SNES)
ALGORITHMS.register("rso")(RSO)


def make(name: str, population: int, options=None) -> Algorithm:
    """An algorithm for ``population`` members; ``options`` defaults to its own defaults."""
    cls = ALGORITHMS.get(name)
    return cls(population, options if options is not None else cls.Options())


__all__ = ["ALGORITHMS", "Algorithm", "AlgorithmState", "DirectTrainer", "SearchAlgorithm", "VectorSearch", "make"]
