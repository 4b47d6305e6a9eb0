"""The local backend, and the parts every backend builds from a resolved spec.

The local backend decodes a generation's genomes in this process and runs one batched forward
per env step; the multi-worker backends build the same ``Parts`` in each worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, checkpoints, make_policy
from evoboard.agents import algorithms as algorithm_registry
from evoboard.agents import encodings as encoding_registry
from evoboard.agents.algorithms import Algorithm, AlgorithmState, VectorSearch
from evoboard.agents.encodings import Encoding, Genome
from evoboard.agents.encodings.masked import masked, shrinks
from evoboard.agents.masks import MaskedPolicy, load_mask
from evoboard.agents.policies import Policy
from evoboard.envs import Evaluation, Task
from evoboard.suite.devices import clock


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


def evaluate_here(
    parts: Parts, genomes: Sequence[Genome], state: AlgorithmState | None, seeds: Sequence[int], elite_trace=None
) -> tuple[Evaluation, float]:
    """Decode ``genomes`` and evaluate them in this process: their Evaluation and the seconds decoding took."""
    t0 = clock(parts.device)  # the device's earlier work is not this decode's
    params = parts.algorithm.decode(parts.encoding, genomes, state)
    decode_s = clock(parts.device) - t0  # the decode's kernels finished, not just launched
    actor = PopulationActor(parts.policy, params, parts.device)
    return parts.task.evaluate(actor, len(genomes), seeds, elite_trace), decode_s


class Backend(Protocol):
    """Evaluates whole generations; built once per run from the run's parts and spec."""

    def evaluate(
        self, genomes: Sequence[Genome], state: AlgorithmState | None, seeds: Sequence[int], elite_trace=None
    ) -> tuple[Evaluation, float]:
        """The members' Evaluation and the seconds spent decoding them (the slowest worker's, when sharded)."""
        ...

    def close(self) -> None: ...


@dataclass
class LocalOptions:
    """The local backend has no settings."""


class LocalBackend:
    """Evaluate in this process: one batched forward for all running members per env step."""

    Options = LocalOptions

    def __init__(self, parts: Parts, resolved: Any, options: LocalOptions):
        self.parts = parts

    def evaluate(self, genomes, state, seeds, elite_trace=None) -> tuple[Evaluation, float]:
        return evaluate_here(self.parts, genomes, state, seeds, elite_trace)

    def close(self) -> None:
        """The run closes its own task."""


def merge(evaluations: Sequence[Evaluation]) -> Evaluation:
    """One Evaluation of consecutive member shards (the shards' members in order)."""
    if len(evaluations) == 1:
        return evaluations[0]
    traces = [(e.fitness.max(), e.best_trace) for e in evaluations if e.best_trace is not None]
    failures = [e.failure for e in evaluations if e.failure]
    return Evaluation(
        fitness=np.concatenate([e.fitness for e in evaluations]),
        returns=np.concatenate([e.returns for e in evaluations]),
        steps=np.concatenate([e.steps for e in evaluations]),
        cut=np.concatenate([e.cut for e in evaluations]),
        frames=sum(e.frames for e in evaluations),
        frames_saved=sum(e.frames_saved for e in evaluations),
        member_forwards=sum(e.member_forwards for e in evaluations),
        best_trace=max(traces, key=lambda t: t[0])[1] if traces else None,
        failed=np.concatenate([e.failed for e in evaluations]),
        failure=failures[0] if failures else None,
        timings={},  # per-phase seconds are each worker's own
    )
