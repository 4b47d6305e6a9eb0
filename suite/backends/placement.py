"""How many workers a multi-worker backend starts, and on which device: one per GPU on CUDA, one per CPU otherwise.

A worker holds the run's parts on its device. On the CPU, one worker per core uses the machine.
On CUDA, each worker process opens its own CUDA context (about 500 MB of GPU memory before any
tensor) and its kernels queue behind the others' on the same GPU, so a worker per CPU core would
fill a one-GPU machine with contexts and small shards; a population already runs batched on one
GPU. So on CUDA the default is one worker per GPU, each on its own GPU; more workers than GPUs
only when asked (Ray then gives each actor an equal fraction of a GPU). Pure functions of what
the machine or cluster has, so they are tested without a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """Workers to start and, per worker, the torch device it builds its parts on."""

    devices: tuple[str, ...]
    gpus_per_worker: float = 0.0
    """What Ray reserves per actor (0 on the CPU; Ray then pins the actor to its GPU, seen as ``cuda``)."""

    @property
    def workers(self) -> int:
        return len(self.devices)


def process_placement(device: str, requested: int | None, cpus: int, gpus: int) -> Placement:
    """Worker processes for ``--backend processes``: ``requested``, else one per GPU (cuda) or per CPU.

    On CUDA worker k runs on ``cuda:{k mod gpus}``, so the GPUs share the workers evenly.
    """
    if device == "cuda":
        if gpus < 1:
            raise ValueError("device cuda needs a GPU, and torch sees none")
        count = requested or gpus
        return Placement(tuple(f"cuda:{k % gpus}" for k in range(count)))
    return Placement((device,) * (requested or max(1, cpus)))


def ray_placement(
    device: str,
    requested: int | None,
    cpus: float,
    gpus: float,
    cpus_per_actor: float,
    gpus_per_actor: float | None,
) -> Placement:
    """Actors and GPUs per actor for ``--backend ray`` on a cluster with ``cpus`` and ``gpus``.

    CUDA: ``gpus_per_actor`` given: as many actors as fit (or ``requested``); not given: one actor
    per GPU with one GPU each, or ``requested`` actors sharing the GPUs equally (a fraction each,
    at most 1). CPU: as many actors as ``cpus`` hold at ``cpus_per_actor`` each (or ``requested``).
    ValueError for a combination that cannot run (cuda without GPUs, GPUs without cuda).
    """
    if device != "cuda":
        if gpus_per_actor:
            need = "needs --device cuda (the actors use the run's device)"
            raise ValueError(f"ray_gpus_per_actor={gpus_per_actor:g} {need}")
        return Placement((device,) * (requested or max(1, int(cpus // cpus_per_actor))))
    if gpus_per_actor == 0:
        raise ValueError("device cuda needs GPUs on the actors: set ray_gpus_per_actor > 0 (or use --device cpu)")
    if gpus_per_actor is None:
        if gpus <= 0:
            raise ValueError("device cuda needs GPUs on the actors, and the Ray cluster has none")
        count = requested or max(1, int(gpus))
        gpus_per_actor = 1.0 if requested is None else min(1.0, math.floor(gpus / count * 1e4) / 1e4)
    else:
        count = requested or max(1, int(gpus // gpus_per_actor))
    return Placement(("cuda",) * count, gpus_per_actor)
