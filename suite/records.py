"""A run's record keeper: its progress, history, totals, checkpoint, leaderboard row and elite.

Every kind of loop (``suite/loops.py``) hands its generations here, so a search, a direct
trainer and a count model keep their history, checkpoint and row the same way; ``RunDir``
(``suite/rundir.py``) owns the files. Time is counted honestly: a generation's ``wall_s`` runs
from its start to the end of its checkpoint (``t_checkpoint`` shows the writes apart, filled in
once they are done), and the leaderboard's ``wall_s`` is the run's elapsed time from building
it to its row, summed over resumed segments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from evoboard import __version__
from evoboard.agents import checkpoints
from evoboard.agents.algorithms import AlgorithmState
from evoboard.envs import Evaluation
from evoboard.errors import CheckpointError, UsageError
from evoboard.suite.backends.base import Parts
from evoboard.suite.devices import clock, device_name
from evoboard.suite.hooks import Hook
from evoboard.suite.provenance import git_sha
from evoboard.suite.rundir import HistoryLog, RunDir
from evoboard.suite.spec import ResolvedSpec

log = logging.getLogger("evoboard.suite.runner")


class Reporter(Protocol):
    """Receives one history row per generation (the CLI draws a progress bar from it)."""

    def __call__(self, row: dict[str, Any], total: int) -> None: ...


@dataclass
class Totals:
    frames: int = 0
    frames_saved: int = 0
    member_forwards: int = 0
    wall_s: float = 0.0
    """Seconds of the generations (and final scoring) counted so far."""
    elapsed_s: float = 0.0
    """Seconds of the run's earlier segments (before a resume), from build to their last checkpoint."""
    checkpoint_bytes: int = 0
    """Bytes the last checkpoint wrote (JSON and tensors)."""


