"""Count models: character n-gram baselines fit by counting the training split, with add-one smoothing.

A third kind of algorithm beside search and direct training: nothing is searched or trained by
steps; the model is fit once, in closed form, and scored by the task's own ``final_score`` on its
validation windows, so its bits per character sit on the same table as every evolved network.
On ``charlm/pydoc`` the unigram gives about 4.67 bits/char, the add-one bigram about 3.35, and a
uniform guess log2(V) = 6.70: a network that does not beat the bigram has learned little.
(Laplace's add-one rule; Chen & Goodman 1996 survey n-gram smoothing.)
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import ClassVar

import numpy as np
import torch

from evoboard.agents.algorithms.base import Algorithm, AlgorithmState
from evoboard.options import Checked


@dataclasses.dataclass
class CountOptions(Checked):
    """Count models have no settings: add-one smoothing, fit on the whole training split."""


@dataclasses.dataclass
class CountFit:
    """A fitted count model: natural-log probabilities and its fit on the training split."""

    log_probs: torch.Tensor
    """(V,) for a unigram, (V, V) indexed [current, next] for a bigram; float32, nats."""
    train_fitness: float
    """Minus the mean nats per character on the training split (fitness, higher is better)."""

    def act(self, members: np.ndarray, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (A, B, T, V) for tokens (A, B, T): the same for every member (there is one model)."""
        table = self.log_probs.to(tokens.device)
        if table.dim() == 1:  # unigram: log p(c) at every position
            return table.expand(*tokens.shape, table.shape[0])
        return table[tokens]  # bigram: log p(next | current token), (A, B, T, V)


class CountModel(Algorithm):
    """A baseline fit by counting a task's training tokens (``training_tokens()``, ids in [0, V))."""

    Options = CountOptions

    def __init__(self, population: int, options: CountOptions):
        self.population, self.options = population, options  # no population is searched: any size is fine

    def init(self, seed: int) -> AlgorithmState:
        return AlgorithmState(generation=0, rng=np.random.default_rng(seed).bit_generator.state)

    def fit(self, task) -> CountFit:
        """The model of ``task``'s training split; ValueError (one line) for a task without tokens."""
        if not hasattr(task, "training_tokens"):
            raise ValueError(f"algorithm {self.name} needs a task with training tokens (charlm/*), not {task.id}")
        tokens = np.asarray(task.training_tokens(), dtype=np.int64)
        log_probs, train_nats = self.counted(tokens, int(task.action_space.n))
        return CountFit(torch.from_numpy(log_probs).float(), -train_nats)

    @abstractmethod
    def counted(self, tokens: np.ndarray, vocab: int) -> tuple[np.ndarray, float]:
        """Add-one log probabilities (float64, nats) and the mean nats per character they give the training split."""


class Unigram(CountModel):
    """Character frequencies: p(c) = (n(c) + 1) / (N + V), the same at every position."""

    name: ClassVar[str] = "unigram"

    def counted(self, tokens: np.ndarray, vocab: int) -> tuple[np.ndarray, float]:
        counts = np.bincount(tokens, minlength=vocab).astype(np.float64)
        log_p = np.log(counts + 1) - np.log(counts.sum() + vocab)
        return log_p, float(-(counts * log_p).sum() / counts.sum())


class Bigram(CountModel):
    """Next character given the current one: p(b | a) = (n(a, b) + 1) / (n(a, .) + V)."""

    name: ClassVar[str] = "bigram"

    def counted(self, tokens: np.ndarray, vocab: int) -> tuple[np.ndarray, float]:
        pairs = np.bincount(tokens[:-1] * vocab + tokens[1:], minlength=vocab * vocab).astype(np.float64)
        pairs = pairs.reshape(vocab, vocab)  # (current, next)
        log_p = np.log(pairs + 1) - np.log(pairs.sum(1, keepdims=True) + vocab)
        return log_p, float(-(pairs * log_p).sum() / pairs.sum())
