"""The one loop: ask, decode, evaluate, tell (and crown), log, checkpoint; then score and report.

Every random draw follows from the spec's seed: the algorithm's RNG is seeded once, and
episode seeds are derived from (seed, stream, generation), so the same spec on the same
device gives the same history and leaderboard row, also after a resume.

Time is counted honestly: a generation's ``wall_s`` runs from its ask to the end of its
checkpoint (tell, crown, history and checkpoint writes included; ``t_checkpoint`` shows the
writes apart, filled in once they are done), and the leaderboard's ``wall_s`` is the run's
elapsed time from building it to its row, summed over resumed segments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from evoboard import __version__
from evoboard.agents import PopulationActor, checkpoints
from evoboard.agents.algorithms import CountModel, DirectTrainer
from evoboard.agents.algorithms.base import finite_fitness
from evoboard.envs import Act, Evaluation
from evoboard.errors import CheckpointError, RunFailed, UsageError, WriteFailed
from evoboard.suite.atomic import writing
from evoboard.suite.backends import backend_class
from evoboard.suite.backends.base import build_parts
from evoboard.suite.board import leaderboard
from evoboard.suite.devices import clock, device_name, set_tf32
from evoboard.suite.provenance import ELITE, TEST, TRAIN, episode_seeds, git_sha, new_run_id, resolve_device
from evoboard.suite.rundir import HistoryLog, RunDir
from evoboard.suite.spec import ResolvedSpec, RunSpec, resolve, spec_from_saved
from evoboard.suite.studies.ensembles import ChildEnsembles

log = logging.getLogger("evoboard.suite.runner")
TIMING_COLUMNS = ["wall_s", "t_ask", "t_decode", "t_evaluate", "t_tell", "t_elite", "t_checkpoint", "frames_per_s"]
NORMALIZER = "task.obs_norm."
"""Prefix of the observation normalizer's statistics among a checkpoint's tensors."""


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


class Run:
    """One run of a resolved spec in ``out_dir``: built fully before anything is written."""

    def __init__(
        self,
        resolved: ResolvedSpec,
        out_dir: str | Path,
        reporter: Reporter | None = None,
        started: float | None = None,
    ):
        self.built_at = time.perf_counter() if started is None else started  # the caller's clock: spec checks too
        self.resolved, self.spec = resolved, resolved.spec
        self.out_dir = Path(out_dir)
        self.reporter = reporter
        self.device = resolve_device(self.spec.device)
        torch.set_num_threads(resolved.runner.threads)
        set_tf32(resolved.runner.tf32)
        try:
            self.parts = build_parts(resolved, self.device)
        except (ValueError, ImportError) as err:
            raise UsageError(str(err)) from None
        self.task, self.policy = self.parts.task, self.parts.policy
        self.encoding, self.algorithm = self.parts.encoding, self.parts.algorithm
        self.direct = isinstance(self.algorithm, DirectTrainer)
        """A direct trainer (a gradient reference, RSO) instead of an ask/tell search."""
        self.counting = isinstance(self.algorithm, CountModel)
        """A baseline fit by counting (unigram, bigram): no search, one history row."""
        self.folder: RunDir | None = None
        self.history_log: HistoryLog | None = None
        self.state = self.algorithm.init(self.spec.seed)
        self.elite_trace: np.ndarray | None = None
        self.history: list[dict[str, Any]] = []
        self.totals = Totals()
        try:  # what a direct trainer scores on; S0 child ensembles (--set ensemble=K); the backend last (workers)
            self.objective = self.algorithm.objective(self.task) if self.direct else None
            fit_start = time.perf_counter()
            self.counts = self.algorithm.fit(self.task) if self.counting else None
            self.fit_s = time.perf_counter() - fit_start
            self.ensembles = ChildEnsembles(self.parts, resolved.runner.ensemble) if resolved.runner.ensemble else None
            self.normalizer = self.task.normalizer
            if self.normalizer is not None and self.spec.backend != "local":  # workers would keep their own stats
                raise ValueError(
                    f"obs_norm needs the local backend (its statistics live in this process), not {self.spec.backend}"
                )
            self.backend = backend_class(self.spec.backend)(self.parts, resolved, resolved.backend)
        except (ValueError, ImportError) as err:
            self.task.close()
            raise UsageError(str(err)) from None

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every remaining generation, then score the elite and append the leaderboard row."""
        try:
            if self.run_dir is None:
                self.run_dir = RunDir(self.out_dir / "runs" / new_run_id(self.spec))
                self.run_dir.create(self.resolved.saved_spec())
            if self.direct:
                return self.train_directly()
            if self.counting:
                return self.count_directly()
            while self.generation < self.spec.generations:
                self.step()
            return self.finish()
        except WriteFailed as err:  # disk full, read-only, folder gone: say what a resume starts from
            raise err.saying(self.run_dir.intact()) from None
        finally:
            self.backend.close()
            self.task.close()

    @property
    def run_dir(self) -> RunDir | None:
        """The folder the run writes into (a new run's, or the one a resume continues)."""
        return self.folder

    @run_dir.setter
    def run_dir(self, folder: RunDir) -> None:
        self.folder, self.history_log = folder, HistoryLog(folder.history_log_path)

    @property
    def generation(self) -> int:
        """Generations finished: the algorithm's own counter."""
        return self.state.generation

    def step(self) -> dict[str, Any]:
        """One generation: ask, decode, evaluate, tell, crown, log, checkpoint."""
        gen, t0 = self.generation, self.clock()
        parent = self.state.best  # the last crowned elite
        genomes, state = self.algorithm.ask(self.state)
        t1 = self.clock()
        seeds = episode_seeds(self.spec.seed, TRAIN, gen, self.resolved.task.episodes)
        # Parents beside their children on the same episodes, for the mutation effects. Evaluated first: their
        # rows are still in the encoding's two-decode cache, and decoding them after the population would evict
        # the population, which holds the next generation's parents (they would replay from their seeds).
        references = self.algorithm.references(state)
        extra = [self.backend.evaluate(references, state, seeds, self.elite_trace)[0]] if references else []
        ev, decode_s = self.backend.evaluate(genomes, state, seeds, self.elite_trace)
        t2 = t1 + decode_s  # the references' time counts as evaluation, as the population's does
        if ev.failed.sum() > len(genomes) / 2:
            raise RunFailed(
                f"generation {gen}: {int(ev.failed.sum())} of {len(genomes)} members failed (first: {ev.failure}); "
                f"stopped with the checkpoint of generation {gen - 1} intact in {self.run_dir.path}"
            )
        if ev.failed.any():
            log.warning("generation %d: %d members failed, fitness -inf (first: %s)", gen, ev.failed.sum(), ev.failure)
        fitness = finite_fitness(ev.fitness)  # failed members: -inf, as tell sees them
        reference_fitness = finite_fitness(extra[0].fitness) if extra else np.zeros(0)
        metrics = self.algorithm.metrics(state, genomes, fitness, references, reference_fitness)
        t3 = self.clock()
        state = self.algorithm.tell(state, genomes, fitness)
        t4 = self.clock()
        candidates, crowned = self.algorithm.candidates(state), ev
        if candidates:
            seeds = episode_seeds(self.spec.seed, ELITE, gen, self.algorithm.reevaluation_episodes)
            reevaluated = crowned = self.backend.evaluate(candidates, state, seeds)[0]
            extra.append(reevaluated)
            state = self.algorithm.crown(state, candidates, reevaluated.fitness)
        if self.normalizer is not None:  # this generation's observations move the next one's normalization
            self.normalizer.update()
        t5 = self.clock()

        self.state = state
        if crowned.best_trace is not None:  # the crowned elite's first (re-)evaluation episode: its own trace
            self.elite_trace = crowned.best_trace
        times = {"t_ask": t1 - t0, "t_decode": t2 - t1, "t_evaluate": t3 - t2, "t_tell": t4 - t3, "t_elite": t5 - t4}
        ensemble = None
        if self.ensembles is not None:
            held_out = episode_seeds(self.spec.seed, TEST, 0, self.resolved.runner.eval_episodes)
            ensemble = self.ensembles(self.run_dir.path, gen, genomes, fitness, parent, held_out)
        return self.record(gen, t0, fitness, state.best_fitness, [ev, *extra], times, {**metrics, **(ensemble or {})})

    def record(
        self,
        gen: int,
        started: float,
        fitness: np.ndarray,
        elite_fitness: float,
        evaluations: list,
        times: dict,
        extra: dict | None = None,
    ) -> dict[str, Any]:
        """Count generation ``gen`` (begun at perf_counter ``started``; the first evaluation is the
        population's), write its history row and checkpoint; the row's times include the writes."""
        main, wall = evaluations[0], self.clock() - started
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
            **(extra or {}),  # the algorithm's metrics (GA: mutation effects); ensemble columns when on
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

    def train_directly(self) -> dict[str, Any]:
        """A direct trainer instead of ask/tell: the gradient reference (``adam``) or RSO.

        Each generation takes the trainer's steps (adam: as many as evolution evaluates
        members, P x episodes minibatches; rso: one cycle), on minibatches drawn from the same
        episode seeds, and logs the same history. Adam steps on ``task.loss``; RSO scores its
        candidates with ``task.evaluate``. The trained weights are not a seed chain, so they
        are not checkpointed.
        """
        trainer = self.algorithm.trainer(self.encoding, self.policy, self.spec.seed)
        steps = self.algorithm.steps_per_generation(self.resolved.task.episodes)
        while self.generation < self.spec.generations:
            gen, t0 = self.generation, self.clock()
            seeds = episode_seeds(self.spec.seed, TRAIN, gen, steps)
            evaluations = [trainer.step(self.objective, seed) for seed in seeds]
            fitness = finite_fitness([float(e.fitness[0]) for e in evaluations])
            self.state = self.algorithm.advance(self.state, fitness)
            self.record(gen, t0, fitness, fitness[-1], evaluations, {"t_evaluate": self.clock() - t0})
        return self.conclude(trainer.params(), ())[1]

    def count_directly(self) -> dict[str, Any]:
        """A count model (unigram, bigram) instead of a search: fit once on the training split, scored as a run.

        History has one row, generation 0, whose fitness is the model's fit on the training split
        (minus nats per character) and whose frames are 0: counting scores no windows. The
        leaderboard row's frames are the validation characters ``final_score`` scores.
        """
        if self.generation == 0:
            fitness = np.array([self.counts.train_fitness])
            self.state = self.algorithm.advance(self.state, fitness)
            nothing = Evaluation.scored(fitness[:, None], items=0, forwards=0)
            self.record(0, time.perf_counter() - self.fit_s, fitness, fitness[0], [nothing], {"t_evaluate": self.fit_s})
        return self.conclude(None, (), act=self.counts.act)[1]

    def finish(self) -> dict[str, Any]:
        """Score the final elite on held-out episodes and append the leaderboard row (once)."""
        best = self.algorithm.best(self.state)
        return self.conclude(self.algorithm.decode(self.encoding, [best], self.state), best)[1]

    def conclude(self, params, best: tuple[int, ...], act: Act | None = None) -> tuple[float, dict[str, Any]]:
        """Score one member's ``params`` (or a count model's ``act``) on held-out episodes; append its row once."""
        t0 = time.perf_counter()
        seeds = episode_seeds(self.spec.seed, TEST, 0, self.resolved.runner.eval_episodes)
        score, final = self.task.final_score(act or PopulationActor(self.policy, params, self.device), seeds)
        if self.normalizer is not None:  # held-out episodes never move the statistics
            self.normalizer.discard()
        self.totals.frames += final.frames
        self.totals.member_forwards += final.member_forwards
        self.totals.wall_s += time.perf_counter() - t0
        row = self.leaderboard_row(best, score)
        if self.direct:
            row["genome_bytes"] = 4 * self.encoding.search_dims  # float32 weights, not a seed chain
        if self.counting:  # the count table is the model: float32 log probabilities
            row.update(search_dims=self.counts.log_probs.numel(), genome_bytes=4 * self.counts.log_probs.numel())
        self.keep_row(row)
        if act is None:  # a count model has no network weights to save
            self.save_elite(params, best, score)  # before "finished": a failed elite write resumes
        self.persist(finished=True)  # history.csv again: its last row's t_checkpoint
        return score, row

    def keep_row(self, row: dict[str, Any]) -> None:
        """Append the finished run's row to the leaderboard (once: a run_id already there is skipped).

        A suite's worker overrides this to hand the row to its driver, the only process that appends.
        """
        with writing(leaderboard.path_in(self.out_dir)):
            leaderboard.append(self.out_dir, row)

    def save_elite(self, params, best: tuple[int, ...], score: float) -> None:
        """The final elite's weights as ``elite.safetensors`` in the run folder: a start for ``--set init=PATH``."""
        params = self.policy.apply(params)  # a masked policy's weights with its masks in
        genome = list(self.encoding.canonical(best))
        meta = {"run_id": self.run_dir.path.name, "task": self.spec.task, "policy": self.policy.describe(),
                "encoding": self.spec.encoding, "algorithm": self.spec.algorithm, "genome": genome,
                "final_score": score, "score_kind": self.task.score_kind, "init": self.resolved.runner.init,
                "layers": checkpoints.describe_layers(self.policy.layers)}  # fmt: skip
        if self.normalizer is not None:  # what the elite saw: replay normalizes with the same statistics
            meta["obs_norm"] = {k: v.tolist() for k, v in self.normalizer.state().items()}
        try:
            tensors = checkpoints.layer_tensors(self.policy.layers, params)
        except (AttributeError, TypeError, KeyError) as err:  # a plugin form without a dense materialize()
            log.warning("elite weights not saved: %s cannot be exported as dense tensors (%s)", self.spec.encoding, err)
            return
        self.run_dir.write_elite(tensors, meta)

    def leaderboard_row(self, best: tuple[int, ...], final_score: float) -> dict[str, Any]:
        return {
            "run_id": self.run_dir.path.name,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "evoboard_version": __version__,
            "git_sha": git_sha(),
            "task": self.spec.task,
            "encoding": self.spec.encoding,
            "algorithm": self.spec.algorithm,
            "policy": self.policy.describe(),
            "population": self.spec.population,
            "generations": self.spec.generations,
            "seed": self.spec.seed,
            "device": device_name(self.device),
            "search_dims": self.encoding.search_dims,
            "genome_bytes": self.encoding.genome_bytes(best),
            "best_fitness": self.state.best_so_far,
            "final_score": final_score,
            "score_kind": self.task.score_kind,
            "frames": self.totals.frames,
            "frames_saved": self.totals.frames_saved,
            "member_forwards": self.totals.member_forwards,
            "wall_s": round(self.elapsed(), 3),
            "frames_per_s": round(self.totals.frames / max(self.elapsed(), 1e-9), 1),
            "config": self.resolved.config_json(),
        }

    def clock(self) -> float:
        """Seconds on the phase clock, read once the run's device has finished its queued work (CUDA)."""
        return clock(self.device)

    def elapsed(self) -> float:
        """Seconds since this segment was built, plus the earlier segments' (a resumed run)."""
        return self.totals.elapsed_s + time.perf_counter() - self.built_at

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The checkpoint's JSON and its tensors (the search state's, the normalizer's statistics)."""
        algorithm, tensors = self.state.split()
        if self.normalizer is not None:
            tensors = {**tensors, **{NORMALIZER + k: v for k, v in self.normalizer.state().items()}}
        totals = {**vars(self.totals), "elapsed_s": self.elapsed()}
        data = {
            "generation": self.generation,
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
        trainer's weights are no seed chain: history only). The newest row's times are filled in
        after this write, so it joins history.jsonl at the next one and waits in the checkpoint."""
        open_rows = 0 if finished else 1
        self.history_log.append(self.history[self.history_log.rows : len(self.history) - open_rows])
        self.run_dir.write_history(self.history)
        if self.direct and not finished:
            return
        data, tensors = self.checkpoint()
        data = {**data, "finished": True} if finished else data
        self.totals.checkpoint_bytes = self.run_dir.write_checkpoint(data, tensors)

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
        if run.direct:
            raise UsageError(f"run {folder.path.name} trains by gradient ({spec.algorithm}): it cannot resume")
        run.run_dir = folder
        if saved and saved.get("finished"):
            raise UsageError(
                f"run {folder.path.name} already finished; its row is in {run.out_dir / 'leaderboard.csv'}"
            )
        if saved:
            run.restore(saved, folder)
        return run

    def restore(self, saved: dict[str, Any], folder: RunDir) -> None:
        """Continue from a read checkpoint: search state, normalizer statistics, totals, history."""
        try:
            tensors = folder.read_tensors(saved)
            own = {k: v for k, v in tensors.items() if not k.startswith(NORMALIZER)}
            self.state = self.algorithm.state_from_json(saved["algorithm"], own)
            if self.normalizer is not None:
                self.normalizer.load_state(
                    {k[len(NORMALIZER) :]: v for k, v in tensors.items() if k.startswith(NORMALIZER)}
                )
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


def run_spec(spec: RunSpec, out_dir: str | Path = "results", reporter: Reporter | None = None) -> dict[str, Any]:
    """Validate, run and report one spec; returns its leaderboard row (its wall_s counts the validation too)."""
    started = time.perf_counter()
    return Run(resolve(spec), out_dir, reporter, started).run()
