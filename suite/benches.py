"""Named benchmark suites: lists of run specs run with ``evoboard bench NAME``.

Other task families add their suites here with ``register_suite`` (e.g. Atari's).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from suite.spec import RunSpec

Procedure = Callable[[str, int, str], object]
"""(output folder, seeds, device) -> anything: a suite that is a procedure rather than a list of runs."""


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    specs: tuple[RunSpec, ...]
    procedure: Procedure | None = None
    """Runs instead of ``specs`` when set (e.g. the lottery-ticket rounds, each round depending on the last)."""

    def for_seeds(self, seeds: int) -> list[RunSpec]:
        """Every spec once per seed 0..seeds-1."""
        return [replace(spec, seed=seed) for seed in range(seeds) for spec in self.specs]


SUITES: dict[str, Suite] = {}


def register_suite(name: str, description: str, specs: list[RunSpec], procedure: Procedure | None = None) -> None:
    SUITES[name] = Suite(name, description, tuple(specs), procedure)


def _lottery(out: str, seeds: int, device: str) -> object:
    return importlib.import_module("suite.lottery").run_lottery(out, seeds, device)  # imported only when run


def _throughput(out: str, seeds: int, device: str) -> object:
    """The throughput bench on ``device`` (auto: cuda where torch sees it); its modules imported only when run."""
    chosen = importlib.import_module("suite.runner").resolve_device(device)
    return importlib.import_module("suite.throughput").run(Path(out), device=chosen.type)


register_suite(
    "smoke",
    "a minute of tiny GA runs on CartPole, Pendulum and HalfCheetah (checks an install)",
    [
        RunSpec("CartPole-v1", population=16, generations=5),
        RunSpec("Pendulum-v1", population=16, generations=3),
        RunSpec("HalfCheetah-v5", population=8, generations=2, settings={"max_steps": 200}),
    ],
)
register_suite(
    "control",
    "dense GA on five MuJoCo tasks at the standard 1000-step budget",
    [
        RunSpec(task, population=64, generations=20)
        for task in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5")
    ],
)
register_suite(
    "lottery",
    "SNES lottery tickets on digits and CartPole: SNR vs magnitude vs random pruning (a few minutes)",
    [],
    procedure=_lottery,
)
register_suite(
    "sparse-window",
    "critical mutation window: sparse children of an adam-trained digits model, sigma x p in {1, 0.1, 0.01} (~1 min)",
    [],
    procedure=lambda out, seeds, device: importlib.import_module("suite.sparse_window").run_sparse_window(
        out, seeds, device
    ),
)
register_suite(
    "stitch",
    "stitching two adam-trained digits MLPs: GA over switches, Pareto front of accuracy vs multiply-adds (~1 min)",
    [],
    procedure=lambda out, seeds, device: importlib.import_module("suite.stitch").run_stitch(out, seeds, device),
)
register_suite(
    "throughput",
    "env steps/s of population evaluation vs the raw vector env and EvoTorch (MuJoCo, CartPole, Pong; ~5 min)",
    [],
    procedure=_throughput,
)
import suite.atari_suites  # noqa: E402, F401  (registers atari5, garbus4, atari-smoke)
import suite.reference_suites  # noqa: E402, F401  (registers encodings-control, encodings-charlm, early-termination)
