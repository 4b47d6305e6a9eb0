"""Algorithms by name, of three kinds: ``SearchAlgorithm`` (ask/tell), ``DirectTrainer`` and ``CountModel``
(a baseline fit by counting: ``unigram``, ``bigram``); ``random`` search is the baseline of the searches.

Plugins join through the ``evoboard.algorithms`` entry points.
"""

from __future__ import annotations

from evoboard.agents.algorithms.adam import Adam
from evoboard.agents.algorithms.base import Algorithm, AlgorithmState, DirectTrainer, SearchAlgorithm, VectorSearch
from evoboard.agents.algorithms.count_models import Bigram, CountModel, Unigram
from evoboard.agents.algorithms.es import OpenAIES
from evoboard.agents.algorithms.ga import GA
from evoboard.agents.algorithms.random_search import RandomSearch
from evoboard.agents.algorithms.rso import RSO
from evoboard.agents.algorithms.snes import SNES
from evoboard.agents.registry import Registry

ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm", "evoboard.algorithms")
ALGORITHMS.register("ga")(GA)
ALGORITHMS.register("adam")(Adam)
ALGORITHMS.register("openai-es")(OpenAIES)
ALGORITHMS.register("snes")(SNES)
ALGORITHMS.register("rso")(RSO)
ALGORITHMS.register("random")(RandomSearch)
ALGORITHMS.register("unigram")(Unigram)
ALGORITHMS.register("bigram")(Bigram)

BASELINES = ("random", "unigram", "bigram")
"""Algorithms every table should show beside the variants: what a method must beat to claim learning."""


def make(name: str, population: int, options=None) -> Algorithm:
    """An algorithm for ``population`` members; ``options`` defaults to its own defaults."""
    cls = ALGORITHMS.get(name)
    return cls(population, options if options is not None else cls.Options())


__all__ = [
    "ALGORITHMS", "BASELINES", "Algorithm", "AlgorithmState", "CountModel", "DirectTrainer", "SearchAlgorithm",
    "VectorSearch", "make",
]  # fmt: skip
