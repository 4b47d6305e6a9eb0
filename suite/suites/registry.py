"""The suite registry: named lists of run specs (or procedures) run with ``evoboard bench NAME``.

A leaf: catalogues import ``register_suite`` from here; the package ``__init__`` loads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evoboard.suite.spec import RunSpec

Procedure = Callable[[str, int, str], object]
"""(output folder, seeds, device) -> anything: a suite that is a procedure rather than a list of runs."""


@dataclass(frozen=True)
class Tune:
    """A run's settings grid (``sigma``: a few values) tried on tuning seeds that are never reported (#24)."""

    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    """(setting, values) pairs; every combination is tried."""
    seeds: tuple[int, ...] = (100, 101, 102)
    generations: int | None = None
    """Generations of each tuning run (None: the reported runs' own). A shorter horizon makes tuning
    affordable; it is a documented setting, since a step best over few generations may be larger than
    the one best over many."""


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    specs: tuple[RunSpec, ...]
    procedure: Procedure | None = None
    """Runs instead of ``specs`` when set (e.g. the lottery-ticket rounds, each round depending on the last)."""
    source: Path | None = None
    """The suite file it was read from (``evoboard suite show`` prints it); None for a procedure."""
    compare: tuple[dict[str, str], ...] = ()
    """Its ``[[compare]]`` tables (x, y, optional task, floor): claims ``bench`` writes beside its leaderboard."""
    tunes: tuple[Tune | None, ...] = ()
    """Per spec (empty: none tuned): its grid, run first on the tuning seeds (``suites.tuning``)."""
    max_seeds: tuple[int | None, ...] = ()
    """Per spec (empty: no caps): at most this many seeds, whatever ``--seeds`` says (a run costing minutes
    where the rest of its suite costs seconds)."""

    def for_seeds(self, seeds: int) -> list[RunSpec]:
        """Every spec once per seed 0..seeds-1 (0..max_seeds-1 where its run caps them)."""
        caps = self.max_seeds or (None,) * len(self.specs)
        return [replace(spec, seed=seed) for seed in range(seeds) for spec, cap in zip(self.specs, caps, strict=True)
                if cap is None or seed < cap]  # fmt: skip


SUITES: dict[str, Suite] = {}


def register_suite(name: str, description: str, specs: list[RunSpec], procedure: Procedure | None = None) -> None:
    SUITES[name] = Suite(name, description, tuple(specs), procedure)


def add_suite(suite: Suite) -> None:
    """Register a suite read from a file."""
    SUITES[suite.name] = suite
