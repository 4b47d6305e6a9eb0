"""Any gymnasium env with Box observations and Box or Discrete actions, one env per job.

Gymnasium's vector envs step every sub-env on every call, so a member whose episode ended
would keep stepping (EvoTorch's VecGymNE took 6-11x more CartPole steps than it counted,
measured here). This task keeps a pool of plain envs and steps only the slots that hold a
running job; a slot whose job ended takes the next pending (member, episode) job with an
explicit seeded reset, so no reset step is ever counted as a frame. The per-slot loop is
the same Python loop gymnasium's SyncVectorEnv runs (sync beats async on 2 cores).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from envs.base import Act, EpisodeOptions, Evaluation, Task, valid_actions
from envs.episodes import EpisodeBook
from envs.quiet import quiet_mujoco


class GymTask(Task):
    """A gymnasium id as a population task (classic control, MuJoCo v5, ...)."""

    def __init__(self, task_id: str, options: EpisodeOptions):
        super().__init__(task_id, options)
        quiet_mujoco()
        self._envs: list[gym.Env] = []
        probe = self._new_env()
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        if not isinstance(self.observation_space, gym.spaces.Box):
            raise ValueError(f"task {task_id} has {self.observation_space} observations; evoboard needs Box")
        if not isinstance(self.action_space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise ValueError(f"task {task_id} has {self.action_space} actions; evoboard needs Box or Discrete")
        self.max_steps = options.max_steps or probe.spec.max_episode_steps
        if self.max_steps is None:
            raise ValueError(f"task {task_id} has no time limit: set max_steps")
        self._envs.append(probe)
        self._discrete = isinstance(self.action_space, gym.spaces.Discrete)

    def _new_env(self) -> gym.Env:
        return gym.make(self.id, max_episode_steps=self.options.max_steps, disable_env_checker=True)

    def _pool(self, size: int) -> list[gym.Env]:
        while len(self._envs) < size:
            self._envs.append(self._new_env())
        return self._envs[:size]

    def evaluate(
        self, act: Act, members: int, seeds: Sequence[int], elite_trace: np.ndarray | None = None
    ) -> Evaluation:
        book = EpisodeBook(members, seeds, self.options, self.max_steps, elite_trace)
        envs = self._pool(min(book.jobs, self.options.max_envs))
        slot_job = np.arange(len(envs))  # job each slot runs
        obs = np.stack([env.reset(seed=book.seed(j))[0] for env, j in zip(envs, slot_job, strict=True)]).astype(
            np.float32
        )
        next_job = len(envs)
        active = np.arange(len(envs))  # slots holding a running job
        rewards = np.zeros(len(envs))
        ended = np.zeros(len(envs), dtype=bool)
        t_policy = t_env = 0.0
        while len(active):
            jobs = slot_job[active]
            t0 = time.perf_counter()
            actions = act(book.member(jobs), obs[active])
            t1 = time.perf_counter()
            valid = valid_actions(self.action_space, actions)
            for k, slot in enumerate(active):
                if not valid[k]:
                    book.fail(int(jobs[k]), f"invalid action {actions[k]!r} (non-finite network output?)")
                    rewards[k], ended[k] = 0.0, True
                    continue
                try:
                    o, r, terminated, truncated, _ = envs[slot].step(int(actions[k]) if self._discrete else actions[k])
                    obs[slot], rewards[k], ended[k] = o, r, terminated or truncated
                except Exception as err:  # an env fault ends this member's episode, not the generation
                    book.fail(int(jobs[k]), f"{type(err).__name__}: {err}")
                    rewards[k], ended[k] = 0.0, True
            t_policy, t_env = t_policy + t1 - t0, t_env + time.perf_counter() - t1
            over = book.update(jobs, rewards[: len(active)], ended[: len(active)])
            if over.any():
                for slot in active[over]:
                    if next_job < book.jobs:  # backfill the freed slot with a pending job
                        slot_job[slot] = next_job
                        obs[slot] = envs[slot].reset(seed=book.seed(next_job))[0]
                        next_job += 1
                    else:
                        slot_job[slot] = -1
                active = np.flatnonzero(slot_job >= 0)
        result = book.result(self.frames_per_step)
        result.timings.update(policy=t_policy, env=t_env)
        return result

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
