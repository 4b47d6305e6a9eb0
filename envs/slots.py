"""One backfill scheduler for every stepped task: env slots, a queue of pending jobs, one loop.

A task has ``members x episodes`` (member, episode) jobs and at most ``max_envs`` env slots.
Each slot runs one job; a slot whose job is over (ended, cut or failed, as ``EpisodeBook``
decides) takes the next pending job with an explicit seeded reset, so no reset step is ever
stepped or counted as a frame, and a vector env's ``NEXT_STEP`` autoreset never fires (Uber's
deep-neuroevolution backfilled finished slots this way). A slot with no pending job left
goes idle and is never stepped again.

The task supplies only how to reset and step its slots; the loop works on Python lists and
rebuilds the active set only when a job ends, since a CartPole step costs ~8 us.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from evoboard.envs.base import Act, valid_actions
from evoboard.envs.episodes import EpisodeBook

Reset = Callable[[list[int], list[int]], None]
"""(slots, episode seeds) -> None: reset each slot with its seed, its observation written in place."""
Step = Callable[[list[int], np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(active slots (A,), their jobs (A,), actions (A, ...), valid (A,)) -> rewards (A,), ended (A,).

Observations are written in place; a slot whose action is not valid is not stepped (reward 0,
ended), and a slot whose env raised is marked failed in the book (reward 0, ended)."""


class Slots:
    """Which job each slot runs; a freed slot takes the next pending job, in slot order."""

    def __init__(self, book: EpisodeBook, count: int):
        self.book = book
        self.slot_job = list(range(count))  # job each slot runs; -1 once none is left for it
        self.next_job = count  # the first pending job
        self._refresh(list(self.slot_job))

    def _refresh(self, active: list[int]) -> None:
        self.active = active  # slots holding a running job, in slot order
        self.rows = np.array(active, dtype=np.int64)  # the same as an array: observation rows
        self.jobs = np.array([self.slot_job[s] for s in active], dtype=np.int64)  # (A,) their jobs
        self.member = self.book.member(self.jobs)  # (A,) their members

    def release(self, over: np.ndarray) -> tuple[list[int], list[int]]:
        """Free the active slots whose job is ``over``; refill them with pending jobs.

        Returns the refilled slots and their jobs, for the task to reset.
        """
        slots, jobs = [], []
        for k in np.flatnonzero(over).tolist():
            slot = self.active[k]
            if self.next_job < self.book.jobs:
                self.slot_job[slot] = self.next_job
                slots.append(slot)
                jobs.append(self.next_job)
                self.next_job += 1
            else:
                self.slot_job[slot] = -1
        self._refresh([slot for slot in self.active if self.slot_job[slot] >= 0])
        return slots, jobs


def run_jobs(
    book: EpisodeBook, count: int, act: Act, action_space: gym.Space, obs: np.ndarray, reset: Reset, step: Step
) -> dict[str, float]:
    """Run every job of ``book`` on ``count`` slots whose observations live in ``obs`` (count, ...).

    Returns the seconds spent in the policy, the env steps and the resets.
    """
    slots = Slots(book, count)
    t0 = time.perf_counter()
    reset(slots.active, [book.seed(j) for j in slots.slot_job])
    t_reset, t_policy, t_env = time.perf_counter() - t0, 0.0, 0.0
    while slots.active:
        jobs = slots.jobs
        t0 = time.perf_counter()
        actions = act(slots.member, obs[slots.rows])
        t1 = time.perf_counter()
        valid = valid_actions(action_space, actions)
        if not valid.all():  # a member with non-finite output fails alone; its env does not step
            for k in np.flatnonzero(~valid).tolist():
                book.fail(int(jobs[k]), f"invalid action {actions[k]!r} (non-finite network output?)")
        rewards, ended = step(slots.active, jobs, actions, valid)
        t2 = time.perf_counter()
        t_policy, t_env = t_policy + t1 - t0, t_env + t2 - t1
        over = book.update(jobs, rewards, ended)
        if over.any():
            refill, refill_jobs = slots.release(over)
            if refill:
                t0 = time.perf_counter()
                reset(refill, [book.seed(j) for j in refill_jobs])
                t_reset += time.perf_counter() - t0
    return {"policy": t_policy, "env": t_env, "reset": t_reset}
