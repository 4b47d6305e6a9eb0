"""A fixed set of tiny runs whose rows and histories are recorded once and compared ever after.

Covers every algorithm kind (GA, OpenAI-ES, SNES, RSO, adam), every built-in encoding (dense,
lowrank, lowrank-perturb, sparse) and every task family (gym, Atari, char-LM, digits). A change
that must not move results (a restructuring) keeps ``tests/golden/runs.json`` as it is; a change
that means to move them re-records it with ``python -m tests.golden_specs`` and says why.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import pandas as pd

from evoboard.suite.runner import TIMING_COLUMNS, run_spec
from evoboard.suite.spec import RunSpec

GOLDEN = Path(__file__).resolve().parent / "golden" / "runs.json"
CHARLM = {"batch_windows": 4, "val_windows": 8, "context": 16, "n_layer": 1, "n_embd": 16, "n_head": 2}
SPECS = {
    "cartpole-ga-dense": RunSpec("CartPole-v1", population=8, generations=2, seed=1, settings={"max_steps": 100}),
    "cartpole-ga-sparse": RunSpec("CartPole-v1", encoding="sparse", population=8, generations=2, seed=2),
    "pendulum-es-dense": RunSpec("Pendulum-v1", algorithm="openai-es", population=8, generations=2, seed=3),
    "cartpole-snes-lowrank": RunSpec(
        "CartPole-v1", encoding="lowrank", algorithm="snes", population=8, generations=2, seed=4
    ),
    "pong-ga-lowrank-perturb": RunSpec(
        "ALE/Pong-v5",
        encoding="lowrank-perturb",
        population=4,
        generations=2,
        seed=5,
        settings={"max_frames": 200, "cnn_hidden": 32},
    ),  # fmt: skip
    "charlm-ga-lowrank": RunSpec(
        "charlm/pydoc", encoding="lowrank", population=4, generations=2, seed=6, settings=CHARLM
    ),
    "charlm-adam-dense": RunSpec(
        "charlm/pydoc", algorithm="adam", population=2, generations=2, seed=7, settings=CHARLM
    ),
    "digits-rso-dense": RunSpec(
        "digits",
        algorithm="rso",
        policy="classifier_mlp",
        population=4,
        generations=1,
        seed=8,
        settings={"batch_size": 32},
    ),  # fmt: skip
}
DROPPED = ["run_id", "created_at", "wall_s", "frames_per_s", "git_sha", "evoboard_version"]
"""Leaderboard columns that differ between two runs of one spec, or between commits."""


def clean(value):
    """JSON-ready and comparable: NaN and infinities as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value.item() if hasattr(value, "item") else value


def record(name: str, out: Path) -> dict:
    """The row (minus ids and timings) and the history (minus timing columns) of one named spec."""
    row = run_spec(SPECS[name], out / name)
    hist = pd.read_csv(out / name / "runs" / row["run_id"] / "history.csv")
    hist = hist.drop(columns=[c for c in TIMING_COLUMNS if c in hist.columns])
    row = {k: clean(v) for k, v in row.items() if k not in DROPPED}
    row["config"] = json.loads(row["config"])
    return {"row": row, "history": [{k: clean(v) for k, v in r.items()} for r in hist.to_dict("records")]}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: record(name, Path(tmp)) for name in SPECS}
    GOLDEN.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(runs)} runs in {GOLDEN}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
