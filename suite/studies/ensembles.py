"""Child ensembles (S0): children of a generation chosen on a selection split, averaged into one model, tested once.

Whitaker & Whitley 2023, "Sparse Mutation Decompositions": children of one trained parent,
each a small (sparse) mutation of it, make a cheap ensemble whose averaged predictions can
beat the parent and every single child. Choosing which children and how many is model
selection, so it must not look at the test data: ``select`` ranks every child by its fitness
on a selection split and picks the ensemble size k <= K (``--set ensemble=K``) whose top-k
ensemble scores best there; only then are the parent, the best child by selection, and the
chosen ensemble scored, once, on the task's held-out score (``final_score``: test accuracy,
validation bits per character, or held-out episode returns). What selection used:
- digits and charlm/* with ``--set select_fraction=F``: a split carved from the training
  data, never trained on (``selection_fitness``); selected_on = ``selection_split``;
- the same tasks without one: fresh training minibatches (data the parent trained on; set
  select_fraction for a clean choice); selected_on = ``training_minibatches``;
- control tasks: fresh episodes with seeds of their own, distinct from the test episodes;
  selected_on = ``fresh_episodes``.
Where evoboard differs from Whitaker & Whitley: they report ensembles of all children of a
mutation scale; here the ensemble is a prefix of the selection ranking, its size chosen too.
``ChildEnsembles`` is an after-generation hook (``suite/hooks.py``), attached by ``--set ensemble=K``;
the figures join history.csv and a per-run ``ensembles.csv`` (with the selection fitness of each);
the leaderboard is unchanged.

How predictions are averaged, by task:
- tasks with logits (a differentiable ``loss``: digits, charlm/*): the mean of the members'
  softmax probabilities; the ensemble answers log(mean p) as its logits, so its
  cross-entropy is the ensemble's and its argmax the ensemble's vote;
- control tasks with Discrete actions and the ``mlp`` policy: the mean of the members'
  action probabilities (softmax of their outputs), then the greedy action;
- control tasks with Box actions: the mean of the members' (squashed) actions;
- anything else (e.g. Atari's CNN) is refused with one line.

The parent is the previous generation's crowned best (copied unchanged by the GA); in a run
started from a checkpoint, generation 0's members are all that checkpoint and are the parent.
Children are the members that are not the parent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from evoboard.agents import PopulationActor
from evoboard.agents.algorithms import SearchAlgorithm, VectorSearch
from evoboard.agents.encodings import Genome, SeedChainEncoding
from evoboard.agents.layers import PopulationParams
from evoboard.agents.policies import greedy_actions
from evoboard.suite.backends.base import Parts
from evoboard.suite.board.leaderboard import write_csv
from evoboard.suite.hooks import Generation, Hook

COLUMNS = ["ens_k", "parent_score", "best_child_score", "mean_child_score", "ensemble_score"]


def ensemble_mode(task, policy, algorithm, encoding) -> str:
    """How this run's predictions are averaged (probs, vote or mean_action); ValueError if they cannot be."""
    if not isinstance(algorithm, SearchAlgorithm):
        raise ValueError(f"ensemble needs a population of children; algorithm {algorithm.name} trains one model")
    if isinstance(algorithm, VectorSearch) or not isinstance(encoding, SeedChainEncoding):
        raise ValueError(f"ensemble needs seed-chain members (e.g. --algorithm ga), not {algorithm.name}")
    if hasattr(task, "loss"):
        return "probs"
    if isinstance(task.action_space, gym.spaces.Discrete) and policy.name == "mlp":
        return "vote"
    if isinstance(task.action_space, gym.spaces.Box):
        return "mean_action"
    raise ValueError(
        f"ensemble averages logits (digits, charlm/*), mlp action probabilities or Box actions; "
        f"policy {policy.name} on {task.action_space} has none of these"
    )


