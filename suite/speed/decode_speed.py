"""Decode time of a steady GA generation, this checkout against another one, side by side.

    python -m evoboard.suite.speed.decode_speed --against DIR [--out results] [--population 64]

``DIR`` is an importable copy of another evoboard (a folder holding ``evoboard/`` with its
``suite``, ``envs`` and ``agents`` inside, e.g. ``git archive <sha>`` unpacked and linked so);
each measurement runs in a fresh process (one torch thread, glibc malloc keeping freed memory as
the CLI sets it, ``suite/allocator.py``) with this file's timing code (CPU time: on a shared machine
wall time counts other jobs' turns too) and
either version's encodings, the two versions alternating, and the median of each is reported.
A generation is the GA's: an elite plus P - 1 children of the first T = P / 4 members of the
population before, so parents come from the decode cache (lowrank-perturb folds them then).
Writes ``<out>/decode_speed.csv`` and ``decode_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TASKS = {"charlm/pydoc": "char-LM transformer", "ALE/Pong-v5": "Pong, Nature CNN"}
ENCODINGS = ("dense", "lowrank", "lowrank-perturb", "sparse")
GENERATIONS = 6
"""Decoded per process; the first (it folds the inits, nothing later does) is not timed."""


def steady_decode_seconds(task_id: str, encoding: str, population: int, generations: int = GENERATIONS) -> list[float]:
    """CPU seconds of each steady generation's decode (generations 2..) on the CPU, one torch thread."""
    import torch

    from evoboard import envs
    from evoboard.agents import make_policy
    from evoboard.agents.encodings import make

    try:  # as a run does (the CLI keeps freed memory mapped): both versions alike
        from evoboard.suite.allocator import keep_freed_memory

        keep_freed_memory()
    except ImportError:
        pass
    torch.set_num_threads(1)
    task = envs.make(task_id)
    policy = make_policy(task.default_policy, task.observation_space, task.action_space)
    task.close()
    enc = make(encoding, policy)
    parents = population // 4
    genomes = [(s,) for s in range(population)]
    enc.decode(genomes)
    seconds = []
    for gen in range(1, generations + 1):
        children = [(*genomes[i % parents], 10_000 * gen + i) for i in range(population - 1)]
        genomes = [genomes[0], *children]
        t0 = time.process_time()  # CPU time: on a shared machine, wall time also counts others' turns
        enc.decode(genomes)
        seconds.append(time.process_time() - t0)
    return seconds[1:]  # generation 1 folds inits nothing else does: left out


def measure(root: Path | None, task_id: str, encoding: str, population: int) -> list[float]:
    """``steady_decode_seconds`` in a fresh process, importing evoboard from ``root`` (None: this checkout)."""
    env = dict(os.environ)
    if root is not None:
        env["PYTHONPATH"] = str(root)
    code = (
        "import importlib.util, json, sys; "
        f"spec = importlib.util.spec_from_file_location('decode_speed', {str(Path(__file__))!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        f"print(json.dumps(m.steady_decode_seconds({task_id!r}, {encoding!r}, {population})))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="an importable copy of another evoboard")
    parser.add_argument("--label", default="before", help="what to call the other version in the table")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two versions")
    args = parser.parse_args(argv)

    import pandas as pd

    from evoboard.suite.publish import machine, markdown_table, publish

    rows = []
    for task_id in TASKS:
        for encoding in ENCODINGS:
            times: dict[str, list[float]] = {args.label: [], "this": []}
            for _ in range(args.rounds):
                times[args.label] += measure(args.against, task_id, encoding, args.population)
                times["this"] += measure(None, task_id, encoding, args.population)
            before, after = (statistics.median(times[k]) for k in (args.label, "this"))
            rows.append((task_id, encoding, args.population, before, after, after / before))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows, columns=["task", "encoding", "population", "before_s", "after_s", "after_over_before"])
    cells = [[TASKS[t], e, str(p), f"{b * 1e3:.1f}", f"{a * 1e3:.1f}", f"{r:.2f}"] for t, e, p, b, a, r in rows]
    header = ["policy", "encoding", "P", f"{args.label} CPU ms", "this CPU ms", "this / before"]
    markdown = "\n".join(
        [
            "# Decode time of a steady GA generation, side by side",
            "",
            f"Median CPU time (process time, one torch thread) of {args.rounds * (GENERATIONS - 1)} generations per "
            f"cell, each version in {args.rounds} fresh processes, the versions alternating.",
            "",
            markdown_table(header, cells),
            f"Measured on {machine(threads=1)}, other jobs running (a shared machine: ratios, not absolute times).",
            "",
        ]
    )
    publish(args.out, "decode_speed", table, markdown)


if __name__ == "__main__":
    main()
