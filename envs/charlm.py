"""Character-level language modeling as a population task, scored in bits per character.

Garbus & Pollack found factorized neuroevolution does notably well on language modeling; this
task makes that comparison standard. Fitness is minus the mean cross-entropy (nats) of each
member's next-character predictions on minibatches of windows from the training split: every
member sees the same windows in a generation (a fair comparison) and new windows each
generation, drawn from the runner's episode seeds (one minibatch per seed). The final score is
the validation bits per character of the final elite on fixed, evenly spaced windows.
``select_fraction`` holds out the end of the training text as a selection split (never trained
on) for studies that choose among models before that one score; by default there is none.

Units: one *member-forward* is one member's forward over one window of ``context`` characters
(all positions at once, as in teacher-forced training); a *frame* is one character scored,
so frames = member_forwards x context.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from evoboard.envs.base import Act, Evaluation, Task
from evoboard.envs.corpora import CORPORA, load_text, split
from evoboard.options import Checked, bounded

LN2 = math.log(2.0)


@dataclass
class CharLMOptions(Checked):
    """Corpus, window and budget settings of the character-level LM tasks."""

    corpus: str = "pydoc"
    """Text source: pydoc (built in), shakespeare (downloaded once) or file (needs corpus_path)."""
    corpus_path: str | None = None
    """A UTF-8 text file to use instead of the download (shakespeare) or as the corpus (file)."""
    corpus_url: str | None = None
    """Where shakespeare downloads from (default: the char-rnn copy on GitHub); file:// URLs work."""
    corpus_cache: str | None = None
    """Folder for downloaded corpora (default: $XDG_CACHE_HOME/evoboard or ~/.cache/evoboard)."""
    context: int = bounded(64, ge=1)
    """Characters per window: the model's context length and the positions scored per window."""
    batch_windows: int = bounded(32, ge=1)
    """Training windows per minibatch; every member is scored on the same ones."""
    episodes: int = bounded(1, ge=1)
    """Minibatches per member per evaluation, one per episode seed; fitness is their mean."""
    val_fraction: float = bounded(0.1, gt=0, lt=1)
    """Fraction of the corpus (its end) held out for validation."""
    val_windows: int = bounded(256, ge=1)
    """Validation windows, evenly spaced over the held-out part, for the final bits per character."""
    select_fraction: float = bounded(0.0, ge=0, lt=1)
    """Fraction of the training text (its end) held out to choose among models on (ensembles); 0: none."""
    members_per_forward: int | None = bounded(None, ge=1)
    """Members run in one batched forward (bounds peak memory); default: all at once."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.corpus not in CORPORA:
            raise ValueError(f"unknown corpus {self.corpus!r}; valid: {', '.join(CORPORA)}")
        if self.corpus == "pydoc" and self.corpus_path is not None:
            raise ValueError("corpus_path does not apply to charlm/pydoc; use charlm/file --set corpus_path=PATH")


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy in nats per member: logits (P, B, T, V), targets (B, T) -> (P,)."""
    p, b, t, v = logits.shape
    flat = targets.to(logits.device).expand(p, b, t).reshape(-1)  # (P*B*T,)
    losses = F.cross_entropy(logits.reshape(-1, v).float(), flat, reduction="none")
    return losses.reshape(p, b * t).mean(1)


