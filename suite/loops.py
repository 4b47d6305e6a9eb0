"""Each kind of algorithm's loop: a search's ask/tell, a direct trainer's steps, a count model's one fit.

Every loop hands its generations to the run's ``Records`` and ends in ``conclude``: the final
elite scored on held-out episodes, its leaderboard row kept. Every random draw follows from the
spec's seed: the algorithm's RNG is seeded once, and episode seeds are derived from (seed,
stream, generation), so the same spec on the same device gives the same history and row, also
after a resume.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from evoboard.agents import PopulationActor
from evoboard.agents.algorithms import Algorithm, CountModel, DirectTrainer
from evoboard.agents.algorithms.base import finite_fitness
from evoboard.envs import Act, Evaluation
from evoboard.errors import RunFailed
from evoboard.suite.backends.base import Backend, Parts
from evoboard.suite.devices import clock
from evoboard.suite.hooks import Generation, Hook
from evoboard.suite.provenance import ELITE, TEST, TRAIN, episode_seeds
from evoboard.suite.records import Records
from evoboard.suite.spec import ResolvedSpec

log = logging.getLogger("evoboard.suite.runner")


class Loop:
    """What every kind shares: the run's parts, its records, and the final scoring."""

    resumable = True
    """Whether a cut run continues from its checkpoint (``evoboard resume``)."""

    def __init__(self, parts: Parts, resolved: ResolvedSpec, records: Records, backend: Backend, hooks: list[Hook]):
        self.parts, self.resolved, self.spec = parts, resolved, resolved.spec
        self.task, self.algorithm, self.encoding = parts.task, parts.algorithm, parts.encoding
        self.records, self.backend, self.hooks = records, backend, hooks

    def run(self) -> dict[str, Any]:
        """Every remaining generation, then the final scoring; returns the leaderboard row."""
        raise NotImplementedError

    def clock(self) -> float:
        """Seconds on the phase clock, read once the run's device has finished its queued work (CUDA)."""
        return clock(self.parts.device)

    def held_out(self) -> list[int]:
        return episode_seeds(self.spec.seed, TEST, 0, self.resolved.runner.eval_episodes)

    def conclude(self, act: Act, best: tuple[int, ...], params=None, **columns: Any) -> dict[str, Any]:
        """Score ``act`` (the elite, whose weights ``params`` are saved) on held-out episodes; keep its row once."""
        started = time.perf_counter()
        score, final = self.task.final_score(act, self.held_out())
        for hook in self.hooks:
            hook.after_scoring()
        return self.records.finish(score, final, started, best, params, **columns)


class Search(Loop):
    """An ask/tell search (GA, ES, SNES, random search): ask, decode, evaluate, tell, crown, log, checkpoint."""

    def run(self) -> dict[str, Any]:
        while self.records.state.generation < self.spec.generations:
            self.step()
        best = self.algorithm.best(self.records.state)
        params = self.algorithm.decode(self.encoding, [best], self.records.state)
        return self.conclude(PopulationActor(self.parts.policy, params, self.parts.device), best, params)

    def step(self) -> dict[str, Any]:
        """One generation; its history row."""
        records, algorithm = self.records, self.algorithm
        gen, t0 = records.state.generation, self.clock()
        parent = records.state.best  # the last crowned elite
        genomes, state = algorithm.ask(records.state)
        t1 = self.clock()
        seeds = episode_seeds(self.spec.seed, TRAIN, gen, self.resolved.task.episodes)
        # Parents beside their children on the same episodes, for the mutation effects. Evaluated first: their
        # rows are still in the encoding's two-decode cache, and decoding them after the population would evict
        # the population, which holds the next generation's parents (they would replay from their seeds).
        references = algorithm.references(state)
        extra = [self.backend.evaluate(references, state, seeds, records.elite_trace)[0]] if references else []
        ev, decode_s = self.backend.evaluate(genomes, state, seeds, records.elite_trace)
        t2 = t1 + decode_s  # the references' time counts as evaluation, as the population's does
        fitness = self.checked(ev, gen, len(genomes))  # failed members: -inf, as tell sees them
        reference_fitness = finite_fitness(extra[0].fitness) if extra else np.zeros(0)
        metrics = algorithm.metrics(state, genomes, fitness, references, reference_fitness)
        t3 = self.clock()
        state = algorithm.tell(state, genomes, fitness)
        t4 = self.clock()
        candidates, crowned = algorithm.candidates(state), ev
        if candidates:  # the elite re-evaluated on episodes of its own before it is crowned (Such et al. 2017)
            seeds = episode_seeds(self.spec.seed, ELITE, gen, algorithm.reevaluation_episodes)
            reevaluated = crowned = self.backend.evaluate(candidates, state, seeds)[0]
            extra.append(reevaluated)
            state = algorithm.crown(state, candidates, reevaluated.fitness)
        t5 = self.clock()

        records.state = state
        if crowned.best_trace is not None:  # the crowned elite's first (re-)evaluation episode: its own trace
            records.elite_trace = crowned.best_trace
        times = {"t_ask": t1 - t0, "t_decode": t2 - t1, "t_evaluate": t3 - t2, "t_tell": t4 - t3, "t_elite": t5 - t4}
        done = Generation(gen, genomes, fitness, parent, records.folder.path, self.held_out())
        for hook in self.hooks:  # the normalizer's statistics, child ensembles' columns
            metrics = {**metrics, **(hook.after_generation(done) or {})}
        return records.generation(gen, t0, fitness, state.best_fitness, [ev, *extra], times, metrics)

    def checked(self, ev: Evaluation, gen: int, members: int) -> np.ndarray:
        """The population's fitness; RunFailed when more than half of the members failed."""
        if ev.failed.sum() > members / 2:
            raise RunFailed(
                f"generation {gen}: {int(ev.failed.sum())} of {members} members failed (first: {ev.failure}); "
                f"stopped with the checkpoint of generation {gen - 1} intact in {self.records.folder.path}"
            )
        if ev.failed.any():
            log.warning("generation %d: %d members failed, fitness -inf (first: %s)", gen, ev.failed.sum(), ev.failure)
        return finite_fitness(ev.fitness)


