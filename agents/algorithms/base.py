"""The kinds of algorithm, as types: an ask/tell search and a direct trainer (fitness is maximised).

A ``SearchAlgorithm`` runs the loop ask -> decode -> evaluate -> tell, then, for algorithms
that re-evaluate their best candidates on extra episodes before crowning an elite (Such et al.
2017), candidates -> evaluate -> crown. Like evosax's base class it owns the work every search
shares, once: fitness made finite (NaN and +-inf become -inf), the generation counter and the
best fitness so far; a subclass fills the ``update`` (and ``update_elite``) hook. A
``VectorSearch`` is a search whose members are keys into the encoding's vector space, decoded
from its state (an ES perturbing its mean) rather than seed chains the encoding replays.

A ``DirectTrainer`` (a gradient reference, RSO) improves one network in place through a
trainer object; the runner drives its ``trainer`` instead of ask/tell. A third kind, a count model
fit once on a task's data (the char-LM baselines), lives in ``count_models``.

State is a plain dataclass; genomes are ``tuple[int, ...]`` in memory and lists only in its
JSON (the RNG is numpy's bit-generator state). Large state (an ES mean, Adam moments, sigmas)
is a torch tensor on the run's device, named in ``tensor_fields``: ``split`` gives the small
JSON part and the tensors apart (a checkpoint keeps them in safetensors, never unpickled),
``to_json`` the whole state as lists (portable, slow for large states).
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from evoboard.agents.encodings import declaring
from evoboard.agents.encodings.base import MAX_SEED, Genome


def rng_from(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def draw_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, MAX_SEED))


def finite_fitness(fitness: Sequence[float] | np.ndarray) -> np.ndarray:
    """Fitness as float64 with every NaN or infinity as -inf: a broken member ranks last, never first."""
    fitness = np.asarray(fitness, dtype=np.float64)
    return np.where(np.isfinite(fitness), fitness, -np.inf)


@dataclasses.dataclass
class AlgorithmState:
    """What every algorithm tracks: generation, RNG, the reported genome and its fitness, the best fitness so far."""

    generation: int
    rng: dict
    best: Genome | None = None
    best_fitness: float = float("-inf")
    best_so_far: float = float("-inf")
    """The highest (finite) fitness of any member told so far."""

    genome_lists: ClassVar[tuple[str, ...]] = ()
    """Fields holding lists of genomes: tuples in memory, lists in JSON."""
    tensor_fields: ClassVar[tuple[str, ...]] = ()
    """Fields holding torch tensors: safetensors in a checkpoint, lists in ``to_json``."""

    def split(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The JSON-ready part (no tensor fields) and the tensors by field name."""
        tensors = {key: getattr(self, key) for key in self.tensor_fields}
        data = copy.deepcopy({f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in tensors})
        data["best"] = None if self.best is None else list(self.best)
        for key in self.genome_lists:
            data[key] = [list(g) for g in data[key]]
        return data, tensors

    def to_json(self) -> dict[str, Any]:
        """The whole state JSON-ready, tensors as lists of floats."""
        data, tensors = self.split()
        return {**data, **{key: t.tolist() for key, t in tensors.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> AlgorithmState:
        """Inverse of ``split`` (``tensors`` given) or of ``to_json`` (tensor fields as lists in ``data``)."""
        data = dict(data)
        if data.get("best") is not None:
            data["best"] = tuple(data["best"])
        for key in cls.genome_lists:
            if key in data:
                data[key] = [tuple(g) for g in data[key]]
        for key in cls.tensor_fields:
            if tensors is not None and key in tensors:
                data[key] = tensors[key]
            elif key in data:
                data[key] = torch.tensor(data[key], dtype=torch.float32)
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self.split(), other.split()
        return mine[0] == theirs[0] and all(torch.equal(t, theirs[1][k]) for k, t in mine[1].items())


class Algorithm(ABC):
    """What both kinds share: one population size and option set, and a state from a seed."""

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

    def advance(self, state: AlgorithmState, fitness: np.ndarray) -> AlgorithmState:
        """One generation's shared bookkeeping on finite ``fitness``: the counter and the best so far."""
        best = max(state.best_so_far, float(np.max(fitness, initial=-np.inf)))
        return dataclasses.replace(state, generation=state.generation + 1, best_so_far=best)

    def state_from_json(self, data: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> AlgorithmState:
        """A state from ``split``'s parts or ``to_json``'s lists; tensors on the run's device."""
        return self.State.from_json(data, tensors)


class SearchAlgorithm(Algorithm):
    """Ask/tell over explicit state; all methods are pure functions of the state."""

    reevaluation_episodes: int = 0
    """Episodes each of ``candidates`` is re-evaluated on."""

    @abstractmethod
    def ask(self, state: AlgorithmState) -> tuple[list[Genome], AlgorithmState]:
        """The genomes to evaluate this generation."""

    def tell(self, state: AlgorithmState, genomes: Sequence[Genome], fitness: np.ndarray) -> AlgorithmState:
        """Update with one fitness per genome (higher is better): made finite, counted, then ``update``."""
        fitness = finite_fitness(fitness)
        return self.update(self.advance(state, fitness), genomes, fitness)

    @abstractmethod
    def update(self, state: AlgorithmState, genomes: Sequence[Genome], fitness: np.ndarray) -> AlgorithmState:
        """The algorithm's own step: ``state`` already counts this generation, ``fitness`` is finite or -inf."""

    def candidates(self, state: AlgorithmState) -> list[Genome]:
        """Genomes to re-evaluate on extra episodes before crowning; none by default."""
        return []

    def crown(self, state: AlgorithmState, genomes: Sequence[Genome], fitness: np.ndarray) -> AlgorithmState:
        """Take the extra-episode fitness of ``candidates`` (made finite) through ``update_elite``."""
        return self.update_elite(state, genomes, finite_fitness(fitness))

    def update_elite(self, state: AlgorithmState, genomes: Sequence[Genome], fitness: np.ndarray) -> AlgorithmState:
        """Crown from the candidates' extra-episode fitness; nothing to do by default."""
        return state

    def references(self, state: AlgorithmState) -> list[Genome]:
        """Genomes to evaluate beside the asked population on the same episodes, for ``metrics``; none by default."""
        return []

    def metrics(
        self, state: AlgorithmState, genomes: Sequence[Genome], fitness: np.ndarray, references: Sequence[Genome],
        reference_fitness: np.ndarray,
    ) -> dict[str, float]:  # fmt: skip
        """Extra history columns for one generation, from the asked ``state``, the population's finite
        ``fitness`` and the ``references``' fitness on the same episodes; none by default."""
        return {}

    def decode(self, encoding, genomes: Sequence[Genome], state: AlgorithmState):
        """Parameters of ``genomes``: seed chains the encoding replays."""
        return encoding.decode(genomes)

    def best(self, state: AlgorithmState) -> Genome:
        """The genome the run reports: its final score is measured on held-out episodes."""
        if state.best is None:
            raise RuntimeError("no generation has been told yet")
        return state.best


class VectorSearch(SearchAlgorithm):
    """A search in an encoding's vector space: bound to the encoding before ``init``; members decode from the state.

    Its genomes are keys, not seed chains, so a worker decoding them needs the state too.
    """

    needs: ClassVar[str] = ""
    """The capability an encoding must declare for the update to be correct (``"uncorrelated_noise"``, ...)."""

    encoding = None

    def bind(self, encoding) -> None:
        """Search ``encoding``'s vector space; ValueError (one line) for an encoding the math does not fit."""
        if self.needs and not getattr(encoding, self.needs, False):
            valid = ", ".join(declaring(self.needs))
            raise ValueError(
                f"algorithm {self.name} does not support encoding {encoding.name!r}: it needs an encoding "
                f"that declares {self.needs} ({valid})"
            )
        self.encoding = encoding

    @abstractmethod
    def decode(self, encoding, genomes: Sequence[Genome], state: AlgorithmState):
        """Parameters of keyed members, built from the state in ``encoding``'s space."""


class DirectTrainer(Algorithm):
    """One network trained in place by a trainer object, one ``step`` at a time (not ask/tell)."""

    @abstractmethod
    def trainer(self, encoding, policy, seed: int) -> Any:
        """A trainer (``step(objective, seed)``, ``params()``) from the GA's first initial member for ``seed``."""

    @abstractmethod
    def steps_per_generation(self, episodes: int) -> int:
        """Trainer steps in one generation of the run's budget."""

    @abstractmethod
    def objective(self, task) -> Any:
        """What a trainer step scores on: the task's loss or its evaluation; ValueError if the task has none."""

    def init(self, seed: int) -> AlgorithmState:
        return AlgorithmState(generation=0, rng=np.random.default_rng(seed).bit_generator.state)
