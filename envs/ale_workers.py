"""``resets=snapshot`` slots spread over worker processes, so one population's emulators use every core.

``ALEInterface.act`` holds the GIL, so in one process the snapshot slots step one after another
(``evoboard.envs.ale_snapshot``). Here each slot lives in one of W spawned worker processes with their
own ``SnapshotSlots``, slots 4b to 4b+3 in worker ``b % W``, so each of ``run_jobs``' (up to) four lanes
has slots in every worker: while the policy picks one lane's actions, the other lanes' emulators step on
every core. A step sends each worker its slots' actions; the workers emulate and resize side by side, and
their frames come back as raw bytes down the pipe (an 84x84 frame is 7 KB), to be pushed onto the stacks
here, in the run's process. Replies come back in request order, several lanes' requests in flight at once.
An episode is a function of its seed alone, so a result does not depend on the number of workers
(``tests/test_atari_snapshot.py`` holds them equal).

Workers are daemonic children, spawned (not forked: the parent holds torch's thread pools) and stopped
by ``close`` or when the parent exits. A daemonic process may not start children, so inside
``--backend processes`` workers the slots stay in the worker's own process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import numpy as np

from evoboard.envs.ale_snapshot import SnapshotSlots, push
from evoboard.envs.slots import SlotDriver

if TYPE_CHECKING:
    from evoboard.envs.atari import AtariOptions


def process_count(options: AtariOptions) -> int:
    """Worker processes for ``options``: ``env_processes``, by default one per core this process may use
    (1 inside a daemonic process, which may not start children); at most ``max_envs``."""
    daemonic = multiprocessing.current_process().daemon
    wanted = options.env_processes
    if wanted is not None and wanted > 1 and daemonic:
        raise ValueError(f"env_processes={wanted} needs child processes, which a --backend processes worker "
                         f"cannot start; set env_processes=1 there")  # fmt: skip
    if wanted is None:
        wanted = 1 if daemonic else len(os.sched_getaffinity(0))
    return max(1, min(wanted, options.max_envs))


def serve(conn: Connection, rom: str, options: AtariOptions) -> None:
    """A worker's loop: make its slots, then answer ("reset", slots, seeds) and ("step", slots, actions) with
    ("ok", rewards, ended) and the frames' bytes, or ("error", message); stop at ("close",) or a closed pipe."""
    slots = SnapshotSlots(rom, options, 0)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "close":
            return
        try:
            local = message[1]
            rewards, ended = np.zeros(len(local)), np.zeros(len(local), dtype=bool)
            if message[0] == "reset":
                frames = slots.begin(local, message[2])
            else:
                frames = slots.advance(local, message[2], rewards, ended)
        except Exception as err:  # noqa: BLE001  (the run's process raises it)
            conn.send(("error", f"{type(err).__name__}: {err}"))
            continue
        conn.send(("ok", rewards, ended))
        conn.send_bytes(np.ascontiguousarray(frames).reshape(-1))  # a flat view: send_bytes counts its first axis


def _stop(processes: list, conns: list[Connection]) -> None:
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):  # a worker already gone
            conn.send(("close",))
        conn.close()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()


