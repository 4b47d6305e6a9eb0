"""What every backend shares: the ``Parts`` built from a resolved spec, and the ``Backend`` protocol.

The local backend builds ``Parts`` once in this process; the multi-worker backends (``processes``,
``ray``) build the same ``Parts`` in each worker from the spec, so genomes, not weights, cross
the wire (gymnasium keeps its ``VectorEnv`` base beside its implementations the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from evoboard import envs
from evoboard.agents import algorithms as algorithm_registry
from evoboard.agents import checkpoints, make_policy
from evoboard.agents import encodings as encoding_registry
from evoboard.agents.algorithms import Algorithm, AlgorithmState, VectorSearch
from evoboard.agents.encodings import Encoding, Genome
from evoboard.agents.encodings.masked import masked, shrinks
from evoboard.agents.masks import MaskedPolicy, load_mask
from evoboard.agents.policies import Policy
from evoboard.envs import Evaluation, Task


@dataclass
class Parts:
    """Everything a worker needs to turn genomes into fitness."""

    task: Task
    policy: Policy
    encoding: Encoding
    algorithm: Algorithm
    device: torch.device


def build_parts(resolved: Any, device: torch.device) -> Parts:
    """The task, policy, encoding and algorithm of a resolved spec (ValueError/ImportError if impossible)."""
    spec = resolved.spec
    task = envs.make(spec.task, resolved.task)
    policy = make_policy(spec.policy, task.observation_space, task.action_space, resolved.policy)
    mask = load_mask(resolved.runner.mask) if resolved.runner.mask is not None else None
    if mask is not None:  # a lottery ticket: every member's masked weights are zero
        policy = MaskedPolicy(policy, mask)
    encoding = encoding_registry.make(spec.encoding, policy, resolved.encoding, device)
    start = checkpoints.load(resolved.runner.init) if resolved.runner.init is not None else None
    vector = start.search_vector(encoding) if start is not None else None  # (D_full,) before any mask
    if mask is not None and shrinks(encoding):  # the search holds only the surviving weights
        encoding = masked(encoding, mask)
        vector = encoding.restrict(vector) if vector is not None else None
    if start is not None:  # a pretrained start: genomes are rooted at the checkpoint's link
        encoding.start_from(start.link, vector)
    algorithm = algorithm_registry.make(spec.algorithm, spec.population, resolved.algorithm)
    if isinstance(algorithm, VectorSearch):  # an evolution strategy searches around a mean in the encoding's space
        algorithm.bind(encoding)
    return Parts(task, policy, encoding, algorithm, device)


class Backend(Protocol):
    """Evaluates whole generations; built once per run from the run's parts and spec."""

    def evaluate(
        self, genomes: Sequence[Genome], state: AlgorithmState | None, seeds: Sequence[int], elite_trace=None
    ) -> tuple[Evaluation, float]:
        """The members' Evaluation and the seconds spent decoding them (the slowest worker's, when sharded)."""
        ...

    def close(self) -> None: ...
