"""Observation normalization for Box observations: running mean and std, frozen within a generation.

Salimans et al. 2017 (openai/evolution-strategies-starter, es_distributed/es.py ``RunningStat``
and policies.py): the policy sees clip((o - mean) / std, -5, 5), where mean = sum / count and
std = sqrt(max(sumsq / count - mean^2, 1e-2)) over the observations seen so far, the sums
starting at (0, eps, eps) with eps = 1e-2, so the first generation sees clip(o, -5, 5). The
starter's workers recorded the observations of a random 1% of rollouts; this one records every
observation that reaches the actor during a generation (deterministic, no RNG to checkpoint) and
folds them in once the generation is over (``update``), so every member of a generation sees
the same normalization. The statistics are float64 and saved as tensors (``state``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

EPS = 1e-2
CLIP = 5.0
Act = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ObsNormalizer:
    """Running sums of observations (shape ``shape``); ``wrap`` normalizes what an actor sees."""

    def __init__(self, shape: tuple[int, ...]):
        self.sum = np.zeros(shape)
        self.sumsq = np.full(shape, EPS)
        self.count = EPS
        self._pending: list[np.ndarray] = []
        self._freeze()

    def _freeze(self) -> None:
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.sumsq / self.count - mean**2, EPS))
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Normalized ``obs`` (A, *shape) with the frozen statistics."""
        return np.clip((obs - self.mean) / self.std, -CLIP, CLIP)

    def wrap(self, act: Act) -> Act:
        """``act`` on normalized observations; the raw ones are kept for the next ``update``."""

        def normalized(members: np.ndarray, obs: np.ndarray) -> np.ndarray:
            self._pending.append(np.array(obs, dtype=np.float64))
            return act(members, self(obs))

        return normalized

    def update(self) -> None:
        """Fold the observations seen since the last update into the statistics (after a generation)."""
        if self._pending:
            seen = np.concatenate(self._pending)  # (N, *shape)
            self.sum = self.sum + seen.sum(0)
            self.sumsq = self.sumsq + np.square(seen).sum(0)
            self.count += len(seen)
        self.discard()
        self._freeze()

    def discard(self) -> None:
        """Forget the observations seen since the last update (held-out scoring must not move the statistics)."""
        self._pending.clear()

    def state(self) -> dict[str, torch.Tensor]:
        """The statistics as float64 tensors (the unfolded observations are not state)."""
        return {"sum": torch.from_numpy(self.sum.copy()), "sumsq": torch.from_numpy(self.sumsq.copy()),
                "count": torch.tensor(self.count, dtype=torch.float64)}  # fmt: skip

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore ``state()`` exactly; ValueError for statistics of another shape."""
        if tuple(state["sum"].shape) != self.sum.shape:
            raise ValueError(f"obs_norm statistics have shape {tuple(state['sum'].shape)}, task {self.sum.shape}")
        self.sum = state["sum"].double().cpu().numpy().copy()
        self.sumsq = state["sumsq"].double().cpu().numpy().copy()
        self.count = float(state["count"])
        self.discard()
        self._freeze()
