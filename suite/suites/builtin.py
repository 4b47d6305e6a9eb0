"""The built-in suites that are procedures, not lists of runs: the studies and the speed benchmarks.

The built-in lists of runs are suite files beside this module (``*.toml``), read like a user's.
"""

from __future__ import annotations

from pathlib import Path

from evoboard import lazy
from evoboard.suite.studies.reference.catalogue import STUDIES
from evoboard.suite.suites.registry import register_suite

STUDIES_PKG = "evoboard.suite.studies"


def _lottery(out: str, seeds: int, device: str) -> object:
    return lazy.load(STUDIES_PKG + ".lottery:run_lottery")(out, seeds, device)  # imported only when run


def _throughput(out: str, seeds: int, device: str) -> object:
    """The throughput bench on ``device`` (auto: cuda where torch sees it); its modules imported only when run."""
    chosen = lazy.load("evoboard.suite.provenance:resolve_device")(device)
    return lazy.load("evoboard.suite.speed.throughput:run")(Path(out), device=chosen.type)


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
    procedure=lambda out, seeds, device: lazy.load(STUDIES_PKG + ".sparse_window:run_sparse_window")(
        out, seeds, device
    ),
)
register_suite(
    "stitch",
    "stitching two adam-trained digits MLPs: GA over switches, Pareto front of accuracy vs multiply-adds (~1 min)",
    [],
    procedure=lambda out, seeds, device: lazy.load(STUDIES_PKG + ".stitch:run_stitch")(out, seeds, device),
)
register_suite(
    "verdict-calibration",
    "the claims' decision rule on 2,000 simulated studies per (n, effect): false-verdict rates and power (~2 min)",
    [],
    procedure=lambda out, seeds, device: lazy.load(STUDIES_PKG + ".calibration:run_calibration")(out, seeds, device),
)
register_suite(
    "launches",
    "tensor ops per generation (torch profiler, CPU) of every encoding under ga, openai-es and snes at P = 16, 64, 256",
    [],
    procedure=lambda out, seeds, device: lazy.load("evoboard.suite.speed.launches:run")(Path(out)),
)
register_suite(
    "mutation-scale",
    "equal steps at equal sigma: each encoding's per-entry change of its effective weights against dense's (~1 min)",
    [],
    procedure=lambda out, seeds, device: lazy.load("evoboard.suite.speed.mutation_scale:run")(Path(out)),
)
register_suite(
    "throughput",
    "env steps/s of population evaluation vs the raw vector env and EvoTorch (MuJoCo, CartPole, Pong; ~5 min)",
    [],
    procedure=_throughput,
)


def _study(name: str):
    """The procedure of reference study ``name``: it runs into ``<out>/<name>/`` and tests its claims."""
    return lambda out, seeds, device: lazy.load(STUDIES_PKG + ".reference:run_study")(STUDIES[name], out, seeds, device)


for _name, _study_def in STUDIES.items():
    register_suite(_name, f"[reference] {_study_def.description}", [], procedure=_study(_name))
register_suite(
    "reference",
    "all seven reference studies into <out>/<study>/ and their claims table <out>/claims.md (~2.5 h at --seeds 5)",
    [],
    procedure=lambda out, seeds, device: lazy.load(STUDIES_PKG + ".reference:run_reference")(out, seeds, device),
)
register_suite(
    "gpu-check",
    "first thing on a GPU machine: every algorithm kind per task family, weights and fitness against the CPU, "
    "char-LM and Pong profiled per phase, peak memory (<8 min on an H100); without CUDA a CPU dry run (~1 min)",
    [],
    procedure=lambda out, seeds, device: lazy.load("evoboard.suite.speed.gpu_check:run_check")(out, device),
)
