"""Any gymnasium env as a population task, one env per job (spaces adapted by ``envs.spaces``).

Gymnasium's vector envs step every sub-env on every call, so a member whose episode ended
would keep stepping (EvoTorch's VecGymNE took 6-11x more CartPole steps than it counted,
measured here). This task keeps a pool of plain envs and steps only the slots that hold a
running job; a slot whose job ended takes the next pending (member, episode) job with an
explicit seeded reset, so no reset step is ever counted as a frame. The per-slot loop is
the same Python loop gymnasium's SyncVectorEnv runs (sync beats async on 2 cores).

A CartPole episode of a random member lasts about ten steps of ~8 us, so the loop's own
cost per step matters as much as the env's: it works on Python lists, rebuilds the
active set only when an episode ends, and steps the bare env under ``gym.make``'s
pass-through wrappers (see ``direct_env``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, TimeLimit

from envs.base import Act, EpisodeOptions, Evaluation, Task, valid_actions
from envs.episodes import EpisodeBook
from envs.quiet import quiet_mujoco
from envs.spaces import adapt_observations, check_actions


def direct_env(env: gym.Env, max_steps: int) -> gym.Env:
    """What to reset and step for ``env``: the bare env when every wrapper around it only
    enforces what the task already does, else ``env`` itself.

    ``gym.make`` adds ``TimeLimit`` (its truncation falls on the step where the episode book's
    budget ends the episode, when its limit equals ``max_steps``) and ``OrderEnforcing`` (the
    task resets every env before stepping it); going round them saves ~1 us of a ~8 us
    CartPole step. Any other wrapper (a user's, a spec's ``additional_wrappers``, a subclass of
    these two) may change observations, rewards or actions, so such an env is used whole.
    """
    inner = env
    while isinstance(inner, gym.Wrapper):
        kind = type(inner)
        if not (kind is OrderEnforcing or (kind is TimeLimit and inner._max_episode_steps == max_steps)):
            return env
        inner = inner.env
    return inner


class GymTask(Task):
    """A gymnasium id as a population task (classic control, MuJoCo v5, ...)."""

    def __init__(self, task_id: str, options: EpisodeOptions):
        super().__init__(task_id, options)
        quiet_mujoco()
        self._envs: list[gym.Env] = []
        self._direct: list[gym.Env] = []  # per env: what evaluate resets and steps (direct_env)
        probe = self._new_env()
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        check_actions(self.action_space, task_id)
        self.max_steps = options.max_steps or probe.spec.max_episode_steps
        if self.max_steps is None:
            raise ValueError(f"task {task_id} has no time limit: set max_steps")
        self._add(probe)
        self._discrete = isinstance(self.action_space, gym.spaces.Discrete)

    def _new_env(self) -> gym.Env:
        env = gym.make(self.id, max_episode_steps=self.options.max_steps, disable_env_checker=True)
        try:
            return self._adapt(env)
        except ValueError:
            env.close()
            raise

    def _adapt(self, env: gym.Env) -> gym.Env:
        """``env`` with observations a policy reads (``envs.spaces``); image tasks preprocess frames."""
        return adapt_observations(env, self.id)

    def _pool(self, size: int) -> list[gym.Env]:
        """The first ``size`` envs as evaluate uses them (``direct_env``), made as needed."""
        while len(self._envs) < size:
            self._add(self._new_env())
        return self._direct[:size]

    def _add(self, env: gym.Env) -> None:
        """Keep ``env`` (closed with the task) and what evaluate resets and steps for it."""
        self._envs.append(env)
        self._direct.append(direct_env(env, self.max_steps))

    def evaluate(
        self, act: Act, members: int, seeds: Sequence[int], elite_trace: np.ndarray | None = None
    ) -> Evaluation:
        book = EpisodeBook(members, seeds, self.options, self.max_steps, elite_trace)
        envs = self._pool(min(book.jobs, self.options.max_envs))
        step, discrete = [env.step for env in envs], self._discrete
        slot_job = list(range(len(envs)))  # job each slot runs; -1 once none is left for it
        obs = np.array([env.reset(seed=book.seed(j))[0] for env, j in zip(envs, slot_job, strict=True)], np.float32)
        next_job = len(envs)
        active = list(slot_job)  # slots holding a running job, in slot order
        rows, jobs = np.array(active), np.array(slot_job)  # the same as arrays: obs rows, job ids
        member = book.member(jobs)
        t_policy = t_env = 0.0
        while active:
            t0 = time.perf_counter()
            actions = act(member, obs[rows])
            t1 = time.perf_counter()
            valid = valid_actions(self.action_space, actions).tolist()
            acts = actions.tolist() if discrete else actions  # Discrete: Python numbers, made ints below
            rewards, ended = [0.0] * len(active), [True] * len(active)  # a step not taken: job over, no reward
            for k, slot in enumerate(active):
                if not valid[k]:
                    book.fail(slot_job[slot], f"invalid action {actions[k]!r} (non-finite network output?)")
                    continue
                try:
                    o, r, terminated, truncated, _ = step[slot](int(acts[k]) if discrete else acts[k])
                    obs[slot], rewards[k], ended[k] = o, float(r), bool(terminated or truncated)
                except Exception as err:  # an env fault ends this member's episode, not the generation
                    book.fail(slot_job[slot], f"{type(err).__name__}: {err}")
                    rewards[k], ended[k] = 0.0, True
            t_policy, t_env = t_policy + t1 - t0, t_env + time.perf_counter() - t1
            over = book.update(jobs, np.array(rewards), np.array(ended))
            if over.any():
                for k in np.flatnonzero(over).tolist():
                    slot = active[k]
                    if next_job < book.jobs:  # backfill the freed slot with a pending job
                        slot_job[slot] = next_job
                        obs[slot] = envs[slot].reset(seed=book.seed(next_job))[0]
                        next_job += 1
                    else:
                        slot_job[slot] = -1
                active = [slot for slot in active if slot_job[slot] >= 0]
                rows, jobs = np.array(active, dtype=np.int64), np.array([slot_job[s] for s in active], dtype=np.int64)
                member = book.member(jobs)
        result = book.result(self.frames_per_step)
        result.timings.update(policy=t_policy, env=t_env)
        return result

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
        self._direct.clear()
