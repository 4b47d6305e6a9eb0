"""After-generation hooks: what a run does beside its loop (the observation normalizer, child ensembles).

A hook acts once a search generation is told and crowned, may add columns to its history row,
and may keep state in the run's checkpoint (EvoTorch attaches its loggers to the search the
same way, so the loop stays ask, evaluate, tell). A run attaches the task's normalizer where the
task has one, then one hook per runner setting named in ``HOOKS`` that is set (``--set
ensemble=K``): a lazy ``"module:callable"`` taking the run's parts and the setting's value, so
the run core never imports the studies that provide them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evoboard.agents.encodings import Genome
from evoboard.lazy import load

HOOKS = {"ensemble": "evoboard.suite.studies.ensembles:ChildEnsembles"}
"""Runner settings that attach a hook when set: key -> ``"module:callable"`` of (parts, value) -> Hook."""


@dataclass(frozen=True)
class Generation:
    """A finished search generation as hooks see it."""

    number: int
    genomes: list[Genome]
    fitness: np.ndarray
    """The population's training fitness (P,): -inf for failed members."""
    parent: Genome | None
    """The elite crowned before this generation (None in the first)."""
    folder: Path
    """The run folder, for a hook's own files."""
    held_out: list[int]
    """The episode seeds ``final_score`` scores on."""


class Hook:
    """Acts after each search generation; every method is optional (a no-op here)."""

    prefix = ""
    """Where this hook's tensors sit among the checkpoint's (``state``); empty: it keeps none."""

    def after_generation(self, generation: Generation) -> dict[str, Any] | None:
        """Act on a finished generation; the columns it returns join the history row."""
        return None

    def after_scoring(self) -> None:
        """The final elite was scored on held-out episodes."""

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors the checkpoint keeps (under ``prefix``)."""
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore ``state()`` on a resume."""

    def elite_meta(self) -> dict[str, Any]:
        """What ``elite.safetensors`` must carry for the elite to replay as it was scored."""
        return {}


class ObsNormalization(Hook):
    """The task's observation normalizer: this generation's observations move the next one's normalization."""

    prefix = "task.obs_norm."

    def __init__(self, normalizer: Any, backend: str):
        if backend != "local":  # workers would keep their own statistics
            raise ValueError(f"obs_norm needs the local backend (its statistics live in this process), not {backend}")
        self.normalizer = normalizer

    def after_generation(self, generation: Generation) -> None:
        self.normalizer.update()

    def after_scoring(self) -> None:
        self.normalizer.discard()  # held-out episodes never move the statistics

    def state(self) -> dict[str, torch.Tensor]:
        return self.normalizer.state()

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.normalizer.load_state(tensors)

    def elite_meta(self) -> dict[str, Any]:  # replay normalizes with the statistics the elite saw
        return {"obs_norm": {k: v.tolist() for k, v in self.normalizer.state().items()}}


def hooks_for(parts: Any, resolved: Any) -> list[Hook]:
    """The hooks a run attaches: the task's normalizer first, then each set runner setting's (ValueError if unfit)."""
    hooks = [load(target)(parts, getattr(resolved.runner, key)) for key, target in HOOKS.items()
             if getattr(resolved.runner, key)]  # fmt: skip
    if parts.task.normalizer is not None:  # first: the statistics move before anything else evaluates
        hooks.insert(0, ObsNormalization(parts.task.normalizer, resolved.spec.backend))
    return hooks
