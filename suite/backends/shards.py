"""Sharding a generation over workers that decode their own members: what every multi-worker backend shares.

Every worker (a Ray actor, a local process) owns a copy of the run's parts (task and its envs,
policy, encoding, algorithm), built once from the resolved spec, and decodes its shard itself
from seed chains. What crosses the wire per member is its genome, as a reference to a genome
the worker already holds plus one new seed, and its fitness and counters: never weight
tensors. Per shard there is also the episode seeds and, with ``elite_margin``, the elite's
running-return trace.

Sharding keeps children next to their parents. The driver mirrors what each worker holds (the
genomes of its last two evaluations, the same two the encoding caches) and sends each child to
the worker that decoded its parent, up to an even share of the population; the rest go, siblings
together, to the worker with the most room, which replays their parents from seeds. Per-member
fitness does not depend on which members share a batch as long as the policy's forward gives each
member the same bits in any batch (every form but lowrank-perturb's shared layers, see docs/backends.md),
so results equal ``--backend local``'s whatever the assignment; shards are merged back
into member order.

A worker that dies mid-evaluation is replaced by a fresh one (empty caches: it replays from
seeds) and its shard re-run, up to a number of retries; the event is logged. The transport (how
bytes reach a worker, how a dead one is noticed and replaced) is the backend's own.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from evoboard.agents.algorithms import VectorSearch
from evoboard.agents.encodings import Genome
from evoboard.envs import Evaluation
from evoboard.errors import RunFailed, WorkerLost
from evoboard.suite.backends.base import Parts, build_parts
from evoboard.suite.backends.local import evaluate_here, merge
from evoboard.suite.devices import set_tf32

# -- what crosses the wire -----------------------------------------------------------------
Ref = int | tuple[int, int] | list[int]
"""A genome on the wire: the index of one the worker holds, (index of its parent, new seed), or a full chain."""


def compact(genomes: Sequence[Genome], held: Mapping[Genome, int]) -> list[Ref]:
    """Genomes as references to what the worker holds (``held``: genome -> index), full chains otherwise."""
    refs: list[Ref] = []
    for g in genomes:
        if g in held:
            refs.append(held[g])
        elif len(g) > 1 and g[:-1] in held:
            refs.append((held[g[:-1]], g[-1]))
        else:
            refs.append(list(g))
    return refs


def expand(refs: Sequence[Ref], known: Sequence[Genome]) -> list[Genome]:
    """The genomes ``compact`` referred to, given the worker's ``known`` list."""
    genomes: list[Genome] = []
    for ref in refs:
        if isinstance(ref, int):
            genomes.append(known[ref])
        elif isinstance(ref, tuple):
            genomes.append((*known[ref[0]], ref[1]))
        else:
            genomes.append(tuple(ref))
    return genomes


@dataclass
class Holdings:
    """What one worker holds: the genomes of its last two evaluations, as both sides number them."""

    last: list[Genome] = field(default_factory=list)
    known: list[Genome] = field(default_factory=list)
    index: dict[Genome, int] = field(default_factory=dict)

    def update(self, genomes: list[Genome]) -> None:
        """Record one finished evaluation (driver and worker call this with the same genomes)."""
        self.known, self.last = self.last + genomes, genomes
        self.index = {}
        for i, g in enumerate(self.known):
            self.index.setdefault(g, i)


def assign(genomes: Sequence[Genome], held: Sequence[Mapping[Genome, Any]], workers: int) -> list[list[int]]:
    """Member indices per worker, each list ascending: members go where they or their parents are held.

    Members are grouped by what they need (a held genome, or a parent); a group goes to the worker
    holding it while that worker stays within an even share, ceil(P / workers). The other groups
    go, whole where they fit, to the worker with the most room, which replays their parent once.
    """
    share = math.ceil(len(genomes) / workers)
    groups: dict[tuple[int | None, Genome], list[int]] = {}
    for i, g in enumerate(genomes):
        home = next((a for a, h in enumerate(held) if g in h), None)
        key = g
        if home is None and len(g) > 1:
            key = g[:-1]
            home = next((a for a, h in enumerate(held) if key in h), None)
        groups.setdefault((home, key), []).append(i)
    shards: list[list[int]] = [[] for _ in range(workers)]
    spilled = []
    for (home, _), members in groups.items():
        if home is not None and len(shards[home]) + len(members) <= share:
            shards[home].extend(members)
        else:
            spilled.append((home, members))
    for home, members in spilled:
        while members:
            if home is not None and len(shards[home]) < share:
                target = home
            else:
                target = min(range(workers), key=lambda a: len(shards[a]))  # most room; lowest index on ties
            take = max(1, min(share - len(shards[target]), len(members)))
            shards[target].extend(members[:take])
            members = members[take:]
    return [sorted(s) for s in shards]


