"""The reference suites whose results ship in ``results/reference/``: each reproduces one finding
of the source papers on this project's 2-core CPU machine within about half an hour.

- ``encodings-control``: dense vs lowrank vs lowrank-perturb vs sparse on HalfCheetah and Hopper,
  5 seeds, the same population, generations and step budget for every encoding.
- ``encodings-charlm``: the same four on charlm/pydoc, 5 seeds, equal forward budget, plus the
  Adam gradient reference (Garbus & Pollack 2025: factorized should do at least as well as dense).
- ``early-termination``: dense vs lowrank on an Atari game and a control task, with and without the
  below-elite rule: frames and wall time per generation, and final score.
"""

from __future__ import annotations

from suite.spec import RunSpec
from suite.suites.registry import register_suite

ENCODINGS = ("dense", "lowrank", "lowrank-perturb", "sparse")
CONTROL = {"population": 32, "generations": 10}
CHARLM = {"population": 32, "generations": 50}
CHARLM_SETTINGS = {"batch_windows": 16}

register_suite(
    "encodings-control",
    "4 encodings x HalfCheetah-v5, Hopper-v5, equal budget (P=32, 10 generations, 1000 steps); --seeds 5",
    [RunSpec(task, encoding=e, **CONTROL) for task in ("HalfCheetah-v5", "Hopper-v5") for e in ENCODINGS],
)
register_suite(
    "encodings-charlm",
    "4 encodings + the adam reference on charlm/pydoc, equal forward budget (P=32, 50 generations); --seeds 5",
    [RunSpec("charlm/pydoc", encoding=e, settings=CHARLM_SETTINGS, **CHARLM) for e in ENCODINGS]
    + [RunSpec("charlm/pydoc", algorithm="adam", settings=CHARLM_SETTINGS, **CHARLM)],
)
register_suite(
    "early-termination",
    "dense and lowrank, below-elite rule off/on, on ALE/Pong-v5 (2000 frames) and HalfCheetah-v5; --seeds 3",
    [
        RunSpec(task, encoding=e, population=pop, generations=gens, settings={**budget, **rule})
        for task, pop, gens, budget, margin in (
            ("HalfCheetah-v5", 32, 10, {}, 100.0),
            ("ALE/Pong-v5", 8, 4, {"max_frames": 2000}, 5.0),
        )
        for e in ("dense", "lowrank")
        for rule in ({}, {"elite_margin": margin})
    ],
)
