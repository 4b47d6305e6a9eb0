"""Ray backend (``--backend ray``): each generation's members are sharded over Ray actors.

Every actor owns a copy of the run's parts (task and its envs, policy, encoding, algorithm),
built once from the resolved spec, and decodes its shard itself from seed chains. What crosses
the wire per member is its genome, as a reference to a genome the actor already holds plus
one new seed, and its fitness and counters: never weight tensors. Per shard there is also the
episode seeds and, with ``elite_margin``, the elite's running-return trace.

Sharding keeps children next to their parents. The driver mirrors what each actor holds (the
genomes of its last two evaluations, the same two the encoding caches) and sends each child to
the actor that decoded its parent, up to an even share of the population; the rest go, siblings
together, to the actor with the most room, which replays their parents from seeds. Per-member
fitness does not depend on which members share a batch, so results equal ``--backend local``'s
whatever the assignment; shards are merged back into member order.

An actor that dies mid-evaluation is replaced by a fresh one (empty caches: it replays from
seeds) and its shard re-run; the event is logged. A lost head is a ``RayHeadLost`` error; every
finished generation is checkpointed, so ``evoboard resume`` continues the run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

try:
    import ray
    import ray.exceptions as rex
except ImportError as err:  # the message spec.py shows names the extra; this one is for direct imports
    raise ImportError('the Ray backend needs ray: pip install -e ".[ray]"', name="ray") from err

from agents.algorithms import Algorithm
from agents.encodings import Genome
from envs import Evaluation
from suite.backends import Parts, build_parts, evaluate_here, merge
from suite.runner import RunFailed

log = logging.getLogger("suite.ray_backend")

ACTOR_START_S = 300.0
"""How long actors may take to start (imports, env construction) before the run gives up."""

WORKER_LOST = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError)
"""Errors meaning one actor (or its node) is gone: replace it and re-run its shard."""

HEAD_LOST = (rex.RaySystemError, rex.LocalRayletDiedError, rex.RpcError, ConnectionError)
"""Errors meaning the driver lost the cluster itself."""

HEAD_POLL_S = 2.0
"""While waiting on actors, how often the driver checks that the head still accepts connections.
Ray ends a driver whose head has been gone for 60 s without a Python error; this check stops the
run with a clear one first."""


@dataclass
class RayOptions:
    """Settings of the Ray backend; they never change results, so they stay out of ``config``."""

    ray_address: str | None = None
    """Cluster to join (``auto``, ``HOST:6379``, ``ray://HOST:10001``); default: start a Ray instance on this
    machine, listening on 127.0.0.1 only, with the CPUs the actors ask for, and stop it when the run ends."""
    ray_actors: int | None = None
    """Evaluation actors; default: as many as the cluster's CPUs allow at ray_cpus_per_actor each (this
    machine's CPUs for a local instance)."""
    ray_cpus_per_actor: float = 1.0
    """CPUs each actor reserves (its envs step in one thread; torch uses the runner's ``threads``)."""
    ray_gpus_per_actor: float | None = None
    """GPUs each actor reserves (0.5: two actors share one); default: 1 when the run's device is cuda, else 0."""
    ray_retries: int = 3
    """Times one shard is re-run on a fresh actor when its actor dies, before the run fails."""

    def __post_init__(self) -> None:
        if self.ray_actors is not None and self.ray_actors < 1:
            raise ValueError(f"ray_actors must be >= 1, got {self.ray_actors}")
        if not 0 < self.ray_cpus_per_actor < float("inf"):
            raise ValueError(f"ray_cpus_per_actor must be > 0, got {self.ray_cpus_per_actor}")
        if self.ray_gpus_per_actor is not None and not 0 <= self.ray_gpus_per_actor < float("inf"):
            raise ValueError(f"ray_gpus_per_actor must be >= 0, got {self.ray_gpus_per_actor}")
        if self.ray_retries < 0:
            raise ValueError(f"ray_retries must be >= 0, got {self.ray_retries}")


class RayHeadLost(RunFailed):
    """The driver lost the Ray cluster; the checkpoint of the last finished generation stands."""


# -- what crosses the wire -----------------------------------------------------------------
Ref = int | tuple[int, int] | list[int]
"""A genome on the wire: the index of one the actor holds, (index of its parent, new seed), or a full chain."""


def compact(genomes: Sequence[Genome], held: Mapping[Genome, int]) -> list[Ref]:
    """Genomes as references to what the actor holds (``held``: genome -> index), full chains otherwise."""
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
    """The genomes ``compact`` referred to, given the actor's ``known`` list."""
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
    """What one actor holds: the genomes of its last two evaluations, as both sides number them."""

    last: list[Genome] = field(default_factory=list)
    known: list[Genome] = field(default_factory=list)
    index: dict[Genome, int] = field(default_factory=dict)

    def update(self, genomes: list[Genome]) -> None:
        """Record one finished evaluation (driver and actor call this with the same genomes)."""
        self.known, self.last = self.last + genomes, genomes
        self.index = {}
        for i, g in enumerate(self.known):
            self.index.setdefault(g, i)


def assign(genomes: Sequence[Genome], held: Sequence[Mapping[Genome, Any]], actors: int) -> list[list[int]]:
    """Member indices per actor, each list ascending: members go where they or their parents are held.

    Members are grouped by what they need (a held genome, or a parent); a group goes to the actor
    holding it while that actor stays within an even share, ceil(P / actors). The other groups
    go, whole where they fit, to the actor with the most room, which replays their parent once.
    """
    share = math.ceil(len(genomes) / actors)
    groups: dict[tuple[int | None, Genome], list[int]] = {}
    for i, g in enumerate(genomes):
        home = next((a for a, h in enumerate(held) if g in h), None)
        key = g
        if home is None and len(g) > 1:
            key = g[:-1]
            home = next((a for a, h in enumerate(held) if key in h), None)
        groups.setdefault((home, key), []).append(i)
    shards: list[list[int]] = [[] for _ in range(actors)]
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
                target = min(range(actors), key=lambda a: len(shards[a]))  # most room; lowest index on ties
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
    if failed:  # the failure of the lowest-numbered failed member (an actor numbers its own shard)
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


# -- the actor -----------------------------------------------------------------------------
class ShardWorker:
    """One actor's state: its own parts, and the genomes it decoded in its last two evaluations."""

    def __init__(self, resolved: Any, device: str, threads: int):
        torch.set_num_threads(threads)
        self.parts: Parts = build_parts(resolved, torch.device(device))
        self.holdings = Holdings()

    def ready(self) -> int:
        """This actor's process id, once its parts are built."""
        return os.getpid()

    def evaluate(self, request: bytes) -> bytes:
        """Evaluate one shard: ``request`` pickles (refs, algorithm state or None, episode seeds, elite trace)."""
        refs, state, seeds, elite_trace = pickle.loads(request)
        genomes = expand(refs, self.holdings.known)
        evaluation = evaluate_here(self.parts, genomes, state, seeds, elite_trace)
        self.holdings.update(genomes)
        return pickle.dumps(evaluation, protocol=pickle.HIGHEST_PROTOCOL)


RemoteShardWorker = ray.remote(max_restarts=0, max_concurrency=1)(ShardWorker)


# -- a local instance that listens on loopback only ----------------------------------------
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray binds its servers to 127.0.0.1 only when it believes it cannot form a cluster (this flag off)."""


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While starting a local instance: its processes take 127.0.0.1 as the node address."""
    from ray._private import ray_constants  # the flag is read once at import; set it for this start too

    saved_env, saved_flag = os.environ.get(LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"  # inherited by the processes ray.init spawns
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved_env


def start_local(num_cpus: int) -> None:
    """Start a Ray instance on this machine (127.0.0.1 only, no dashboard) and connect to it."""
    with loopback_only():
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            object_store_memory=128 * 2**20,  # replies are kilobytes; the minimum Ray allows is 75 MiB
        )


def connect(address: str | None, num_cpus: int) -> bool:
    """Connect to ``address`` (or start a local instance); True when this call opened the connection."""
    if ray.is_initialized():
        return False  # a caller (a notebook, a test, a benchmark) already chose the cluster
    try:
        if address is None:
            start_local(num_cpus)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, rex.RayError, RuntimeError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ValueError(f"cannot start or reach {where}: {str(err).splitlines()[0]}") from None
    return True


# -- the backend ---------------------------------------------------------------------------
@dataclass
class Slot:
    """One actor as the driver sees it."""

    actor: Any
    pid: int
    holdings: Holdings = field(default_factory=Holdings)


class RayBackend:
    """Shards each evaluation over Ray actors that decode their own members from seed chains."""

    Options = RayOptions

    def __init__(self, parts: Parts, resolved: Any, options: RayOptions):
        self.resolved, self.options = resolved, options
        self.device = parts.device
        gpus = options.ray_gpus_per_actor
        self.gpus = (1.0 if self.device.type == "cuda" else 0.0) if gpus is None else gpus
        if self.device.type == "cuda" and self.gpus == 0:
            raise ValueError("device cuda needs GPUs on the actors: set ray_gpus_per_actor > 0 (or use --device cpu)")
        if self.device.type != "cuda" and self.gpus > 0:
            raise ValueError(f"ray_gpus_per_actor={self.gpus} needs --device cuda (the actors use the run's device)")
        # Only an algorithm that decodes from its state (an ES perturbing its mean) needs it on the actors.
        self.needs_state = type(parts.algorithm).decode is not Algorithm.decode
        self.address = options.ray_address
        cpus = options.ray_cpus_per_actor
        local_actors = options.ray_actors or max(1, int((os.cpu_count() or 1) // cpus))
        self.owns_connection = connect(self.address, math.ceil(local_actors * cpus))
        self.head = gcs_endpoint()
        self.head_lost = False
        self.slots: list[Slot] = []
        self.calls = 0
        self.replacements: list[str] = []
        """One line per actor that died and was replaced."""
        self.traffic: list[dict[str, Any]] = []
        """Per shard and evaluation: members and the bytes of the request, its genomes and the reply."""
        self.on_submit: Callable[[int, list[Any]], None] | None = None
        """Called after each evaluation's shards are submitted, with its number (from 1) and the actor
        handles: a hook for monitoring, and for tests that kill an actor mid-evaluation."""
        try:
            available = ray.cluster_resources()
            actors = options.ray_actors or max(1, int(available.get("CPU", 0) // cpus))
            wanted = {"CPU": actors * cpus, "GPU": actors * self.gpus}
            short = [f"{k} {v:g} (has {available.get(k, 0):g})" for k, v in wanted.items() if v > available.get(k, 0)]
            if short:
                raise ValueError(f"the Ray cluster cannot place {actors} actors: they need {', '.join(short)}")
            self.slots = [Slot(self._new_actor(), 0) for _ in range(actors)]
            pids = ray.get([slot.actor.ready.remote() for slot in self.slots], timeout=ACTOR_START_S)
            for slot, pid in zip(self.slots, pids, strict=True):
                slot.pid = pid
        except rex.GetTimeoutError:
            self.close()
            raise ValueError(f"Ray actors did not start within {ACTOR_START_S:g} s") from None
        except rex.RayActorError as err:
            self.close()
            cause = [line.strip() for line in str(err).splitlines() if line.strip()][-1:] or [type(err).__name__]
            raise ValueError(f"a Ray actor could not build the run's parts: {cause[0]}") from None
        except BaseException:
            self.close()
            raise

    def _new_actor(self) -> Any:
        return RemoteShardWorker.options(num_cpus=self.options.ray_cpus_per_actor, num_gpus=self.gpus).remote(
            self.resolved, self.device.type, self.resolved.runner.threads
        )

    # -- one evaluation --------------------------------------------------------------------
    def evaluate(self, genomes, state, seeds, elite_trace=None) -> Evaluation:
        """Shard ``genomes`` over the actors, evaluate, and merge back into member order."""
        genomes = [tuple(g) for g in genomes]
        self.calls += 1
        if not self._head_answers():
            raise self._lost("its head does not accept connections")
        shards = assign(genomes, [slot.holdings.index for slot in self.slots], len(self.slots))
        context = (state if self.needs_state else None, [int(s) for s in seeds], elite_trace)
        pending = {k: self._submit(k, [genomes[i] for i in s], context) for k, s in enumerate(shards) if s}
        if self.on_submit is not None:
            self.on_submit(self.calls, [slot.actor for slot in self.slots])
        results = {k: self._collect(k, [genomes[i] for i in shards[k]], context, *sent) for k, sent in pending.items()}
        used = sorted(results)
        return merge_in_order([results[k] for k in used], [shards[k] for k in used])

    def _submit(self, k: int, shard: list[Genome], context: tuple) -> tuple[Any, dict[str, Any]]:
        """Send one shard to actor ``k`` (its genomes as references to what that actor holds): (ref, traffic)."""
        refs = compact(shard, self.slots[k].holdings.index)
        request = pickle.dumps((refs, *context), protocol=pickle.HIGHEST_PROTOCOL)
        traffic = {
            "evaluation": self.calls,
            "actor": k,
            "members": len(shard),
            "request_bytes": len(request),
            "genome_bytes": len(pickle.dumps(refs, protocol=pickle.HIGHEST_PROTOCOL)),
            "chain_bytes": len(pickle.dumps([list(g) for g in shard], protocol=pickle.HIGHEST_PROTOCOL)),
            "reply_bytes": 0,
        }
        self.traffic.append(traffic)
        return self.slots[k].actor.evaluate.remote(request), traffic

    def _collect(self, k: int, shard: list[Genome], context: tuple, ref: Any, traffic: dict) -> Evaluation:
        """Actor ``k``'s Evaluation; a dead actor is replaced and the shard re-run, up to ``ray_retries`` times."""
        for attempt in range(self.options.ray_retries + 1):
            try:
                reply = self._get(ref)
                break
            except WORKER_LOST as err:
                if attempt == self.options.ray_retries:
                    raise RunFailed(
                        f"evaluation {self.calls}: actor {k} died {attempt + 1} times running the same "
                        f"{len(shard)} members (last: {first_line(err)}); the last checkpoint stands"
                    ) from None
                self._replace(k, err, len(shard))
                ref, traffic = self._submit(k, shard, context)
            except HEAD_LOST as err:
                raise self._lost(first_line(err)) from None
        traffic["reply_bytes"] = len(reply)
        self.slots[k].holdings.update(shard)
        return pickle.loads(reply)

    def _replace(self, k: int, err: Exception, members: int) -> None:
        """A fresh actor (empty caches: it replays genomes from seeds) in slot ``k``."""
        old = self.slots[k]
        with contextlib.suppress(Exception):
            ray.kill(old.actor, no_restart=True)
        try:
            actor = self._new_actor()
            pid = self._get(actor.ready.remote(), ACTOR_START_S)
        except (rex.GetTimeoutError, *HEAD_LOST) as start_err:
            raise self._lost(f"actor {k} died and no replacement could start: {first_line(start_err)}") from None
        self.slots[k] = Slot(actor, pid)
        event = (
            f"evaluation {self.calls}: actor {k} (pid {old.pid}) died ({first_line(err)}); "
            f"replaced by pid {pid}, re-running its {members} members"
        )
        self.replacements.append(event)
        log.warning(event)

    def _get(self, ref: Any, timeout: float | None = None) -> Any:
        """``ray.get(ref)``, checking every ``HEAD_POLL_S`` that the head still answers."""
        waited = 0.0
        while not ray.wait([ref], timeout=HEAD_POLL_S)[0]:
            waited += HEAD_POLL_S
            if not self._head_answers():
                raise self._lost("its head stopped accepting connections")
            if timeout is not None and waited >= timeout:
                raise rex.GetTimeoutError(f"no answer within {timeout:g} s")
        return ray.get(ref)

    def _head_answers(self) -> bool:
        """True when the head's GCS port accepts a connection (or its address is unknown, e.g. ray://)."""
        if self.head is None:
            return True
        try:
            with socket.create_connection(self.head, timeout=HEAD_POLL_S):
                return True
        except OSError:
            return False

    def _lost(self, reason: str) -> RayHeadLost:
        self.head_lost = True
        where = self.address or "the local instance"
        return RayHeadLost(
            f"lost the Ray cluster ({where}) during evaluation {self.calls}: {reason}; every finished generation "
            "is checkpointed: with Ray back, continue with `evoboard resume <run folder>`"
        )

    def close(self) -> None:
        """Stop the actors, and the Ray instance if this backend started it (idempotent)."""
        if self.head_lost:
            self.slots = []  # killing them needs the head; a local instance's shutdown still reaps them
        for slot in self.slots:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
        self.slots = []
        if self.owns_connection and ray.is_initialized():
            with contextlib.suppress(Exception):
                ray.shutdown()
        self.owns_connection = False


def gcs_endpoint() -> tuple[str, int] | None:
    """(host, port) of the connected cluster's head (its GCS), or None where Ray does not say (ray://)."""
    try:
        host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
        return host, int(port)
    except Exception:  # a Ray client connection has no GCS address of its own
        return None


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's message (Ray's can run to a page)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
