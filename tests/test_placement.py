"""Backend defaults that fit the machine: one worker per CPU on the CPU, one per GPU on CUDA (pure functions)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from evoboard.agents.algorithms.es import ESState
from evoboard.suite.backends.placement import process_placement, ray_placement
from evoboard.suite.backends.shards import state_on


def test_processes_default_to_one_per_cpu_on_the_cpu():
    placement = process_placement("cpu", None, cpus=16, gpus=1)
    assert placement.workers == 16 and set(placement.devices) == {"cpu"}
    assert process_placement("cpu", 3, cpus=16, gpus=0).devices == ("cpu",) * 3


def test_processes_default_to_one_per_gpu_on_cuda_each_on_its_own():
    assert process_placement("cuda", None, cpus=16, gpus=1).devices == ("cuda:0",)  # not 16 CUDA contexts
    assert process_placement("cuda", None, cpus=16, gpus=4).devices == ("cuda:0", "cuda:1", "cuda:2", "cuda:3")
    assert process_placement("cuda", 3, cpus=16, gpus=2).devices == ("cuda:0", "cuda:1", "cuda:0")  # asked for
    with pytest.raises(ValueError, match="torch sees none"):
        process_placement("cuda", None, cpus=16, gpus=0)


def test_ray_defaults_on_the_cpu():
    placement = ray_placement("cpu", None, cpus=16, gpus=1, cpus_per_actor=1.0, gpus_per_actor=None)
    assert placement.workers == 16 and placement.gpus_per_worker == 0
    assert ray_placement("cpu", None, cpus=16, gpus=0, cpus_per_actor=3.0, gpus_per_actor=None).workers == 5
    with pytest.raises(ValueError, match="needs --device cuda"):
        ray_placement("cpu", None, cpus=16, gpus=1, cpus_per_actor=1.0, gpus_per_actor=1.0)


def test_ray_defaults_on_cuda_fit_a_one_gpu_machine():
    # The old default (one actor per CPU, one GPU each) asked a 16-CPU, 1-GPU machine for 16 GPUs.
    one = ray_placement("cuda", None, cpus=16, gpus=1, cpus_per_actor=1.0, gpus_per_actor=None)
    assert (one.workers, one.gpus_per_worker, one.devices) == (1, 1.0, ("cuda",))
    eight = ray_placement("cuda", None, cpus=64, gpus=8, cpus_per_actor=1.0, gpus_per_actor=None)
    assert (eight.workers, eight.gpus_per_worker) == (8, 1.0)
    shared = ray_placement("cuda", 4, cpus=16, gpus=1, cpus_per_actor=1.0, gpus_per_actor=None)
    assert (shared.workers, shared.gpus_per_worker) == (4, 0.25)  # asked for more actors than GPUs: a share each
    thirds = ray_placement("cuda", 3, cpus=16, gpus=1, cpus_per_actor=1.0, gpus_per_actor=None)
    assert thirds.workers * thirds.gpus_per_worker <= 1.0
    halves = ray_placement("cuda", None, cpus=16, gpus=2, cpus_per_actor=1.0, gpus_per_actor=0.5)
    assert (halves.workers, halves.gpus_per_worker) == (4, 0.5)


@pytest.mark.parametrize(
    ("gpus", "per_actor", "message"),
    [(0, None, "has none"), (1, 0.0, "ray_gpus_per_actor > 0")],
)
def test_ray_on_cuda_refuses_what_cannot_run(gpus, per_actor, message):
    with pytest.raises(ValueError, match=message):
        ray_placement("cuda", None, cpus=16, gpus=gpus, cpus_per_actor=1.0, gpus_per_actor=per_actor)


def test_a_search_state_travels_as_cpu_tensors_and_lands_on_the_workers_device():
    rng = np.random.default_rng(0).bit_generator.state
    state = ESState(generation=3, rng=rng, mean=torch.arange(5.0, device="meta"), adam_m=torch.zeros(5),
                    adam_v=torch.zeros(5))  # fmt: skip
    assert state_on(None, "cpu") is None
    on_meta = state_on(state, "meta")
    assert all(getattr(on_meta, k).device.type == "meta" for k in ESState.tensor_fields)
    sent = state_on(ESState(generation=3, rng=rng, mean=torch.arange(5.0)), "cpu")
    back = pickle.loads(pickle.dumps(sent))
    assert back.mean.device.type == "cpu" and torch.equal(back.mean, torch.arange(5.0)) and back.generation == 3
