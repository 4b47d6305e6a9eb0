"""Handwritten digits (scikit-learn's bundled 8x8 set) as a population task, scored by test accuracy.

The small supervised task of the suite's RSO (Tripathi & Singh 2020) and lottery-ticket
(Lange & Sprekeler 2023) comparisons: 1,797 images of 64 pixels, 10 classes, shipped inside
scikit-learn (no download). The train/test split is fixed (a permutation seeded by a
constant, not by the run's seed), so every run on every machine tests on the same images.
Fitness is minus the mean cross-entropy of each member on a minibatch of training images,
the same images for every member in a generation, drawn from the runner's episode seeds
(one minibatch per seed), exactly as ``charlm`` does with windows. The final score is the
test accuracy of the final elite (``score_kind=accuracy``). ``select_fraction`` holds out the
tail of the (fixed) training permutation as a selection split, never trained on, for studies
that choose among models before the one test (``selection_fitness``); by default there is none.

Observations are Box(64) pixels in [0, 1]; the policy's answer for images (A, B, 64) is
class logits (A, B, 10) (``classifier_mlp``, ``small_cnn``). One member-forward is one
member on one image, and so is a frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from evoboard.envs.base import Act, Evaluation, Task
from evoboard.options import Checked, bounded

SPLIT_SEED = 20_240_806  # fixed: the split never depends on a run's seed
CLASSES = 10
PIXELS = 64


@dataclass
class DigitsOptions(Checked):
    """Minibatch and split settings of the digits task."""

    batch_size: int = bounded(128, ge=1)
    """Training images per minibatch; every member is scored on the same ones."""
    episodes: int = bounded(1, ge=1)
    """Minibatches per member per evaluation, one per episode seed; fitness is their mean."""
    test_fraction: float = bounded(0.2, gt=0, lt=1)
    """Fraction of the 1,797 images held out (fixed permutation) for the final test accuracy."""
    select_fraction: float = bounded(0.0, ge=0, lt=1)
    """Fraction of the training images held out (fixed) to choose among models on (ensembles); 0: none."""


def digits_split(test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images (N, 64) float32 in [0, 1] and labels (N,) int64, from a fixed permutation."""
    data = load_digits()
    images = (data.data / 16.0).astype(np.float32)  # pixel counts 0..16 -> [0, 1]
    labels = data.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


class DigitsTask(Task):
    """Classify 8x8 digits; fitness = minus minibatch cross-entropy, final score = test accuracy."""

    Options = DigitsOptions
    score_kind = "accuracy"
    default_policy = "classifier_mlp"

    def __init__(self, task_id: str, options: DigitsOptions):
        super().__init__(task_id, options)
        x_train, y_train, x_test, y_test = digits_split(options.test_fraction)
        if options.batch_size > len(y_train):
            raise ValueError(f"batch_size must be <= {len(y_train)} training images, got {options.batch_size}")
        cut = len(y_train) - round(options.select_fraction * len(y_train))  # the tail of the permuted training set
        self.x_select, self.y_select = torch.from_numpy(x_train[cut:]), torch.from_numpy(y_train[cut:])
        x_train, y_train = x_train[:cut], y_train[:cut]
        self.x_train, self.y_train = torch.from_numpy(x_train), torch.from_numpy(y_train)
        self.x_test, self.y_test = torch.from_numpy(x_test), torch.from_numpy(y_test)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (PIXELS,), np.float32)
        self.action_space = gym.spaces.Discrete(CLASSES)
        self._device = torch.device("cpu")  # where the actor answered last: images are sent there

    def minibatch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images (B, 64) and labels (B,) from ``seed`` alone (drawn without replacement)."""
        rows = np.random.default_rng(seed).choice(len(self.y_train), self.options.batch_size, replace=False)
        index = torch.from_numpy(rows)
        return self.x_train[index], self.y_train[index]

    def _logits(self, act: Act, members: int, images: torch.Tensor) -> torch.Tensor:
        """Every member's class logits for the same images: (members, B, 10)."""
        x = images.to(self._device).expand(members, *images.shape)  # (A, B, 64): one copy for all members
        logits = act(np.arange(members), x)
        self._device = logits.device
        return logits

    def losses(self, act: Act, members: int, seed: int) -> np.ndarray:
        """Mean cross-entropy (nats) of each member on the minibatch of ``seed``: (members,)."""
        return self._cross_entropies(act, members, *self.minibatch(seed))

    def _cross_entropies(self, act: Act, members: int, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """Mean cross-entropy (nats) of each member on the same labelled images: (members,)."""
        logits = self._logits(act, members, images)  # (A, B, 10)
        flat = labels.to(logits.device).expand(members, -1).reshape(-1)
        ce = F.cross_entropy(logits.reshape(-1, CLASSES).float(), flat, reduction="none")
        return ce.reshape(members, -1).mean(1).double().cpu().numpy()

    def evaluate(
        self, act: Act, members: int, seeds: Sequence[int], elite_trace: np.ndarray | None = None
    ) -> Evaluation:
        """Fitness = minus mean cross-entropy over one minibatch per seed, all members on the same images."""
        returns = np.stack([-self.losses(act, members, s) for s in seeds], axis=1)  # (P, E)
        return Evaluation.scored(returns, self.options.batch_size, self.options.batch_size)

    def accuracy(self, act: Act, members: int = 1) -> np.ndarray:
        """Test accuracy of each of ``members``: (members,)."""
        logits = self._logits(act, members, self.x_test)  # (A, N_test, 10)
        correct = logits.argmax(-1).cpu() == self.y_test
        return correct.double().mean(1).numpy()

    def selection_fitness(self, act: Act, members: int = 1) -> np.ndarray:
        """Minus mean cross-entropy of each member on the selection images (held out of training): (members,).

        What a study chooses models on (ensembles' children and size), so the test images are
        scored once, for the chosen ones. ValueError when the task has no selection split.
        """
        if not len(self.y_select):
            raise ValueError("digits has no selection split: --set select_fraction=0.1 holds out 10% of training")
        return -self._cross_entropies(act, members, self.x_select, self.y_select)

    def score(self, returns: np.ndarray) -> float:
        """The final score is the accuracy itself (returns hold it)."""
        return float(np.mean(returns))

    def final_score(self, act: Act, seeds: Sequence[int]) -> tuple[float, Evaluation]:
        """Test accuracy of member 0 on the fixed held-out images; ``seeds`` are not used."""
        returns = self.accuracy(act)[:, None]  # (1, 1)
        return self.score(returns), Evaluation.scored(returns, len(self.y_test), len(self.y_test))

    def loss(self, forward: Callable[[torch.Tensor], torch.Tensor], seed: int) -> tuple[torch.Tensor, Evaluation]:
        """Differentiable mean cross-entropy of one model on the minibatch of ``seed``, and its cost.

        ``forward`` maps images (1, B, 64) to logits (1, B, 10) with autograd on, so the
        gradient reference (``--algorithm adam``) trains on the minibatches evolution sees.
        """
        images, labels = self.minibatch(seed)
        logits = forward(images.to(self._device).unsqueeze(0))  # (1, B, 10)
        self._device = logits.device
        loss = F.cross_entropy(logits[0].float(), labels.to(logits.device))
        batch = self.options.batch_size
        return loss, Evaluation.scored(np.array([[-float(loss.detach())]]), batch, batch)
