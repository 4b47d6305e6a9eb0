"""``evoboard bench SUITE --jobs N``: a suite's runs in N worker processes, one run at a time each.

Workers are started once and take one job after another over a pipe; a run in a worker is the
same run as alone (its spec is resolved there, its torch threads set there). They are forked from
the driver where that is safe (Linux, CUDA not initialised in the driver, which runs no run itself),
so they share its imports: a spawned worker first spends ~3 s of CPU importing torch and the envs,
which on 2 cores cost more than 20 short runs gained by running side by side. Elsewhere: spawn.

A worker that dies (a segfault, the kernel's OOM killer) costs its one run, reported in one line;
a fresh worker takes its place and the other runs go on. Workers ignore Ctrl-C and die with their
driver (Linux ``PR_SET_PDEATHSIG``), so an interrupted or killed driver leaves no run going on
behind its back; their checkpoints stand.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from evoboard.suite.allocator import keep_freed_memory
from evoboard.suite.suites.jobs import Job, Result, execute, one_line

PR_SET_PDEATHSIG = 1
STOP_S = 5.0
"""How long a worker may take to exit once told to, before it is killed."""


def die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent goes; exit now if the parent is already gone."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the pipe's EOF still ends an idle worker
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def start_method() -> str:
    """fork on Linux while this process has not initialised CUDA (a forked child could not use it), else spawn."""
    import torch

    return "fork" if sys.platform.startswith("linux") and not torch.cuda.is_initialized() else "spawn"


def work(conn: Connection, out: str, parent: int) -> None:
    """A worker's life: run each job it is sent, send back ("row", row) or ("error", line); None ends it."""
    die_with_parent(parent)
    keep_freed_memory()  # as `evoboard run` does at start-up (a spawned worker skips the CLI's main)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            reply: tuple[str, Any] = ("row", execute(job, Path(out)))
        except Exception as err:  # one run's failure is one line; the worker takes the next job
            reply = ("error", one_line(err))
        conn.send(reply)


@dataclass
class Worker:
    process: Any
    conn: Connection
    job: Job | None = None


class ProcessPool:
    """Runs jobs in ``workers`` processes (at most one per job), yielding results as runs finish."""

    def __init__(self, workers: int, out: Path):
        self.workers, self.out = workers, out
        self.context = mp.get_context(start_method())

    def start(self) -> Worker:
        sys.stdout.flush()  # a forked worker must not print the driver's buffered lines again
        sys.stderr.flush()
        mine, theirs = self.context.Pipe()
        process = self.context.Process(target=work, args=(theirs, str(self.out), os.getpid()), daemon=True)
        process.start()
        theirs.close()
        return Worker(process, mine)

    def results(self, jobs: list[Job]) -> Iterator[Result]:
        pending = deque(jobs)
        pool = [self.start() for _ in range(min(self.workers, len(jobs)))]
        try:
            while pending or any(w.job is not None for w in pool):
                for worker in pool:
                    if worker.job is None and pending:
                        worker.job = pending.popleft()
                        worker.conn.send(worker.job)
                busy = [w for w in pool if w.job is not None]
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
                for i, worker in enumerate(pool):
                    if worker.job is None:
                        continue
                    if worker.conn in ready:
                        try:
                            kind, value = worker.conn.recv()
                        except (EOFError, OSError):  # died mid-reply: same as dying mid-run
                            kind, value = "died", None
                        if kind != "died":
                            job, worker.job = worker.job, None
                            yield Result(job, row=value) if kind == "row" else Result(job, error=value)
                            continue
                    elif worker.process.sentinel not in ready:
                        continue
                    job, worker.job = worker.job, None
                    worker.process.join(STOP_S)
                    code = worker.process.exitcode
                    yield Result(job, error=f"its worker process died (exit code {code}); the same command resumes it")
                    worker.conn.close()
                    if pending:
                        pool[i] = self.start()
        finally:
            self.stop(pool)

    def stop(self, pool: list[Worker]) -> None:
        """End every worker: idle ones are told to; busy ones (Ctrl-C, an error here) are terminated."""
        for worker in pool:
            try:
                if worker.job is None:
                    worker.conn.send(None)
                else:
                    worker.process.terminate()  # its last checkpoint stands: the same command resumes it
            except (OSError, ValueError):
                worker.process.terminate()
        for worker in pool:
            worker.process.join(STOP_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