def merge_in_order(evaluations: Sequence[Evaluation], shards: Sequence[Sequence[int]]) -> Evaluation:
    """One Evaluation in member order from shards of arbitrary (ascending) member indices.

    The elite trace is the best member's, the first best in member order as a local evaluation
    picks it: that member is also first best within its own (ascending) shard.
    """
    merged = merge(evaluations)
    order = np.concatenate([np.asarray(s, dtype=np.int64) for s in shards])
    back = np.argsort(order, kind="stable")  # shard order -> member order
    fitness = merged.fitness[back]
    best_member = int(np.argmax(fitness))
    best_shard = next(k for k, s in enumerate(shards) if best_member in s)
    failure = None
    failed = [
        (int(np.asarray(shard)[e.failed].min()), k)
        for k, (e, shard) in enumerate(zip(evaluations, shards, strict=True))
        if e.failed.any()
    ]
    if failed:  # the failure of the lowest-numbered failed member (a worker numbers its own shard)
        first, k = min(failed)
        failure = f"{evaluations[k].failure} (numbered within shard {k}; member {first} of the population)"
    return replace(
        merged,
        fitness=fitness,
        returns=merged.returns[back],
        steps=merged.steps[back],
        cut=merged.cut[back],
        failed=merged.failed[back],
        best_trace=evaluations[best_shard].best_trace,
        failure=failure,
    )


def state_on(state: Any, device: torch.device | str) -> Any:
    """``state`` with its tensor fields (an ES mean, sigmas) on ``device``; None stays None.

    The driver sends a search state as CPU tensors, copied off its device once per evaluation rather
    than pickled from the device once per shard; each worker moves it onto its own device (a pickled
    CUDA tensor would unpickle onto the GPU it came from, whatever the worker's).
    """
    if state is None:
        return None
    moved = {key: getattr(state, key).to(device) for key in type(state).tensor_fields}
    return dataclasses.replace(state, **moved) if moved else state


# -- the worker side ----------------------------------------------------------------------
class ShardWorker:
    """One worker's state (a Ray actor, a process): its own parts, and the genomes of its last two evaluations."""

    def __init__(self, resolved: Any, device: str, threads: int):
        torch.set_num_threads(threads)
        set_tf32(resolved.runner.tf32)
        self.parts: Parts = build_parts(resolved, torch.device(device))
        self.holdings = Holdings()

    def ready(self) -> int:
        """This worker's process id, once its parts are built."""
        return os.getpid()

    def evaluate(self, request: bytes) -> bytes:
        """Evaluate one shard: ``request`` pickles (refs, algorithm state or None, episode seeds, elite trace)."""
        refs, state, seeds, elite_trace = pickle.loads(request)
        state = state_on(state, self.parts.device)  # it travels as CPU tensors
        genomes = expand(refs, self.holdings.known)
        evaluated = evaluate_here(self.parts, genomes, state, seeds, elite_trace)  # (Evaluation, decode seconds)
        self.holdings.update(genomes)
        return pickle.dumps(evaluated, protocol=pickle.HIGHEST_PROTOCOL)


# -- the driver side ----------------------------------------------------------------------