class CharLMTask(Task):
    """Next-character prediction on a text corpus; policies see windows and answer logits.

    Observations are windows of ``context`` token ids (``MultiDiscrete``); the policy's answer
    for tokens (A, B, T) is logits (A, B, T, V) over the next character at every position.
    """

    Options = CharLMOptions
    score_kind = "bits_per_char"
    default_policy = "char_transformer"

    def __init__(self, task_id: str, options: CharLMOptions):
        super().__init__(task_id, options)
        text = load_text(options.corpus, options.corpus_path, options.corpus_url, options.corpus_cache)
        self.data = split(text, options.val_fraction, options.context + 1)
        self.vocab = self.data.vocab
        self._train = torch.from_numpy(self.data.train)
        self._val = torch.from_numpy(self.data.val)
        cut = len(self._train) - round(options.select_fraction * len(self._train))
        if cut < len(self._train) and min(cut, len(self._train) - cut) <= options.context:
            raise ValueError(f"select_fraction {options.select_fraction} leaves a split shorter than one window")
        self._train, self._select = self._train[:cut], self._train[cut:]  # the selection text is never trained on
        v, t = len(self.vocab), options.context
        self.observation_space = gym.spaces.MultiDiscrete(np.full(t, v))
        self.action_space = gym.spaces.Discrete(v)
        self._device = torch.device("cpu")  # where the actor answered last: windows are built there

    # -- windows --------------------------------------------------------------------------
    def windows(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A training minibatch from ``seed`` alone: inputs and next-character targets, each (B, T)."""
        t = self.options.context
        starts = np.random.default_rng(seed).integers(0, len(self._train) - t, size=self.options.batch_windows)
        return self._cut(self._train, starts)

    def validation_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed validation windows, evenly spaced over the held-out part: each (val_windows, T)."""
        return self._spaced(self._val)

    def _spaced(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``val_windows`` windows evenly spaced over ``tokens``: inputs and targets, each (val_windows, T)."""
        t = self.options.context
        starts = np.linspace(0, len(tokens) - t - 1, self.options.val_windows).round().astype(np.int64)
        return self._cut(tokens, starts)

    def _cut(self, tokens: torch.Tensor, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(starts)[:, None] + torch.arange(self.options.context + 1)  # (B, T+1)
        chunk = tokens[index]
        return chunk[:, :-1], chunk[:, 1:]

    def training_tokens(self) -> np.ndarray:
        """The training split as token ids in [0, V), for baselines fit by counting (``--algorithm unigram``)."""
        return self.data.train.copy()

    # -- scoring --------------------------------------------------------------------------
    def _losses(self, act: Act, members: int, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """Mean cross-entropy (nats) of each member on the same windows: (members,)."""
        step = self.options.members_per_forward or members
        inputs = inputs.to(self._device)
        out = []
        for lo in range(0, members, step):
            hi = min(lo + step, members)
            tokens = inputs.expand(hi - lo, *inputs.shape)  # (A, B, T): one copy of the windows for all
            logits = act(np.arange(lo, hi), tokens)  # (A, B, T, V)
            self._device = logits.device
            out.append(cross_entropy(logits, targets).double().cpu())
        return torch.cat(out).numpy()

    def evaluate(
        self, act: Act, members: int, seeds: Sequence[int], elite_trace: np.ndarray | None = None
    ) -> Evaluation:
        """Fitness = minus mean cross-entropy over one minibatch per seed, all members on the same windows."""
        b, t = self.options.batch_windows, self.options.context
        returns = np.stack([-self._losses(act, members, *self.windows(s)) for s in seeds], axis=1)  # (P, E)
        return Evaluation.scored(returns, items=b * t, forwards=b)

    def score(self, returns: np.ndarray) -> float:
        """Bits per character from returns in minus nats per character."""
        return float(-np.mean(returns) / LN2)

    def final_score(self, act: Act, seeds: Sequence[int]) -> tuple[float, Evaluation]:
        """Validation bits per character of member 0 over the fixed validation windows.

        ``seeds`` are not used: the validation windows are fixed, so every run is scored on
        the same characters. They run in minibatches of ``batch_windows`` windows.
        """
        inputs, targets = self.validation_windows()
        n, t = inputs.shape
        returns = -self._window_nats(act, 1, inputs, targets)[:, None]  # (1, 1)
        return self.score(returns), Evaluation.scored(returns, items=n * t, forwards=n)

    def selection_fitness(self, act: Act, members: int = 1) -> np.ndarray:
        """Minus mean cross-entropy (nats) of each member on windows of the selection text: (members,).

        The selection text is the end of the training split, held out of training by
        ``select_fraction``: what a study chooses models on before the one validation score.
        """
        if not len(self._select):
            raise ValueError("charlm has no selection split: --set select_fraction=0.1 holds out 10% of training")
        return -self._window_nats(act, members, *self._spaced(self._select))

    def _window_nats(self, act: Act, members: int, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """Mean nats per character of each member over many windows, ``batch_windows`` at a time: (members,)."""
        n, b = len(inputs), self.options.batch_windows
        return sum(self._losses(act, members, inputs[i : i + b], targets[i : i + b]) * len(inputs[i : i + b])
                   for i in range(0, n, b)) / n  # fmt: skip

    # -- gradient training ----------------------------------------------------------------
    def loss(self, forward: Callable[[torch.Tensor], torch.Tensor], seed: int) -> tuple[torch.Tensor, Evaluation]:
        """Differentiable mean cross-entropy (nats) of one model on the minibatch of ``seed``, and its cost.

        ``forward`` maps tokens (1, B, T) to logits (1, B, T, V) with autograd on; the gradient
        reference (``--algorithm adam``) trains on windows drawn exactly as evolution's are.
        """
        inputs, targets = self.windows(seed)
        logits = forward(inputs.to(self._device).unsqueeze(0))  # (1, B, T, V)
        self._device = logits.device
        loss = cross_entropy(logits, targets)[0]
        b, t = inputs.shape
        return loss, Evaluation.scored(np.array([[-float(loss.detach())]]), items=b * t, forwards=b)