class SnapshotWorkers(SlotDriver):
    """Snapshot slots over ``processes`` workers, the interface of ``SnapshotSlots``: ``reset`` and ``step``
    write stacked observations into ``obs`` (slots, stack, H, W)."""

    def __init__(self, rom: str, options: AtariOptions, max_steps: int, processes: int):
        probe = SnapshotSlots(rom, options, max_steps)  # the spaces, and a bad ROM fails here in one line
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        self.size = options.screen_size
        context = multiprocessing.get_context("spawn")
        self.processes, self.conns = [], []
        for k in range(processes):
            here, there = context.Pipe()
            process = context.Process(target=serve, args=(there, rom, options), daemon=True, name=f"ale-snapshot-{k}")
            process.start()
            there.close()  # the worker holds its end; ours would hide the worker's death
            self.processes.append(process)
            self.conns.append(here)
        self.sent, self.received = [0] * processes, [0] * processes  # requests per worker, replies read
        self.early: list[dict[int, tuple]] = [{} for _ in range(processes)]  # replies read before they were asked for
        self._finalizer = weakref.finalize(self, _stop, self.processes, self.conns)

    lanes = 4
    """Lanes ``run_jobs`` may overlap: the policy picks one lane's actions while the others' slots emulate in the
    workers. Measured (Pong P=32, 2 cores, 1 torch thread, steps/s): lowrank 2,473 / 2,918 / 3,184 / 2,880 / 2,558
    and bf16 lowrank-perturb 1,959 / 2,336 / 2,611 / 2,031 / 1,649 at 2 / 3 / 4 / 6 / 8 lanes."""

    def _send(self, kind: str, slots: Sequence[int], values: np.ndarray) -> Callable[..., np.ndarray]:
        """Send each worker its share of ``slots`` with their ``values``; the function returned waits for the
        replies, writes ``rewards`` and ``ended`` (A,) when given, and returns the new frames (A, H, W)."""
        workers = len(self.conns)
        slots = np.asarray(slots, dtype=np.int64)
        values = np.asarray(values).reshape(-1)
        # Slots Lb .. Lb+L-1 (one in each of L lanes) live in worker b % W, so each lane's step runs on every worker.
        block = slots // self.lanes
        worker, local = block % workers, (block // workers) * self.lanes + slots % self.lanes
        shares = [(w, np.flatnonzero(worker == w)) for w in range(workers)]  # positions in ``slots``
        shares = [(w, share) for w, share in shares if len(share)]
        tickets = {}  # worker -> the number of its request: replies come back in request order
        for w, share in shares:
            try:
                self.conns[w].send((kind, local[share].tolist(), values[share]))
            except OSError:
                self._lost(w)
            tickets[w] = self.sent[w]
            self.sent[w] += 1

        def receive(rewards: np.ndarray | None = None, ended: np.ndarray | None = None) -> np.ndarray:
            frames = np.empty((len(slots), self.size, self.size), dtype=np.uint8)
            failure = None
            for w, share in shares:
                reply, data = self._reply(w, tickets[w])
                if reply[0] != "ok":
                    failure = failure or reply[1]
                    continue
                frames[share] = np.frombuffer(data, dtype=np.uint8).reshape(len(share), self.size, self.size)
                if rewards is not None:
                    rewards[share], ended[share] = reply[1], reply[2]
            if failure is not None:
                raise RuntimeError(f"snapshot env worker: {failure}")
            return frames

        return receive

    def _reply(self, w: int, ticket: int) -> tuple[tuple, bytes | None]:
        """Worker ``w``'s reply to its request ``ticket``; replies to later requests read on the way are kept."""
        while ticket not in self.early[w]:
            try:
                reply = self.conns[w].recv()
                data = self.conns[w].recv_bytes() if reply[0] == "ok" else None
            except (EOFError, OSError):
                self._lost(w)
            self.early[w][self.received[w]] = (reply, data)
            self.received[w] += 1
        return self.early[w].pop(ticket)

    def _lost(self, w: int) -> None:
        self.processes[w].join(timeout=1)
        raise RuntimeError(f"snapshot env worker {w} died (exit code {self.processes[w].exitcode})") from None

    def reset(self, slots: Sequence[int], seeds: Sequence[int], obs: np.ndarray) -> None:
        """Start each slot's episode from its seed (the workers make the slots they lack); first frames into ``obs``."""
        if len(slots):
            push(obs, slots, self._send("reset", slots, np.asarray(seeds, dtype=np.int64))(), fresh=True)

    def start(self, active: Sequence[int], actions: np.ndarray, obs: np.ndarray, rewards, ended) -> Callable[[], None]:
        """Send the ``active`` slots their actions; the function returned waits for the workers and pushes the new
        frames onto ``obs``."""
        receive = self._send("step", active, np.asarray(actions, dtype=np.int64))
        return lambda: push(obs, active, receive(rewards, ended), fresh=False)

    def close(self) -> None:
        self._finalizer()