class Trainer(Loop):
    """A direct trainer instead of ask/tell: the gradient reference (``adam``) or RSO.

    Each generation takes the trainer's steps (adam: as many as evolution evaluates members,
    P x episodes minibatches; rso: one cycle), on minibatches drawn from the same episode seeds,
    and logs the same history. Adam steps on ``task.loss``; RSO scores its candidates with
    ``task.evaluate``. The trained weights are not a seed chain, so they are not checkpointed.
    """

    resumable = False

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.objective = self.algorithm.objective(self.task)
        """What the trainer scores on."""

    def run(self) -> dict[str, Any]:
        records, spec = self.records, self.spec
        trainer = self.algorithm.trainer(self.encoding, self.parts.policy, spec.seed)
        steps = self.algorithm.steps_per_generation(self.resolved.task.episodes)
        while records.state.generation < spec.generations:
            gen, t0 = records.state.generation, self.clock()
            evaluations = [trainer.step(self.objective, seed) for seed in episode_seeds(spec.seed, TRAIN, gen, steps)]
            fitness = finite_fitness([float(e.fitness[0]) for e in evaluations])
            records.state = self.algorithm.advance(records.state, fitness)
            records.generation(gen, t0, fitness, fitness[-1], evaluations, {"t_evaluate": self.clock() - t0})
        params = trainer.params()
        actor = PopulationActor(self.parts.policy, params, self.parts.device)
        return self.conclude(actor, (), params, genome_bytes=4 * self.encoding.search_dims)  # float32 weights


class Counter(Loop):
    """A count model (unigram, bigram) instead of a search: fit once on the training split, scored as a run.

    History has one row, generation 0, whose fitness is the model's fit on the training split
    (minus nats per character) and whose frames are 0: counting scores no windows. The
    leaderboard row's frames are the validation characters ``final_score`` scores.
    """

    def __init__(self, *args: Any):
        super().__init__(*args)
        fit_start = time.perf_counter()
        self.counts = self.algorithm.fit(self.task)
        self.fit_s = time.perf_counter() - fit_start

    def run(self) -> dict[str, Any]:
        records = self.records
        if records.state.generation == 0:
            fitness = np.array([self.counts.train_fitness])
            records.state = self.algorithm.advance(records.state, fitness)
            nothing = Evaluation.scored(fitness[:, None], items=0, forwards=0)
            started = time.perf_counter() - self.fit_s
            records.generation(0, started, fitness, fitness[0], [nothing], {"t_evaluate": self.fit_s})
        size = self.counts.log_probs.numel()  # the count table is the model: float32 log probabilities
        return self.conclude(self.counts.act, (), search_dims=size, genome_bytes=4 * size)


def loop_for(algorithm: Algorithm) -> type[Loop]:
    """The loop of ``algorithm``'s kind."""
    if isinstance(algorithm, DirectTrainer):
        return Trainer
    if isinstance(algorithm, CountModel):
        return Counter
    return Search
