"""After-generation hooks: attached by whoever wants them, they add history columns; the run core knows no study."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from evoboard.suite.hooks import Generation, Hook
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve


class Seen(Hook):
    """Counts the members each generation told, as a history column."""

    def __init__(self):
        self.generations: list[int] = []

    def after_generation(self, generation: Generation) -> dict:
        self.generations.append(generation.number)
        return {"members_seen": len(generation.genomes)}


def test_a_hook_attached_by_the_caller_adds_its_column_to_every_generation(tmp_path):
    run = Run(
        resolve(RunSpec("CartPole-v1", population=4, generations=3, seed=0, settings={"max_steps": 20})), tmp_path
    )
    seen = Seen()
    run.hooks.append(seen)
    row = run.run()
    history = pd.read_csv(tmp_path / "runs" / row["run_id"] / "history.csv")
    assert seen.generations == [0, 1, 2] and history["members_seen"].tolist() == [4, 4, 4]


def test_the_run_core_imports_no_study():
    code = "import sys, evoboard.suite.runner; print(any(m.startswith('evoboard.suite.studies') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
