"""The simulators' own speed: raw vector envs stepped with random actions, the baseline of every env benchmark."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from evoboard.envs.quiet import quiet_mujoco


def raw_gym(task_id: str, envs_n: int, steps: int) -> float:
    """Raw SyncVectorEnv steps/s with random actions (one episode per env when steps = the limit)."""
    quiet_mujoco()
    vec = gym.vector.SyncVectorEnv([lambda: gym.make(task_id, disable_env_checker=True) for _ in range(envs_n)])
    vec.action_space.seed(0)
    vec.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        vec.step(vec.action_space.sample())
    seconds = time.perf_counter() - t0
    vec.close()
    return steps * envs_n / seconds


def raw_atari(game: str, envs_n: int, steps: int) -> float:
    """Raw AtariVectorEnv steps/s (2 C++ threads, random actions, Machado settings, no clipping)."""
    from ale_py.vector_env import AtariVectorEnv

    vec = AtariVectorEnv(game, envs_n, num_threads=2, repeat_action_probability=0.25, reward_clipping=False)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        vec.step(rng.integers(0, vec.single_action_space.n, envs_n))
    seconds = time.perf_counter() - t0
    vec.close()
    return steps * envs_n / seconds


def raw_atari_snapshot(game: str, envs_n: int, steps: int) -> float:
    """Raw steps/s of ``resets=snapshot``'s slots (``envs/ale_snapshot.py``), as ``raw_atari``: Machado settings,
    no clipping, random actions; one Python thread, its preprocessing in numpy; an ended episode restarts from
    the snapshot inside the timed loop, as the vector env's autoreset does."""
    from evoboard.envs.ale_snapshot import SnapshotSlots
    from evoboard.envs.atari import AtariOptions

    slots = SnapshotSlots(game, AtariOptions(resets="snapshot"), 27_000)
    obs = np.zeros((envs_n, *slots.observation_space.shape), dtype=np.uint8)
    rewards, ended = np.zeros(envs_n), np.zeros(envs_n, dtype=bool)
    every = list(range(envs_n))
    slots.reset(every, every, obs)  # makes the slots: ROM loads, not steps
    rng = np.random.default_rng(0)
    seed = envs_n
    t0 = time.perf_counter()
    for _ in range(steps):
        slots.step(every, rng.integers(0, slots.action_space.n, envs_n), obs, rewards, ended)
        done = np.flatnonzero(ended).tolist()
        if done:
            slots.reset(done, list(range(seed, seed + len(done))), obs)
            seed += len(done)
    seconds = time.perf_counter() - t0
    slots.close()
    return steps * envs_n / seconds
