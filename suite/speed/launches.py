"""``evoboard bench launches``: tensor ops per generation for each encoding and algorithm, flat in P or not.

On a GPU every tensor op is at least one kernel launch (~5-10 us of CPU each), so a decode that
loops over members or seeds costs launches that grow with P. This counts, with torch's profiler
on the CPU, the top-level ``aten::`` ops one generation issues (an op called inside another op is
part of it, not counted again), as the runner issues them: ask, decode the population, decode
the parents beside it (GA's mutation effects), tell, decode the elite candidates and crown
them. Phase ``decode`` sums the three decodes; ``tell`` includes the crowning; ``ask`` appears
only where it does tensor work. Fitness is drawn at random: no task is evaluated. The policy
is the char-LM transformer (charlm/pydoc, its default size). Counts, not times: the figures are
the same on any machine with the same torch.

Writes ``<out>/launches.csv`` (encoding, algorithm, population, phase, ops) and ``launches.md``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from torch.profiler import ProfilerActivity, profile

from evoboard import envs
from evoboard.agents import make_policy
from evoboard.agents.algorithms import make as make_algorithm
from evoboard.agents.algorithms.base import VectorSearch
from evoboard.agents.encodings import ENCODINGS as ENCODING_REGISTRY
from evoboard.agents.encodings import make as make_encoding
from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.settings import build_options

POPULATIONS = (16, 64, 256)
ENCODINGS = ("dense", "lowrank", "lowrank-perturb", "sparse")
ALGORITHMS = ("ga", "openai-es", "snes")
WARMUP = 2
"""Generations run before the counted one, so a GA's decode is a steady one (parents cached)."""


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Standard error (file descriptor 2) to /dev/null: the profiler's C++ side logs two lines a session."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def top_level_ops(fn: Callable[[], object]) -> int:
    """Top-level ``aten::`` ops ``fn`` issues, by torch's profiler (nested ops belong to their caller)."""
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    count = 0
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        count += parent is None
    return count


class Counter:
    """Ops per phase: ``phase(name, fn)`` runs fn, counting its ops when ``on``."""

    def __init__(self):
        self.on, self.ops = False, {}

    def phase(self, name: str, fn: Callable[[], object]) -> object:
        if not self.on:
            return fn()
        out = []
        self.ops[name] = self.ops.get(name, 0) + top_level_ops(lambda: out.append(fn()))
        return out[0]


def generation_ops(
    policy, encoding: str, algorithm: str, population: int, settings: dict | None = None, seed: int = 0
) -> dict[str, int] | None:
    """Ops per phase of generation ``WARMUP`` of ``algorithm`` over ``encoding`` (with the encoding's
    ``settings``); None where the algorithm refuses the encoding."""
    cls = ENCODING_REGISTRY.get(encoding)
    enc = make_encoding(encoding, policy, build_options(cls.Options, settings or {}))
    algo = make_algorithm(algorithm, population)
    if isinstance(algo, VectorSearch):
        try:
            algo.bind(enc)
        except ValueError:
            return None
    state = algo.init(seed)
    rng = np.random.default_rng(seed)
    counter = Counter()
    for gen in range(WARMUP + 1):
        counter.on = gen == WARMUP
        genomes, state = counter.phase("ask", lambda state=state: algo.ask(state))
        counter.phase("decode", lambda g=genomes, s=state: algo.decode(enc, g, s))
        references = algo.references(state)
        if references:
            counter.phase("decode", lambda r=references, s=state: algo.decode(enc, r, s))
        fitness = rng.normal(size=len(genomes))
        state = counter.phase("tell", lambda g=genomes, s=state, f=fitness: algo.tell(s, g, f))
        candidates = algo.candidates(state)
        if candidates:
            counter.phase("decode", lambda c=candidates, s=state: algo.decode(enc, c, s))
            extra = rng.normal(size=len(candidates))
            state = counter.phase("tell", lambda c=candidates, s=state, f=extra: algo.crown(s, c, f))
    return counter.ops


def char_transformer():
    """The char-LM task's default policy (charlm/pydoc)."""
    task = envs.make("charlm/pydoc")
    with contextlib.closing(task):
        return make_policy(task.default_policy, task.observation_space, task.action_space)


def run(out: Path, populations: tuple[int, ...] = POPULATIONS) -> pd.DataFrame:
    """Count every (encoding, algorithm, P); write ``launches.csv`` and ``launches.md`` under ``out``."""
    policy = char_transformer()
    rows, skipped = [], []
    for encoding in ENCODINGS:
        for algorithm in ALGORITHMS:
            for population in populations:
                ops = generation_ops(policy, encoding, algorithm, population)
                if ops is None:
                    skipped.append(f"{encoding} under {algorithm}")
                    break
                for phase in ("ask", "decode", "tell"):
                    if phase != "ask" or ops.get(phase):
                        rows.append((encoding, algorithm, population, phase, ops.get(phase, 0)))
    table = pd.DataFrame(rows, columns=["encoding", "algorithm", "population", "phase", "ops"])
    publish(out, "launches", table, report(table, skipped, populations))
    return table


def report(table: pd.DataFrame, skipped: list[str], populations: tuple[int, ...]) -> str:
    """Ops per generation by (encoding, algorithm) and P, and the largest P's count over the smallest's."""
    per_generation = table.groupby(["encoding", "algorithm", "population"], sort=False)["ops"].sum()
    lo, hi = populations[0], populations[-1]
    cells = []
    for (encoding, algorithm), counts in per_generation.groupby(level=[0, 1], sort=False):
        by_p = counts.droplevel([0, 1])
        cells.append([encoding, algorithm, *(str(int(by_p[p])) for p in populations), f"{by_p[hi] / by_p[lo]:.2f}"])
    header = ["encoding", "algorithm", *(f"P={p}" for p in populations), f"P={hi} / P={lo}"]
    lines = [
        "# Tensor ops per generation",
        "",
        "Top-level `aten::` ops of one steady generation (the third), counted by torch's profiler on the CPU:",
        "ask, the decodes of the population, of the GA's parents beside it and of its elite candidates, tell",
        "and crown, on the char-LM transformer (charlm/pydoc). On a GPU each is at least one kernel launch.",
        "",
        markdown_table(header, cells),
        f"Not run (the algorithm refuses the encoding): {', '.join(skipped) or 'none'}.",
        "",
        f"Measured on {machine()}. Command: `evoboard bench launches --out results`.",
        "",
    ]
    return "\n".join(lines)