class Records:
    """What a run has done (algorithm state, elite trace, history, totals) and how it is kept."""

    def __init__(
        self,
        resolved: ResolvedSpec,
        parts: Parts,
        hooks: list[Hook],
        keep_row: Callable[[dict[str, Any]], None],
        built_at: float,
        checkpoints_each_generation: bool = True,
    ):
        self.resolved, self.spec, self.parts, self.hooks = resolved, resolved.spec, parts, hooks
        self.keep_row = keep_row
        """Where the finished row goes (the leaderboard; a suite's worker: its driver)."""
        self.built_at = built_at
        self.each_generation = checkpoints_each_generation
        """False for a direct trainer: its weights are no seed chain, so only the finished run is checkpointed."""
        self.state: AlgorithmState = parts.algorithm.init(self.spec.seed)
        self.elite_trace: np.ndarray | None = None
        self.history: list[dict[str, Any]] = []
        self.totals = Totals()
        self.reporter: Reporter | None = None
        self.folder: RunDir | None = None
        self.history_log: HistoryLog | None = None

    def open(self, folder: RunDir) -> None:
        """Keep the records in ``folder`` (a new run's, or the one a resume continues)."""
        self.folder, self.history_log = folder, HistoryLog(folder.history_log_path)

    def elapsed(self) -> float:
        """Seconds since this segment was built, plus the earlier segments' (a resumed run)."""
        return self.totals.elapsed_s + time.perf_counter() - self.built_at

    # -- each generation ------------------------------------------------------------------
    def generation(
        self,
        gen: int,
        started: float,
        fitness: np.ndarray,
        elite_fitness: float,
        evaluations: list[Evaluation],
        times: dict,
        extra: dict | None = None,
    ) -> dict[str, Any]:
        """Count generation ``gen`` (begun at perf_counter ``started``; the first evaluation is the
        population's), write its history row and checkpoint; the row's times include the writes."""
        main, wall = evaluations[0], clock(self.parts.device) - started
        frames = sum(e.frames for e in evaluations)
        forwards = sum(e.member_forwards for e in evaluations)
        finite = fitness[np.isfinite(fitness)]
        self.totals.frames += frames
        self.totals.frames_saved += main.frames_saved
        self.totals.member_forwards += forwards
        row = {
            "generation": gen,
            "best_fitness": float(fitness.max()),
            "mean_fitness": float(finite.mean()) if len(finite) else -np.inf,
            "median_fitness": float(np.median(fitness)),
            "elite_fitness": float(elite_fitness),
            "frames": frames,
            "frames_saved": main.frames_saved,
            "cut_episodes": int(main.cut.sum()),
            "failed_members": int(main.failed.sum()),
            "member_forwards": forwards,
            "total_frames": self.totals.frames,
            "wall_s": wall,
            **times,
            **(extra or {}),  # the algorithm's metrics (GA: mutation effects); hooks' columns (ensembles)
            "t_checkpoint": 0.0,
            "frames_per_s": frames / max(wall, 1e-9),
        }
        self.history.append(row)
        t0 = time.perf_counter()
        self.persist()
        row["t_checkpoint"] = time.perf_counter() - t0  # on disk with the next write (and at the end)
        row["wall_s"] = time.perf_counter() - started
        row["frames_per_s"] = frames / max(row["wall_s"], 1e-9)
        self.totals.wall_s += row["wall_s"]
        if self.reporter:
            self.reporter(row, self.spec.generations)
        return row

    # -- the end --------------------------------------------------------------------------
    def finish(
        self, score: float, final: Evaluation, started: float, best: tuple[int, ...], params=None, **columns: Any
    ) -> dict[str, Any]:
        """Count the final scoring (begun at ``started``), keep the leaderboard row (``columns`` replace its
        own), save the elite's ``params`` where there are any, and mark the run finished."""
        self.totals.frames += final.frames
        self.totals.member_forwards += final.member_forwards
        self.totals.wall_s += time.perf_counter() - started
        row = {**self.leaderboard_row(best, score), **columns}
        self.keep_row(row)
        if params is not None:  # a count model has no network weights to save
            self.save_elite(params, best, score)  # before "finished": a failed elite write resumes
        self.persist(finished=True)  # history.csv again: its last row's t_checkpoint
        return row

    def leaderboard_row(self, best: tuple[int, ...], final_score: float) -> dict[str, Any]:
        parts = self.parts
        return {
            "run_id": self.folder.path.name,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "evoboard_version": __version__,
            "git_sha": git_sha(),
            "task": self.spec.task,
            "encoding": self.spec.encoding,
            "algorithm": self.spec.algorithm,
            "policy": parts.policy.describe(),
            "population": self.spec.population,
            "generations": self.spec.generations,
            "seed": self.spec.seed,
            "device": device_name(parts.device),
            "search_dims": parts.encoding.search_dims,
            "genome_bytes": parts.encoding.genome_bytes(best),
            "best_fitness": self.state.best_so_far,
            "final_score": final_score,
            "score_kind": parts.task.score_kind,
            "frames": self.totals.frames,
            "frames_saved": self.totals.frames_saved,
            "member_forwards": self.totals.member_forwards,
            "wall_s": round(self.elapsed(), 3),
            "frames_per_s": round(self.totals.frames / max(self.elapsed(), 1e-9), 1),
            "config": self.resolved.config_json(),
        }

    def save_elite(self, params, best: tuple[int, ...], score: float) -> None:
        """The final elite's weights as ``elite.safetensors`` in the run folder: a start for ``--set init=PATH``."""
        policy, spec = self.parts.policy, self.spec
        params = policy.apply(params)  # a masked policy's weights with its masks in
        genome = list(self.parts.encoding.canonical(best))
        meta = {"run_id": self.folder.path.name, "task": spec.task, "policy": policy.describe(),
                "encoding": spec.encoding, "algorithm": spec.algorithm, "genome": genome,
                "final_score": score, "score_kind": self.parts.task.score_kind, "init": self.resolved.runner.init,
                "layers": checkpoints.describe_layers(policy.layers)}  # fmt: skip
        for hook in self.hooks:
            meta.update(hook.elite_meta())
        try:
            tensors = checkpoints.layer_tensors(policy.layers, params)
        except (AttributeError, TypeError, KeyError) as err:  # a plugin form without a dense materialize()
            log.warning("elite weights not saved: %s cannot be exported as dense tensors (%s)", spec.encoding, err)
            return
        self.folder.write_elite(tensors, meta)

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The checkpoint's JSON and its tensors (the search state's, the hooks' under their prefixes)."""
        algorithm, tensors = self.state.split()
        for hook in self.hooks:
            tensors = {**tensors, **{hook.prefix + k: v for k, v in hook.state().items()}}
        totals = {**vars(self.totals), "elapsed_s": self.elapsed()}
        data = {
            "generation": self.state.generation,
            "algorithm": algorithm,
            "elite_trace": None if self.elite_trace is None else self.elite_trace.tolist(),
            "best_fitness": self.state.best_so_far,
            "totals": totals,
            "history_log": self.history_log.mark(),  # the finished rows, in history.jsonl
            "pending_history": self.history[self.history_log.rows :],  # the newest row, its times still open
        }
        return data, tensors

    def persist(self, finished: bool = False) -> None:
        """Append finished rows to history.jsonl, write history.csv, then the checkpoint (a direct
        trainer's: only once finished). The newest row's times are filled in after this write, so
        it joins history.jsonl at the next one and waits in the checkpoint."""
        open_rows = 0 if finished else 1
        self.history_log.append(self.history[self.history_log.rows : len(self.history) - open_rows])
        self.folder.write_history(self.history)
        if not (finished or self.each_generation):
            return
        data, tensors = self.checkpoint()
        data = {**data, "finished": True} if finished else data
        self.totals.checkpoint_bytes = self.folder.write_checkpoint(data, tensors)

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from a read checkpoint: search state, hooks' state, totals, history."""
        folder = self.folder
        try:
            tensors = folder.read_tensors(saved)
            prefixes = tuple(hook.prefix for hook in self.hooks if hook.prefix)
            own = {k: v for k, v in tensors.items() if not (prefixes and k.startswith(prefixes))}
            self.state = self.parts.algorithm.state_from_json(saved["algorithm"], own)
            for hook in self.hooks:
                if hook.prefix:
                    hook.load_state({k[len(hook.prefix) :]: v for k, v in tensors.items() if k.startswith(hook.prefix)})
        except (CheckpointError, KeyError, TypeError, ValueError) as err:
            raise UsageError(f"cannot resume {folder.path}: {err}") from None
        if "best_so_far" not in saved["algorithm"]:  # a checkpoint from before the state kept it
            self.state = dataclasses.replace(self.state, best_so_far=saved["best_fitness"])
        self.elite_trace = None if saved["elite_trace"] is None else np.asarray(saved["elite_trace"])
        self.totals = Totals(**saved["totals"])
        if "history" in saved:  # a checkpoint from before history.jsonl held the rows itself
            self.history = saved["history"]
            return
        try:
            self.history = self.history_log.restore(saved["history_log"]) + saved["pending_history"]
        except (CheckpointError, KeyError, TypeError, ValueError) as err:
            raise UsageError(f"cannot resume {folder.path}: {err}") from None
