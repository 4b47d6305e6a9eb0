"""Ray backend (``--backend ray``): each generation's members are sharded over Ray actors.

Sharding, the wire format and replacing a dead worker are ``evoboard.suite.backends.shards``'s, shared with the
local process backend; this module is the Ray transport: a local instance listening on
127.0.0.1 only (or any cluster by address), one actor per shard, and a lost head reported as
``RayHeadLost``. How many actors and how much of a GPU each reserves is ``placement``'s: one actor
per CPU on the CPU, one actor per GPU on CUDA unless asked for more. Every finished generation
is checkpointed, so ``evoboard resume`` continues a run whose cluster went away.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from evoboard.errors import RayHeadLost

try:
    import ray
    import ray.exceptions as rex
except ImportError as err:  # the message spec.py shows names the extra; this one is for direct imports
    raise ImportError('the Ray backend needs ray: pip install -e ".[ray]"', name="ray") from err

from evoboard.errors import WorkerLost
from evoboard.suite.backends.base import Parts
from evoboard.suite.backends.placement import ray_placement
from evoboard.suite.backends.shards import Holdings, ShardedBackend, ShardWorker

log = logging.getLogger("evoboard.suite.backends.ray_actors")

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
    """Evaluation actors; default: on the CPU as many as the cluster's CPUs allow at ray_cpus_per_actor each
    (this machine's CPUs for a local instance); on cuda one per GPU."""
    ray_cpus_per_actor: float = 1.0
    """CPUs each actor reserves (its envs step in one thread; torch uses the runner's ``threads``)."""
    ray_gpus_per_actor: float | None = None
    """GPUs each actor reserves (0.5: two actors share one); default on cuda: 1, or an equal share of the GPUs
    when ray_actors asks for more actors than GPUs; 0 on the CPU."""
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
class RayBackend(ShardedBackend):
    """Shards each evaluation over Ray actors that decode their own members from seed chains."""

    Options = RayOptions
    worker_name = "actor"

    def __init__(self, parts: Parts, resolved: Any, options: RayOptions):
        super().__init__(parts, resolved, options.ray_retries, log)
        self.options = options
        self.gpus = 0.0
        self.address = options.ray_address
        cpus = options.ray_cpus_per_actor
        local_cpus = 0
        if self.address is None:  # a local instance offers this machine's CPUs (as many as the actors ask) and GPUs
            local = self._placement(os.cpu_count() or 1, local_gpus() if self.device.type == "cuda" else 0)
            local_cpus = math.ceil(local.workers * cpus)
        self.owns_connection = connect(self.address, local_cpus)
        self.head = gcs_endpoint()
        self.head_lost = False
        self.actors: list[Any] = []
        try:
            available = ray.cluster_resources()
            placement = self._placement(available.get("CPU", 0), available.get("GPU", 0))
            actors, self.gpus = placement.workers, placement.gpus_per_worker
            wanted = {"CPU": actors * cpus, "GPU": actors * self.gpus}
            short = [f"{k} {v:g} (has {available.get(k, 0):g})" for k, v in wanted.items() if v > available.get(k, 0)]
            if short:
                raise ValueError(f"the Ray cluster cannot place {actors} actors: they need {', '.join(short)}")
            self.actors = [self._new_actor() for _ in range(actors)]
            self.pids = ray.get([actor.ready.remote() for actor in self.actors], timeout=ACTOR_START_S)
            self.holdings = [Holdings() for _ in self.actors]
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

    def _placement(self, cpus: float, gpus: float):
        o = self.options
        return ray_placement(self.device.type, o.ray_actors, cpus, gpus, o.ray_cpus_per_actor, o.ray_gpus_per_actor)

    def _new_actor(self) -> Any:
        return RemoteShardWorker.options(num_cpus=self.options.ray_cpus_per_actor, num_gpus=self.gpus).remote(
            self.resolved, self.device.type, self.resolved.runner.threads
        )

    # -- the transport ---------------------------------------------------------------------
    def _before_evaluate(self) -> None:
        if not self._head_answers():
            raise self._lost("its head does not accept connections")

    def _send(self, k: int, request: bytes) -> Any:
        return self.actors[k].evaluate.remote(request)

    def _receive(self, k: int, pending: Any) -> bytes:
        try:
            return self._get(pending)
        except WORKER_LOST as err:
            raise WorkerLost(first_line(err)) from None
        except HEAD_LOST as err:
            raise self._lost(first_line(err)) from None

    def _restart(self, k: int) -> int:
        with contextlib.suppress(Exception):
            ray.kill(self.actors[k], no_restart=True)
        try:
            self.actors[k] = self._new_actor()
            return self._get(self.actors[k].ready.remote(), ACTOR_START_S)
        except (rex.GetTimeoutError, *HEAD_LOST) as start_err:
            raise self._lost(f"actor {k} died and no replacement could start: {first_line(start_err)}") from None

    def _handles(self) -> list[Any]:
        return list(self.actors)

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
            self.actors = []  # killing them needs the head; a local instance's shutdown still reaps them
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors = []
        if self.owns_connection and ray.is_initialized():
            with contextlib.suppress(Exception):
                ray.shutdown()
        self.owns_connection = False


def local_gpus() -> int:
    """GPUs torch sees on this machine (what a local Ray instance offers)."""
    import torch

    return torch.cuda.device_count()


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
