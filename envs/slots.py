"""One backfill scheduler for every stepped task: env slots, a queue of pending jobs, one loop.

A task has ``members x episodes`` (member, episode) jobs and at most ``max_envs`` env slots.
Each slot runs one job; a slot whose job is over (ended, cut or failed, as ``EpisodeBook``
decides) takes the next pending job with an explicit seeded reset, so no reset step is ever
stepped or counted as a frame, and a vector env's ``NEXT_STEP`` autoreset never fires (Uber's
deep-neuroevolution backfilled finished slots this way). A slot with no pending job left
goes idle and is never stepped again.

A task whose envs step off the run's thread (C++ threads, worker processes) can run its slots in
``lanes``: slot ``s`` is in lane ``s % lanes``, and while one lane's envs step, the policy picks the
next lane's actions, so the two overlap. Every rule of the book is per job and a member's actions do
not depend on which others share its forward, so lanes change when things happen, not what: the
same returns, steps and cuts as one lane (``tests/test_slots.py``, the golden runs).

The task supplies only how to reset and step its slots; the loop works on Python lists and
rebuilds the active set only when a job ends, since a CartPole step costs ~8 us.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from evoboard.envs.base import Act, valid_actions
from evoboard.envs.episodes import EpisodeBook

Reset = Callable[[list[int], list[int]], None]
"""(slots, episode seeds) -> None: reset each slot with its seed, its observation written in place."""
Outcome = tuple[np.ndarray, np.ndarray]
"""rewards (A,), ended (A,) of one step of A slots."""
Step = Callable[[list[int], np.ndarray, np.ndarray, np.ndarray], "Outcome | Callable[[], Outcome]"]
"""(active slots (A,), their jobs (A,), actions (A, ...), valid (A,)) -> rewards (A,), ended (A,), or a
function that waits for them (a step still in flight: the loop picks another lane's actions meanwhile).

Observations are written in place by the time the outcome is known; a slot whose action is not valid is
not stepped (reward 0, ended), and a slot whose env raised is marked failed in the book (reward 0, ended)."""


class SlotDriver(ABC):
    """Env slots a task resets and steps in place (the Atari drivers): ``start`` sends the active slots their
    actions and returns the function that waits for them, so ``run_jobs`` can overlap up to ``lanes`` lanes."""

    lanes = 1
    """Lanes whose steps may be in flight at once: 1 where the slots step on the calling thread."""

    @abstractmethod
    def reset(self, slots: list[int], seeds: list[int], obs: np.ndarray) -> None:
        """Start each slot's episode from its seed; its first observation into ``obs`` (making slots it lacks)."""

    @abstractmethod
    def start(self, active: list[int], actions: np.ndarray, obs: np.ndarray, rewards, ended) -> Callable[[], None]:
        """Send the ``active`` slots their actions; the function returned waits, writing ``obs``, ``rewards`` and
        ``ended`` (A,)."""

    @abstractmethod
    def close(self) -> None:
        """Stop every emulator."""

    def step(self, active: list[int], actions: np.ndarray, obs: np.ndarray, rewards, ended) -> None:
        """Step exactly the ``active`` slots, observations into ``obs``, and wait for them."""
        self.start(active, actions, obs, rewards, ended)()


class Pending:
    """The jobs not started yet, shared by every lane: the next one is handed out first."""

    def __init__(self, book: EpisodeBook, first: int):
        self.jobs, self.next = book.jobs, first

    def take(self) -> int:
        """The next pending job, or -1 when none is left."""
        if self.next >= self.jobs:
            return -1
        self.next += 1
        return self.next - 1


class Slots:
    """Which job each of ``slots`` runs (slot s starts with job s); a freed slot takes the next pending job."""

    def __init__(self, book: EpisodeBook, slots: int | list[int], pending: Pending | None = None):
        self.book = book
        slots = list(range(slots)) if isinstance(slots, int) else slots
        self.pending = pending or Pending(book, len(slots))
        self.slot_job = {slot: slot for slot in slots}  # job each slot runs; -1 once none is left for it
        self._refresh(list(slots))

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
            job = self.pending.take()
            self.slot_job[slot] = job
            if job >= 0:
                slots.append(slot)
                jobs.append(job)
        self._refresh([slot for slot in self.active if self.slot_job[slot] >= 0])
        return slots, jobs


def run_jobs(
    book: EpisodeBook,
    count: int,
    act: Act,
    action_space: gym.Space,
    obs: np.ndarray,
    reset: Reset,
    step: Step,
    lanes: int = 1,
) -> dict[str, float]:
    """Run every job of ``book`` on ``count`` slots whose observations live in ``obs`` (count, ...), in ``lanes``.

    Returns the seconds spent in the policy, waiting for env steps (with lanes, the part the policy
    did not hide) and in resets.
    """
    lanes = max(1, min(lanes, count))
    pending = Pending(book, count)
    groups = [Slots(book, list(range(lane, count, lanes)), pending) for lane in range(lanes)]
    t0 = time.perf_counter()
    reset(list(range(count)), [book.seed(j) for j in range(count)])
    t_reset, t_policy, t_env = time.perf_counter() - t0, 0.0, 0.0
    in_flight: deque = deque()

    def launch(slots: Slots) -> None:
        nonlocal t_policy, t_env
        jobs = slots.jobs
        t0 = time.perf_counter()
        actions = act(slots.member, obs[slots.rows])
        t1 = time.perf_counter()
        valid = valid_actions(action_space, actions)
        if not valid.all():  # a member with non-finite output fails alone; its env does not step
            for k in np.flatnonzero(~valid).tolist():
                book.fail(int(jobs[k]), f"invalid action {actions[k]!r} (non-finite network output?)")
        outcome = step(slots.active, jobs, actions, valid)
        t_policy, t_env = t_policy + t1 - t0, t_env + time.perf_counter() - t1
        in_flight.append((slots, jobs, outcome))

    for slots in groups:
        if slots.active:
            launch(slots)
    while in_flight:
        slots, jobs, outcome = in_flight.popleft()
        if callable(outcome):
            t0 = time.perf_counter()
            outcome = outcome()
            t_env += time.perf_counter() - t0
        rewards, ended = outcome
        over = book.update(jobs, rewards, ended)
        if over.any():
            refill, refill_jobs = slots.release(over)
            if refill:
                t0 = time.perf_counter()
                reset(refill, [book.seed(j) for j in refill_jobs])
                t_reset += time.perf_counter() - t0
        if slots.active:
            launch(slots)
    return {"policy": t_policy, "env": t_env, "reset": t_reset}
