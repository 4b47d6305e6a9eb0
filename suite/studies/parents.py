"""The studies' parents: digits classifiers trained with the ``adam`` reference, saved as checkpoints by their runs."""

from __future__ import annotations

from pathlib import Path

from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve


def train_parent(
    out: str | Path, seed: int = 0, hidden: str = "64,64", generations: int = 20, device: str = "cpu",
    settings: dict | None = None,
) -> tuple[Path, dict]:  # fmt: skip
    """Train a digits classifier with the ``adam`` reference (P=16: 16 steps a generation); its elite checkpoint.

    ``settings`` add to the run's (e.g. ``select_fraction``, so the parent never trains on a selection split).
    """
    spec = RunSpec("digits", algorithm="adam", population=16, generations=generations, seed=seed, device=device,
                   settings={"hidden": hidden, **(settings or {})})  # fmt: skip
    run = Run(resolve(spec), out)
    row = run.run()
    return run.run_dir.path / "elite.safetensors", row
