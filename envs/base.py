"""The task contract: evaluate a whole population, with early termination, and say what it cost.

A task sees the policy only as ``act(members, obs) -> actions``, a callable on batched
observations of the members still running, so ``envs`` never imports ``agents``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from evoboard.options import Checked, bounded

Act = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(member index per row (A,), observations (A, ...)) -> actions (A, ...)."""


def valid_actions(space: gym.Space, actions: np.ndarray) -> np.ndarray:
    """Per row: a finite action inside the space. A policy flags a member whose output is not
    finite with an impossible action (-1 for Discrete), so it fails alone instead of reaching the env."""
    if isinstance(space, gym.spaces.Discrete):
        return (actions >= 0) & (actions < space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):  # one row of choices per member
        return ((actions >= 0) & (actions < space.nvec)).all(axis=1)
    return np.isfinite(actions.reshape(len(actions), -1)).all(axis=1)


@dataclass
class EpisodeOptions(Checked):
    """Episode budget and early-termination rules; every task family has these."""

    episodes: int = bounded(1, ge=1)
    """Episodes per member per generation (fitness is their mean return)."""
    max_steps: int | None = bounded(None, ge=1)
    """Env steps per episode at most; default: the task's own time limit."""
    patience: int | None = bounded(None, ge=1)
    """Cut an episode after this many steps in a row without positive reward (off when unset)."""
    elite_margin: float | None = bounded(None, ge=0, finite=True)
    """Cut an episode whose running return falls this far below the last elite's at the same step (off when unset)."""
    # The elite's own trace: its running return on its first re-evaluation episode of the previous generation (the
    # generation's best member's first episode where an algorithm re-evaluates nothing, as ES); see envs/episodes.py.
    max_envs: int = bounded(256, ge=1)
    """Environments stepped side by side; further (member, episode) jobs wait and take freed slots."""


@dataclass
class Evaluation:
    """Per-member results of one population evaluation and what it cost."""

    fitness: np.ndarray  # (P,) mean return over episodes
    returns: np.ndarray  # (P, E)
    steps: np.ndarray  # (P, E) env steps taken
    cut: np.ndarray  # (P, E) True where an early-termination rule stopped the episode
    frames: int  # frames used (env steps x frames per step)
    frames_saved: int  # frames the cut episodes had left under the step budget
    member_forwards: int  # one per member per step it was still running
    best_trace: np.ndarray | None = None  # running return of the best member's (the first best) first episode
    failed: np.ndarray | None = None  # (P,) True where an episode raised or the member's output was not finite
    failure: str | None = None  # the first failure's message, for the log
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent in phases, e.g. "decode"

    def __post_init__(self) -> None:
        if self.failed is None:
            self.failed = np.zeros(len(self.fitness), dtype=bool)

    @classmethod
    def scored(cls, returns: np.ndarray, items: int, forwards: int) -> Evaluation:
        """A minibatch task's evaluation: returns (P, E), each episode scoring ``items`` frames
        (characters, images) in ``forwards`` member-forwards; fitness is the mean return."""
        members, episodes = returns.shape
        return cls(
            fitness=returns.mean(1),
            returns=returns,
            steps=np.full(returns.shape, items),
            cut=np.zeros(returns.shape, dtype=bool),
            frames=members * episodes * items,
            frames_saved=0,
            member_forwards=members * episodes * forwards,
        )

    @property
    def members(self) -> int:
        return len(self.fitness)


class Task(ABC):
    """A benchmark task: its spaces, its evaluation, and how its final score is read."""

    Options: ClassVar[type[EpisodeOptions]] = EpisodeOptions
    score_kind: ClassVar[str] = "return"
    """What ``score`` returns: return, human_normalized, bits_per_char or accuracy."""
    frames_per_step: ClassVar[int] = 1
    default_policy: ClassVar[str] = "mlp"
    """The policy a run uses unless its spec names another."""
    normalizer: Any = None
    """The observation normalizer whose statistics the run checkpoints and the elite keeps (``obs_norm``);
    None for a task without one."""

    def __init__(self, task_id: str, options: EpisodeOptions):
        self.id, self.options = task_id, options

    observation_space: gym.Space
    action_space: gym.Space

    @abstractmethod
    def evaluate(
        self, act: Act, members: int, seeds: Sequence[int], elite_trace: np.ndarray | None = None
    ) -> Evaluation:
        """Run ``members`` x ``len(seeds)`` episodes (episode e of every member uses ``seeds[e]``)."""

    def score(self, returns: np.ndarray) -> float:
        """The leaderboard's final score from held-out episode returns."""
        return float(np.mean(returns))

    def final_score(self, act: Act, seeds: Sequence[int]) -> tuple[float, Evaluation]:
        """Score one member (the final elite) on held-out episodes ``seeds``.

        Tasks whose final score is not a mean return over episodes (validation bits per
        character, test accuracy) override this.
        """
        evaluation = self.evaluate(act, 1, seeds)
        return self.score(evaluation.returns[0]), evaluation

    def close(self) -> None:
        """Release simulators and threads."""