class EnsembleActor:
    """K members answering as one: (member indices (A,), obs (A, ...)) -> the averaged answer (A, ...)."""

    def __init__(self, policy, params: PopulationParams, device: torch.device, mode: str):
        self.policy, self.params, self.device, self.mode = policy, params, device, mode
        self.k = params.population

    def __call__(self, members: np.ndarray, obs: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        x = torch.as_tensor(obs, device=self.device)
        a = x.shape[0]
        each = torch.arange(self.k, device=self.device).repeat_interleave(a)  # (K*A,): member k for every row
        rows = self.params.select(each)
        x_rep = x.repeat(self.k, *([1] * (x.dim() - 1)))  # (K*A, ...): every member sees every row
        with torch.inference_mode():
            if self.mode == "vote":
                out = self.policy.forward(rows, x_rep.reshape(self.k * a, 1, -1).float())[:, 0]  # (K*A, n)
                out = self._log_mean_probs(out.reshape(self.k, a, -1))
                answer = greedy_actions(out)
            else:
                out = self.policy.act(rows, x_rep)  # (K*A, ...)
                out = out.reshape(self.k, a, *out.shape[1:])
                answer = self._log_mean_probs(out) if self.mode == "probs" else out.float().mean(0)
        return answer if isinstance(obs, torch.Tensor) else answer.cpu().numpy()

    def _log_mean_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """log of the mean softmax over members: (K, A, ..., V) -> (A, ..., V)."""
        return torch.logsumexp(torch.log_softmax(logits.float(), -1), 0) - math.log(self.k)


@dataclass(frozen=True)
class Selection:
    """Children ranked on the selection split and the ensemble size chosen there."""

    order: list[int]  # children by selection fitness, best first
    size: int  # k: the ensemble is order[:size]
    child_fitness: np.ndarray  # (children,) selection fitness of each child
    ensemble_fitness: float  # selection fitness of the chosen ensemble


def select(child_fitness: np.ndarray, ensemble_fitness: Callable[[list[int]], float], k_max: int) -> Selection:
    """Rank children by selection fitness; choose k <= k_max maximising the top-k ensemble's (first best wins)."""
    child_fitness = np.asarray(child_fitness, dtype=np.float64)
    order = [int(i) for i in np.argsort(-np.nan_to_num(child_fitness, nan=-np.inf), kind="stable")]
    order = [i for i in order if np.isfinite(child_fitness[i])]
    best_k, best = 0, -math.inf
    for k in range(1, min(k_max, len(order)) + 1):
        fit = child_fitness[order[0]] if k == 1 else ensemble_fitness(order[:k])
        if fit > best:
            best_k, best = k, fit
    return Selection(order, best_k, child_fitness, float(best))


def selection_source(task) -> str:
    """What ``selection_fitness_of`` scores on for ``task``."""
    if hasattr(task, "selection_fitness"):
        return "selection_split" if _has_split(task) else "training_minibatches"
    return "fresh_episodes"


def _has_split(task) -> bool:
    return getattr(task.options, "select_fraction", 0.0) > 0


def selection_seeds(held_out: list[int], count: int) -> list[int]:
    """Episode seeds for selection, from the held-out ones but distinct from them (a stream of their own)."""
    rng = np.random.default_rng([*held_out, 0x5E1EC7])
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=max(count, 1))]


def selection_fitness_of(task, actor, members: int, seeds: list[int]) -> np.ndarray:
    """Each member's fitness on what selection may look at (see ``selection_source``): (members,)."""
    if selection_source(task) == "selection_split":
        return np.asarray(task.selection_fitness(actor, members), dtype=np.float64)
    return np.asarray(task.evaluate(actor, members, seeds).fitness, dtype=np.float64)