class ShardedBackend:
    """Driver of a multi-worker backend: shards each evaluation, sends genomes as references, merges back.

    A subclass supplies the transport through four hooks: ``_send`` a request to worker ``k``,
    ``_receive`` its reply (raising ``WorkerLost`` when it is gone), ``_restart`` worker ``k`` and
    ``_handles`` (what ``on_submit`` sees). ``self.pids`` must hold one process id per worker.
    """

    worker_name = "worker"
    """What the log and errors call one worker ("actor", "process")."""

    def __init__(self, parts: Parts, resolved: Any, retries: int, log: logging.Logger):
        self.resolved, self.retries, self.log = resolved, retries, log
        self.device = parts.device
        # Only a search whose members decode from its state (an ES perturbing its mean) needs it on the workers.
        self.needs_state = isinstance(parts.algorithm, VectorSearch)
        self.pids: list[int] = []
        self.holdings: list[Holdings] = []
        self.calls = 0
        self.replacements: list[str] = []
        """One line per worker that died and was replaced."""
        self.traffic: list[dict[str, Any]] = []
        """Per shard and evaluation: members and the bytes of the request, its genomes and the reply."""
        self.on_submit: Callable[[int, list[Any]], None] | None = None
        """Called after each evaluation's shards are submitted, with its number (from 1) and the workers'
        handles: a hook for monitoring, and for tests that kill a worker mid-evaluation."""

    # -- the transport (a subclass's) ------------------------------------------------------
    def _send(self, k: int, request: bytes) -> Any:
        """Start worker ``k`` on ``request``; returns what ``_receive`` needs to wait for the reply."""
        raise NotImplementedError

    def _receive(self, k: int, pending: Any) -> bytes:
        """Worker ``k``'s reply to ``pending``; ``WorkerLost`` if it is gone."""
        raise NotImplementedError

    def _restart(self, k: int) -> int:
        """A fresh worker in place of worker ``k``; returns its process id."""
        raise NotImplementedError

    def _handles(self) -> list[Any]:
        """The workers as ``on_submit`` sees them (Ray actor handles, processes)."""
        raise NotImplementedError

    def _before_evaluate(self) -> None:
        """A check before each evaluation (Ray: the head still answers)."""

    # -- one evaluation --------------------------------------------------------------------
    def evaluate(self, genomes, state, seeds, elite_trace=None) -> tuple[Evaluation, float]:
        """Shard ``genomes`` over the workers, evaluate, and merge back into member order; with the slowest decode."""
        genomes = [tuple(g) for g in genomes]
        self.calls += 1
        self._before_evaluate()
        shards = assign(genomes, [h.index for h in self.holdings], len(self.holdings))
        context = (state_on(state, "cpu") if self.needs_state else None, [int(s) for s in seeds], elite_trace)
        pending = {k: self._submit(k, [genomes[i] for i in s], context) for k, s in enumerate(shards) if s}
        if self.on_submit is not None:
            self.on_submit(self.calls, self._handles())
        results = {k: self._collect(k, [genomes[i] for i in shards[k]], context, *sent) for k, sent in pending.items()}
        used = sorted(results)
        evaluation = merge_in_order([results[k][0] for k in used], [shards[k] for k in used])
        return evaluation, max(results[k][1] for k in used)

    def _submit(self, k: int, shard: list[Genome], context: tuple) -> tuple[Any, dict[str, Any]]:
        """Send one shard to worker ``k`` (its genomes as references to what it holds): (pending, traffic)."""
        refs = compact(shard, self.holdings[k].index)
        request = pickle.dumps((refs, *context), protocol=pickle.HIGHEST_PROTOCOL)
        traffic = {
            "evaluation": self.calls,
            "worker": k,
            "members": len(shard),
            "request_bytes": len(request),
            "genome_bytes": len(pickle.dumps(refs, protocol=pickle.HIGHEST_PROTOCOL)),
            "chain_bytes": len(pickle.dumps([list(g) for g in shard], protocol=pickle.HIGHEST_PROTOCOL)),
            "reply_bytes": 0,
        }
        self.traffic.append(traffic)
        return self._send(k, request), traffic

    def _collect(
        self, k: int, shard: list[Genome], context: tuple, pending: Any, traffic: dict
    ) -> tuple[Evaluation, float]:
        """Worker ``k``'s (Evaluation, decode seconds); a dead worker is replaced and the shard re-run (``retries``)."""
        for attempt in range(self.retries + 1):
            try:
                reply = self._receive(k, pending)
                break
            except WorkerLost as err:
                if attempt == self.retries:
                    raise RunFailed(
                        f"evaluation {self.calls}: {self.worker_name} {k} died {attempt + 1} times running the same "
                        f"{len(shard)} members (last: {err}); the last checkpoint stands"
                    ) from None
                self._replace(k, err, len(shard))
                pending, traffic = self._submit(k, shard, context)
        traffic["reply_bytes"] = len(reply)
        self.holdings[k].update(shard)
        return pickle.loads(reply)

    def _replace(self, k: int, err: Exception, members: int) -> None:
        """A fresh worker (empty caches: it replays genomes from seeds) in slot ``k``."""
        old = self.pids[k]
        self.pids[k] = self._restart(k)
        self.holdings[k] = Holdings()
        event = (
            f"evaluation {self.calls}: {self.worker_name} {k} (pid {old}) died ({err}); "
            f"replaced by pid {self.pids[k]}, re-running its {members} members"
        )
        self.replacements.append(event)
        self.log.warning(event)
