"""Process backend (``--backend processes``): each generation sharded over worker processes on this machine.

The cheapest way to use every core of one machine: no cluster to start, no object store, no
scheduler; each worker is a spawned Python process that builds its own parts once and then
answers shard requests over a pipe (``evoboard.suite.backends.shards`` decides the shards and the wire format,
shared with the Ray backend). Measured on this 2-core machine, two processes evaluate
HalfCheetah-v5 at about 1.7x the raw one-core vector env (``python -m evoboard.suite.ray_bench``).
On CUDA the default is one process per GPU, each on its own (``placement``): a process per core
would open a CUDA context per core on one GPU.

Workers ignore Ctrl-C (the driver stops them), die with the driver (daemon processes), and a
worker that dies mid-evaluation is replaced and its shard re-run.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import torch

from evoboard.errors import RunFailed, WorkerLost
from evoboard.suite.allocator import keep_freed_memory
from evoboard.suite.backends.base import Parts
from evoboard.suite.backends.placement import process_placement
from evoboard.suite.backends.shards import Holdings, ShardedBackend, ShardWorker

log = logging.getLogger("evoboard.suite.backends.processes")

START_S = 300.0
"""How long a worker may take to start (imports, env construction) before the run gives up."""

POLL_S = 1.0
"""While waiting on a worker, how often the driver checks that it is still alive."""


@dataclass
class ProcessOptions:
    """Settings of the process backend; they never change results, so they stay out of ``config``."""

    processes: int | None = None
    """Worker processes; default: the CPUs this process may run on, or one per GPU on cuda (worker k on GPU k)."""
    process_retries: int = 3
    """Times one shard is re-run on a fresh process when its process dies, before the run fails."""

    def __post_init__(self) -> None:
        if self.processes is not None and self.processes < 1:
            raise ValueError(f"processes must be >= 1, got {self.processes}")
        if self.process_retries < 0:
            raise ValueError(f"process_retries must be >= 0, got {self.process_retries}")


def serve(conn: Connection, resolved: Any, device: str, threads: int) -> None:
    """A worker's life: build the parts, say ready, then answer shard requests until an empty one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's; it stops the workers
    keep_freed_memory()
    try:
        worker = ShardWorker(resolved, device, threads)
    except Exception as err:
        conn.send_bytes(pickle.dumps(("error", f"{type(err).__name__}: {err}")))
        return
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while request := conn.recv_bytes():
        try:
            reply = ("ok", worker.evaluate(request))
        except Exception:
            reply = ("error", traceback.format_exc())
        conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


@dataclass
class Worker:
    """One worker process and the driver's end of its pipe."""

    process: multiprocessing.process.BaseProcess
    conn: Connection


class ProcessBackend(ShardedBackend):
    """Shards each evaluation over worker processes that decode their own members from seed chains."""

    Options = ProcessOptions
    worker_name = "process"

    def __init__(self, parts: Parts, resolved: Any, options: ProcessOptions):
        super().__init__(parts, resolved, options.process_retries, log)
        self.context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        gpus = torch.cuda.device_count() if self.device.type == "cuda" else 0
        self.placement = process_placement(self.device.type, options.processes, len(os.sched_getaffinity(0)), gpus)
        count = self.placement.workers
        self.workers: list[Worker] = []
        try:
            self.workers = [self._start(k) for k in range(count)]
            self.pids = [self._ready(k) for k in range(count)]
            self.holdings = [Holdings() for _ in range(count)]
        except BaseException:
            self.close()
            raise

    def _start(self, k: int) -> Worker:
        driver_end, worker_end = self.context.Pipe()
        args = (worker_end, self.resolved, self.placement.devices[k], self.resolved.runner.threads)
        process = self.context.Process(target=serve, args=args, daemon=True, name="evoboard-worker")
        process.start()
        worker_end.close()  # the worker holds its own copy; the driver's would hide the worker's death
        return Worker(process, driver_end)

    def _ready(self, k: int) -> int:
        """Worker ``k``'s pid once it has built its parts; ValueError if it cannot."""
        try:
            kind, value = pickle.loads(self._wait(k, START_S))
        except WorkerLost as err:
            raise ValueError(f"worker process {k} did not start: {err}") from None
        if kind == "error":
            raise ValueError(f"a worker process could not build the run's parts: {value}")
        return value

    def _wait(self, k: int, timeout: float | None = None) -> bytes:
        """The next message from worker ``k``; WorkerLost if it dies (or says nothing within ``timeout``)."""
        worker, waited = self.workers[k], 0.0
        while True:
            try:
                if worker.conn.poll(POLL_S):
                    return worker.conn.recv_bytes()
            except (EOFError, OSError):
                pass  # the pipe closed: the worker is gone
            else:
                waited += POLL_S
                if worker.process.is_alive() and (timeout is None or waited < timeout):
                    continue
            worker.process.join(POLL_S)
            code = worker.process.exitcode
            raise WorkerLost(f"no answer within {timeout:g} s" if code is None else f"exit code {code}")

    # -- the transport ---------------------------------------------------------------------
    def _send(self, k: int, request: bytes) -> None:
        with contextlib.suppress(OSError):  # a dead worker's pipe: _receive reports it
            self.workers[k].conn.send_bytes(request)

    def _receive(self, k: int, pending: None) -> bytes:
        kind, value = pickle.loads(self._wait(k))
        if kind == "error":
            last = value.strip().splitlines()[-1]
            log.error("process %d failed in evaluation %d:\n%s", k, self.calls, value)
            raise RunFailed(f"evaluation {self.calls}: worker process {k} raised {last}")
        return value

    def _restart(self, k: int) -> int:
        self._stop(self.workers[k], timeout=0.0)
        self.workers[k] = self._start(k)
        try:
            return self._ready(k)
        except ValueError as err:
            raise RunFailed(f"process {k} died and no replacement could start: {err}") from None

    def _handles(self) -> list[Any]:
        return [w.process for w in self.workers]

    @staticmethod
    def _stop(worker: Worker, timeout: float) -> None:
        """Ask a worker to finish (an empty request), wait ``timeout`` s, then kill it."""
        with contextlib.suppress(OSError):
            worker.conn.send_bytes(b"")
        worker.process.join(timeout)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        for worker in self.workers:
            self._stop(worker, timeout=5.0)
        self.workers = []
