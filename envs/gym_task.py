"""Any gymnasium env as a population task, one env per job (spaces adapted by ``evoboard.envs.spaces``).

Gymnasium's vector envs step every sub-env on every call, so a member whose episode ended
would keep stepping. This task keeps a pool of plain envs and steps only the slots that hold
a running job; ``evoboard.envs.slots`` schedules them (a freed slot takes the next pending job with a
seeded reset). The per-slot step is the same Python loop gymnasium's SyncVectorEnv runs (sync
beats async on 2 cores).

A CartPole episode of a random member lasts about ten steps of ~8 us, so the loop's own
cost per step matters as much as the env's: it works on Python lists and steps the bare
env under ``gym.make``'s pass-through wrappers (see ``direct_env``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, TimeLimit

from evoboard.envs.base import Act, EpisodeOptions, Evaluation, Task
from evoboard.envs.episodes import EpisodeBook
from evoboard.envs.normalizer import ObsNormalizer
from evoboard.envs.quiet import quiet_mujoco
from evoboard.envs.slots import run_jobs
from evoboard.envs.spaces import adapt_observations, check_actions


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


@dataclass
class GymOptions(EpisodeOptions):
    """Episode settings plus observation normalization."""

    obs_norm: bool = False
    """Normalize Box observations by running mean/std, updated after each generation (Salimans et al. 2017)."""


class GymTask(Task):
    """A gymnasium id as a population task (classic control, MuJoCo v5, ...)."""

    Options = GymOptions

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
        self.normalizer: ObsNormalizer | None = None
        """Running observation statistics (``obs_norm``): the runner updates and checkpoints them."""
        if getattr(options, "obs_norm", False):
            if not isinstance(self.observation_space, gym.spaces.Box):
                raise ValueError(f"obs_norm needs Box observations; {task_id} has {self.observation_space}")
            self.normalizer = ObsNormalizer(self.observation_space.shape)

    def _new_env(self) -> gym.Env:
        env = gym.make(self.id, max_episode_steps=self.options.max_steps, disable_env_checker=True)
        try:
            return self._adapt(env)
        except ValueError:
            env.close()
            raise

    def _adapt(self, env: gym.Env) -> gym.Env:
        """``env`` with observations a policy reads (``evoboard.envs.spaces``); image tasks preprocess frames."""
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
        act = act if self.normalizer is None else self.normalizer.wrap(act)
        envs = self._pool(min(book.jobs, self.options.max_envs))
        step, discrete = [env.step for env in envs], self._discrete
        obs = np.empty((len(envs), *self.observation_space.shape), dtype=np.float32)  # (slots, ...)

        def reset_slots(slots: list[int], seeds: list[int]) -> None:
            for slot, seed in zip(slots, seeds, strict=True):
                obs[slot] = envs[slot].reset(seed=seed)[0]

        def step_slots(active: list[int], jobs: np.ndarray, actions: np.ndarray, valid: np.ndarray):
            ok = valid.tolist()
            acts = actions.tolist() if discrete else actions  # Discrete: Python numbers, made ints below
            rewards, ended = [0.0] * len(active), [True] * len(active)  # a step not taken: job over, no reward
            for k, slot in enumerate(active):
                if not ok[k]:
                    continue
                try:
                    o, r, terminated, truncated, _ = step[slot](int(acts[k]) if discrete else acts[k])
                    obs[slot], rewards[k], ended[k] = o, float(r), bool(terminated or truncated)
                except Exception as err:  # an env fault ends this member's episode, not the generation
                    book.fail(int(jobs[k]), f"{type(err).__name__}: {err}")
                    rewards[k], ended[k] = 0.0, True
            return np.array(rewards), np.array(ended)

        timings = run_jobs(book, len(envs), act, self.action_space, obs, reset_slots, step_slots)
        result = book.result(self.frames_per_step)
        result.timings.update(timings)
        return result

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
        self._direct.clear()
