"""Child ensembles (S0): the top K children of a generation averaged into one model and scored.

Whitaker & Whitley 2023, "Sparse Mutation Decompositions": children of one trained parent,
each a small (sparse) mutation of it, make a cheap ensemble whose averaged predictions can
beat the parent and every single child. After each generation the runner calls
``ChildEnsembles``: the K children with the best training fitness are decoded, their
predictions averaged, and the parent, the best child, the mean of the K children and the
ensemble are scored on the task's held-out score (``final_score``: test accuracy, validation
bits per character, or held-out episode returns). The figures join history.csv and a
per-run ``ensembles.csv``; the leaderboard is unchanged.

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
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from agents import PopulationActor
from agents.algorithms import SearchAlgorithm, VectorSearch
from agents.encodings import Genome, SeedChainEncoding
from agents.layers import PopulationParams
from agents.policies import greedy_actions
from suite.backends.local import Parts
from suite.board.leaderboard import write_csv

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


class ChildEnsembles:
    """Scores parent, best child, mean child and the top-K ensemble each generation; writes ensembles.csv."""

    def __init__(self, parts: Parts, k: int):
        self.parts, self.k = parts, k
        self.mode = ensemble_mode(parts.task, parts.policy, parts.algorithm, parts.encoding)
        self.rows: list[dict[str, Any]] = []

    def _params(self, genomes: list[Genome]) -> PopulationParams:
        """Decoded members without touching the encoding's cache (the next generation's parents live there)."""
        encoding = self.parts.encoding
        return encoding.to_params(torch.stack([encoding.vector(g) for g in genomes]))

    def _score(self, actor, seeds: list[int]) -> tuple[float, int]:
        score, evaluation = self.parts.task.final_score(actor, seeds)
        return float(score), evaluation.frames

    def __call__(
        self,
        folder: Path,
        generation: int,
        genomes: list[Genome],
        fitness: np.ndarray,
        parent: Genome | None,
        seeds: list[int],
    ) -> dict:
        """Generation ``generation``'s row (finite-or--inf ``fitness``), scored on held-out ``seeds``, kept in
        ``folder``/ensembles.csv; NaN where there is no parent or no child."""
        parts, encoding = self.parts, self.parts.encoding
        path = Path(folder) / "ensembles.csv"
        if not self.rows and path.exists():  # a resumed run keeps the rows of its earlier generations
            earlier = pd.read_csv(path)
            self.rows = earlier[earlier["generation"] < generation].to_dict("records")
        if parent is None and encoding.root is not None:
            parent = (encoding.root,)  # generation 0 of a pretrained start: every member is the checkpoint
        canon = [encoding.canonical(g) for g in genomes]
        children = [i for i in np.argsort(-fitness, kind="stable") if canon[i] != parent]
        top = [genomes[i] for i in children[: self.k] if np.isfinite(fitness[i])]
        row: dict[str, Any] = {"generation": generation, "ens_k": len(top), "score_kind": parts.task.score_kind}
        frames = 0
        row["parent_score"] = math.nan
        if parent is not None:
            actor = PopulationActor(parts.policy, self._params([parent]), parts.device)
            row["parent_score"], used = self._score(actor, seeds)
            frames += used
        row["best_child_score"] = row["mean_child_score"] = row["ensemble_score"] = math.nan
        if top:
            params = self._params(top)
            singles = []
            for i in range(len(top)):
                actor = PopulationActor(parts.policy, params.select(torch.tensor([i])), parts.device)
                score, used = self._score(actor, seeds)
                singles.append(score)
                frames += used
            row["best_child_score"], row["mean_child_score"] = singles[0], float(np.mean(singles))
            ensemble = EnsembleActor(parts.policy, params, parts.device, self.mode)
            row["ensemble_score"], used = self._score(ensemble, seeds)
            frames += used
        row["frames"] = frames
        self.rows.append(row)
        write_csv(path, pd.DataFrame(self.rows))
        return {key: row[key] for key in COLUMNS}
