"""A run: a resolved spec built into its parts, its kind's loop, its hooks and its records, then run.

    parts   = build_parts(resolved)          # task, policy, encoding, algorithm (suite/backends/base.py)
    hooks   = hooks_for(parts, resolved)     # after each generation: normalizer, ensembles (suite/hooks.py)
    records = Records(...)                   # history, checkpoint, leaderboard row, elite (suite/records.py)
    loop    = loop_for(algorithm)(...)       # search | direct trainer | count model (suite/loops.py)
    row     = loop.run()                     # every generation, then the elite scored on held-out episodes

Everything is built, and every setting checked, before anything is written; a resume rebuilds
the same run from its folder and continues from its checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evoboard.agents.algorithms import AlgorithmState
from evoboard.errors import CheckpointError, UsageError, WriteFailed
from evoboard.suite.atomic import writing
from evoboard.suite.backends import backend_class
from evoboard.suite.backends.base import build_parts
from evoboard.suite.board import leaderboard
from evoboard.suite.devices import set_tf32
from evoboard.suite.hooks import hooks_for
from evoboard.suite.loops import loop_for
from evoboard.suite.provenance import new_run_id, resolve_device
from evoboard.suite.records import Records, Reporter
from evoboard.suite.rundir import RunDir
from evoboard.suite.spec import ResolvedSpec, RunSpec, resolve, spec_from_saved

TIMING_COLUMNS = ["wall_s", "t_ask", "t_decode", "t_evaluate", "t_tell", "t_elite", "t_checkpoint", "frames_per_s"]
"""History columns that time a generation (they differ between two runs of one spec)."""


class Run:
    """One run of a resolved spec in ``out_dir``: built fully before anything is written."""

    def __init__(
        self,
        resolved: ResolvedSpec,
        out_dir: str | Path,
        reporter: Reporter | None = None,
        started: float | None = None,
    ):
        built_at = time.perf_counter() if started is None else started  # the caller's clock: spec checks too
        self.resolved, self.spec = resolved, resolved.spec
        self.out_dir = Path(out_dir)
        self.device = resolve_device(self.spec.device)
        torch.set_num_threads(resolved.runner.threads)
        set_tf32(resolved.runner.tf32)
        try:
            self.parts = build_parts(resolved, self.device)
        except (ValueError, ImportError) as err:
            raise UsageError(str(err)) from None
        self.task, self.policy = self.parts.task, self.parts.policy
        self.encoding, self.algorithm = self.parts.encoding, self.parts.algorithm
        self.normalizer = self.task.normalizer
        kind = loop_for(self.algorithm)
        backend = None
        try:  # hooks (ensembles: --set ensemble=K), the backend (workers), the kind's loop (a trainer's objective)
            self.hooks = hooks_for(self.parts, resolved)
            self.records = Records(resolved, self.parts, self.hooks, self.keep_row, built_at, kind.resumable)
            self.records.reporter = reporter
            self.backend = backend = backend_class(self.spec.backend)(self.parts, resolved, resolved.backend)
            self.loop = kind(self.parts, resolved, self.records, self.backend, self.hooks)
        except (ValueError, ImportError) as err:
            if backend is not None:
                backend.close()
            self.task.close()
            raise UsageError(str(err)) from None

    def run(self) -> dict[str, Any]:
        """Run every remaining generation, then score the elite and append the leaderboard row."""
        try:
            if self.run_dir is None:
                self.run_dir = RunDir(self.out_dir / "runs" / new_run_id(self.spec))
                self.run_dir.create(self.resolved.saved_spec())
            return self.loop.run()
        except WriteFailed as err:  # disk full, read-only, folder gone: say what a resume starts from
            raise err.saying(self.run_dir.intact()) from None
        finally:
            self.backend.close()
            self.task.close()

    def step(self) -> dict[str, Any]:
        """One generation of a search (ask, decode, evaluate, tell, crown, log, checkpoint); its history row."""
        return self.loop.step()

    def keep_row(self, row: dict[str, Any]) -> None:
        """Append the finished run's row to the leaderboard (once: a run_id already there is skipped).

        A suite's worker overrides this to hand the row to its driver, the only process that appends.
        """
        with writing(leaderboard.path_in(self.out_dir)):
            leaderboard.append(self.out_dir, row)

    # -- what the records hold ------------------------------------------------------------
    @property
    def run_dir(self) -> RunDir | None:
        """The folder the run writes into (a new run's, or the one a resume continues)."""
        return self.records.folder

    @run_dir.setter
    def run_dir(self, folder: RunDir) -> None:
        self.records.open(folder)

    @property
    def state(self) -> AlgorithmState:
        """The algorithm's state after the last finished generation."""
        return self.records.state

    @property
    def generation(self) -> int:
        """Generations finished: the algorithm's own counter."""
        return self.records.state.generation

    @property
    def elite_trace(self) -> np.ndarray | None:
        """The crowned elite's return along its first (re-)evaluation episode (the elite-margin rule's bar)."""
        return self.records.elite_trace

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.records.history

    @property
    def reporter(self) -> Reporter | None:
        return self.records.reporter

    @reporter.setter
    def reporter(self, reporter: Reporter | None) -> None:
        self.records.reporter = reporter

    def checkpoint(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The checkpoint's JSON and its tensors, as the next write would keep them."""
        return self.records.checkpoint()

    @classmethod
    def resume(cls, run_dir: str | Path, reporter: Reporter | None = None) -> Run:
        """Rebuild a run from its folder and continue after its last complete generation."""
        folder = RunDir(run_dir)
        if not folder.spec_path.exists():
            raise UsageError(f"{folder.path} is not a run folder (no spec.json)")
        try:
            saved = folder.read_checkpoint()
            spec = spec_from_saved(folder.read_spec())
        except (CheckpointError, KeyError, TypeError, AttributeError) as err:
            raise UsageError(f"cannot resume {folder.path}: {err}") from None
        run = cls(resolve(spec), folder.path.parent.parent, reporter)
        if not run.loop.resumable:
            raise UsageError(f"run {folder.path.name} trains by gradient ({spec.algorithm}): it cannot resume")
        run.run_dir = folder
        if saved and saved.get("finished"):
            raise UsageError(
                f"run {folder.path.name} already finished; its row is in {run.out_dir / 'leaderboard.csv'}"
            )
        if saved:
            run.records.restore(saved)
        return run


def run_spec(spec: RunSpec, out_dir: str | Path = "results", reporter: Reporter | None = None) -> dict[str, Any]:
    """Validate, run and report one spec; returns its leaderboard row (its wall_s counts the validation too)."""
    started = time.perf_counter()
    return Run(resolve(spec), out_dir, reporter, started).run()
