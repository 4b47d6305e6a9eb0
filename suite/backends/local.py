"""The local backend: a generation's genomes decoded and evaluated in this process.

It runs one batched forward per env step; ``evaluate_here`` is also what each worker of the
multi-worker backends runs on its shard, and ``merge`` joins their shards' Evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evoboard.agents import PopulationActor
from evoboard.agents.algorithms import AlgorithmState
from evoboard.agents.encodings import Genome
from evoboard.envs import Evaluation
from evoboard.suite.backends.base import Parts
from evoboard.suite.devices import clock


def evaluate_here(
    parts: Parts, genomes: Sequence[Genome], state: AlgorithmState | None, seeds: Sequence[int], elite_trace=None
) -> tuple[Evaluation, float]:
    """Decode ``genomes`` and evaluate them in this process: their Evaluation and the seconds decoding took."""
    t0 = clock(parts.device)  # the device's earlier work is not this decode's
    params = parts.algorithm.decode(parts.encoding, genomes, state)
    decode_s = clock(parts.device) - t0  # the decode's kernels finished, not just launched
    actor = PopulationActor(parts.policy, params, parts.device)
    return parts.task.evaluate(actor, len(genomes), seeds, elite_trace), decode_s


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