class ChildEnsembles(Hook):
    """Selects children and ensemble size on selection data, scores parent, best child and ensemble on test once."""

    def __init__(self, parts: Parts, k: int):
        self.parts, self.k = parts, k
        self.mode = ensemble_mode(parts.task, parts.policy, parts.algorithm, parts.encoding)
        self.selected_on = selection_source(parts.task)
        self.rows: list[dict[str, Any]] = []

    def _params(self, genomes: list[Genome]) -> PopulationParams:
        """Decoded members without touching the encoding's cache (the next generation's parents live there)."""
        encoding = self.parts.encoding
        return encoding.to_params(encoding.vectors(genomes))  # (k, D) in one batched replay

    def _score(self, actor, seeds: list[int]) -> tuple[float, int]:
        score, evaluation = self.parts.task.final_score(actor, seeds)
        return float(score), evaluation.frames

    def choose(self, params: PopulationParams, seeds: list[int]) -> Selection:
        """Selection over the children in ``params`` (a population of them), on selection data only."""
        parts = self.parts
        task, n = parts.task, params.population
        fitness = selection_fitness_of(task, PopulationActor(parts.policy, params, parts.device), n, seeds)

        def ensemble_fitness(members: list[int]) -> float:
            actor = EnsembleActor(parts.policy, params.select(torch.tensor(members)), parts.device, self.mode)
            return float(selection_fitness_of(task, actor, 1, seeds)[0])

        return select(fitness, ensemble_fitness, self.k)

    def after_generation(self, generation: Generation) -> dict:
        g = generation
        return self(g.folder, g.number, g.genomes, g.fitness, g.parent, g.held_out)

    def __call__(
        self,
        folder: Path,
        generation: int,
        genomes: list[Genome],
        fitness: np.ndarray,
        parent: Genome | None,
        seeds: list[int],
    ) -> dict:
        """Generation ``generation``'s row, kept in ``folder``/ensembles.csv; NaN where there is no parent or child.

        ``fitness`` (training) only drops members that failed; children are chosen on selection
        data, and only the parent and the chosen members are scored on held-out ``seeds``.
        """
        parts, encoding = self.parts, self.parts.encoding
        path = Path(folder) / "ensembles.csv"
        if not self.rows and path.exists():  # a resumed run keeps the rows of its earlier generations
            earlier = pd.read_csv(path)
            self.rows = earlier[earlier["generation"] < generation].to_dict("records")
        if parent is None and encoding.root is not None:
            parent = (encoding.root,)  # generation 0 of a pretrained start: every member is the checkpoint
        parent = None if parent is None else encoding.canonical(parent)  # the elite copy is the parent, not a child
        canon = [encoding.canonical(g) for g in genomes]
        children = [g for g, c, f in zip(genomes, canon, fitness, strict=True) if c != parent and np.isfinite(f)]
        row: dict[str, Any] = {"generation": generation, "ens_k": min(self.k, len(children)),
                               "score_kind": parts.task.score_kind, "selected_on": self.selected_on}  # fmt: skip
        frames = 0
        row["parent_score"] = row["parent_selection"] = math.nan
        picking = selection_seeds(seeds, parts.task.options.episodes)
        if parent is not None:
            parent_params = self._params([parent])
            actor = PopulationActor(parts.policy, parent_params, parts.device)
            row["parent_score"], used = self._score(actor, seeds)
            row["parent_selection"] = float(selection_fitness_of(parts.task, actor, 1, picking)[0])
            frames += used
        for key in ("best_child_score", "mean_child_score", "ensemble_score", "ens_size", "best_child_selection",
                    "ensemble_selection"):  # fmt: skip
            row[key] = math.nan
        if children:
            params = self._params(children)
            chosen = self.choose(params, picking)
            members = chosen.order[: chosen.size]
            singles = []
            for i in members:  # the chosen members only, each once on test
                actor = PopulationActor(parts.policy, params.select(torch.tensor([i])), parts.device)
                score, used = self._score(actor, seeds)
                singles.append(score)
                frames += used
            ensemble = EnsembleActor(parts.policy, params.select(torch.tensor(members)), parts.device, self.mode)
            row["ensemble_score"], used = self._score(ensemble, seeds)
            frames += used
            row.update(best_child_score=singles[0], mean_child_score=float(np.mean(singles)), ens_size=chosen.size,
                       best_child_selection=float(chosen.child_fitness[members[0]]),
                       ensemble_selection=chosen.ensemble_fitness)  # fmt: skip
        row["frames"] = frames
        self.rows.append(row)
        write_csv(path, pd.DataFrame(self.rows))
        return {key: row[key] for key in COLUMNS}
