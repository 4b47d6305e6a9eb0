"""Book-keeping for a batch of (member, episode) jobs: returns, steps and early-termination rules.

Shared by every task family so each one only supplies how to reset and step its envs.
Rules (all optional, composable, recorded in the spec):
- the env's own end, and the per-episode step budget;
- ``patience``: no positive reward for K steps in a row (Garbus & Pollack's CarRacing rule);
- ``elite_margin``: the running return falls more than the margin below what the last
  crowned elite had at the same step (the runner passes the elite's own trace: its first
  re-evaluation episode; ``Evaluation.best_trace`` of that re-evaluation).
A cut episode keeps the return it had; ``frames_saved`` counts the steps it had left.
A failed episode (the env raised, or the member's action or the env's reward was not finite)
ends at once and gives its member fitness -inf, so one bad member cannot stop a generation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evoboard.envs.base import EpisodeOptions, Evaluation


class EpisodeBook:
    """Per-job counters for ``members`` x ``len(seeds)`` jobs; job j is member j % members."""

    def __init__(self, members: int, seeds: Sequence[int], options: EpisodeOptions, max_steps: int, elite_trace=None):
        self.members, self.episodes = members, len(seeds)
        self.seeds = list(seeds)
        self.options, self.max_steps = options, max_steps
        jobs = members * self.episodes
        self.returns = np.zeros(jobs)
        self.steps = np.zeros(jobs, dtype=np.int64)
        self.cut = np.zeros(jobs, dtype=bool)
        self.last_positive = np.zeros(jobs, dtype=np.int64)  # step of the last reward > 0
        self.failed = np.zeros(jobs, dtype=bool)
        self.failure: str | None = None
        self.member_forwards = 0
        self.elite_trace = None
        if options.elite_margin is not None and elite_trace is not None and len(elite_trace):
            # The elite's running return at each step; after its episode ended, its final return.
            padded = np.full(max_steps, elite_trace[-1], dtype=np.float64)
            padded[: min(len(elite_trace), max_steps)] = elite_trace[:max_steps]
            self.elite_trace = padded
        self.record = options.elite_margin is not None
        self.trace = np.zeros((max_steps, jobs), dtype=np.float32) if self.record else None

    @property
    def jobs(self) -> int:
        return len(self.returns)

    def member(self, jobs: np.ndarray) -> np.ndarray:
        return jobs % self.members

    def seed(self, job: int) -> int:
        return self.seeds[job // self.members]

    def fail(self, job: int, reason: str) -> None:
        """Mark ``job`` failed (its member's fitness becomes -inf); keep the first reason."""
        self.failed[job] = True
        if self.failure is None:
            self.failure = f"member {self.member(np.array(job))}, episode {job // self.members}: {reason}"

    def update(self, jobs: np.ndarray, rewards: np.ndarray, ended: np.ndarray) -> np.ndarray:
        """Count one step of ``jobs``; returns which of them are over (ended, cut or failed).

        Called once per env step for the running jobs (a CartPole step is ~8 us), so a rule
        that is off costs nothing and the non-finite check is one reduction.
        """
        self.member_forwards += len(jobs)
        failed = self.failed[jobs]
        stepped = ~failed  # a step that raised (or was never taken) produced no frame
        if not np.isfinite(rewards).all():
            bad_reward = ~np.isfinite(rewards)
            for job in jobs[bad_reward & ~failed]:
                self.fail(int(job), "non-finite reward")
            rewards = np.where(bad_reward, 0.0, rewards)
            failed = self.failed[jobs]
        self.returns[jobs] += rewards
        self.steps[jobs] += stepped
        steps = np.maximum(self.steps[jobs], 1)  # (a job that failed on its first step has 0)
        if self.record:
            self.trace[steps - 1, jobs] = self.returns[jobs]
        over = ended | (steps >= self.max_steps) | failed
        if self.options.patience is None and self.elite_trace is None:
            return over
        cut = np.zeros(len(jobs), dtype=bool)
        if self.options.patience is not None:
            positive = rewards > 0
            self.last_positive[jobs[positive]] = steps[positive]
            cut |= steps - self.last_positive[jobs] >= self.options.patience
        if self.elite_trace is not None:
            cut |= self.returns[jobs] < self.elite_trace[steps - 1] - self.options.elite_margin
        cut &= ~over  # a natural end is not a cut
        self.cut[jobs[cut]] = True
        return over | cut

    def result(self, frames_per_step: int) -> Evaluation:
        shape = (self.episodes, self.members)
        returns = self.returns.reshape(shape).T  # (P, E)
        failed = self.failed.reshape(shape).T.any(axis=1)  # (P,)
        fitness = np.where(failed, -np.inf, returns.mean(axis=1))
        saved = int(((self.max_steps - self.steps) * self.cut).sum())
        trace = None
        if self.record:
            best = int(np.argmax(fitness))  # job index of the best member's first episode
            trace = self.trace[: self.steps[best], best].astype(np.float64)
        return Evaluation(
            fitness=fitness,
            returns=returns,
            steps=self.steps.reshape(shape).T,
            cut=self.cut.reshape(shape).T,
            frames=int(self.steps.sum()) * frames_per_step,
            frames_saved=saved * frames_per_step,
            member_forwards=self.member_forwards,
            best_trace=trace,
            failed=failed,
            failure=self.failure,
        )
