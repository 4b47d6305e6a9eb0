"""``python -m evoboard.suite.speed.overhead``: what a generation costs outside evaluation, and its checkpoint's size.

Issue #17: with the ES state in float64 lists and a 9 MB JSON checkpoint, ``openai-es`` on
charlm/pydoc spent ~0.7 s a generation outside evaluation. For GA, openai-es and snes this
times the runner's own phases (ask, decode, tell, checkpoint: history.csv, checkpoint.json and
the state tensors) of real generations played through ``Run.step``: the char-LM (117,608
parameters) and the Nature CNN on Pong (1.7M parameters, one whole episode per member), and the
checkpoint's bytes.
Medians over generations after the first; written through ``evoboard.suite.publish`` to
results/overhead.md and .csv.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import pandas as pd

from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.rundir import RunDir
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve

ALGORITHMS = ("ga", "openai-es", "snes")
MODELS = {"charlm (117k)": ("charlm/pydoc", {}), "nature_cnn (1.7M)": ("ALE/Pong-v5", {})}
"""Each model's task: a char-LM generation, and a Pong generation of whole episodes (one per member)."""
PHASES = ("t_ask", "t_decode", "t_tell", "t_checkpoint")


def built(task: str, settings: dict, algorithm: str, population: int, generations: int, out: Path) -> Run:
    spec = RunSpec(task, algorithm=algorithm, population=population, generations=generations, device="cpu",
                   settings=dict(settings))  # fmt: skip
    run = Run(resolve(spec), out)
    run.run_dir = RunDir(out / "runs" / f"{algorithm}-{task.replace('/', '-')}")
    run.run_dir.create(run.resolved.saved_spec())
    return run


def played(run: Run) -> dict[str, float]:
    """One real generation through the runner: its history row's phases."""
    row = run.step()
    return {**{k: row[k] for k in PHASES}, "t_evaluate": row["t_evaluate"], "wall_s": row["wall_s"]}


def measure(model: str, algorithm: str, population: int, generations: int, out: Path) -> dict:
    task, settings = MODELS[model]
    run = built(task, settings, algorithm, population, generations, out)
    try:
        rows = [played(run) for _ in range(generations)]
    finally:
        run.backend.close()
        run.task.close()
    steady = rows[1:] or rows
    med = {k: statistics.median(r[k] for r in steady) for k in steady[0]}
    outside = sum(med[k] for k in PHASES)
    folder = run.run_dir.path
    tensors = sum(p.stat().st_size for p in folder.glob("state-*.safetensors"))
    return {"model": model, "algorithm": algorithm, "params": run.encoding.search_dims, "population": population,
            **{k: round(med[k], 4) for k in PHASES}, "outside_s": round(outside, 4),
            "evaluate_s": round(med["t_evaluate"], 4), "outside_share": round(outside / med["wall_s"], 4),
            "checkpoint_json_bytes": (folder / "checkpoint.json").stat().st_size, "tensor_bytes": tensors}  # fmt: skip


def table(rows: list[dict]) -> str:
    header = ["model", "algorithm", "params", "P", "ask s", "decode s", "tell s", "checkpoint s", "outside s",
              "evaluate s", "outside / generation", "checkpoint.json", "state tensors"]  # fmt: skip
    cells = [[r["model"], r["algorithm"], f"{r['params']:,}", str(r["population"]), *(f"{r[k]:.4f}" for k in PHASES),
              f"{r['outside_s']:.4f}", f"{r['evaluate_s']:.3f}", f"{100 * r['outside_share']:.1f}%",
              f"{r['checkpoint_json_bytes'] / 1e3:.1f} kB", f"{r['tensor_bytes'] / 1e6:.2f} MB"]
             for r in rows]  # fmt: skip
    return markdown_table(header, cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=16, help="members per generation (char-LM)")
    parser.add_argument("--cnn-population", type=int, default=4, help="members per generation (Nature CNN)")
    parser.add_argument("--generations", type=int, default=4, help="generations timed (the first is dropped)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            population = args.population if model.startswith("charlm") else args.cnn_population
            for algorithm in ALGORITHMS:
                rows.append(measure(model, algorithm, population, args.generations, Path(tmp) / model))
    text = (
        "# Per-generation cost outside evaluation (#17)\n\n"
        f"Machine: {machine()}. `python -m evoboard.suite.speed.overhead --population {args.population} "
        f"--cnn-population {args.cnn_population} --generations {args.generations}`; medians over generations after "
        "the first, each played through `Run.step` (its history row's phases): charlm/pydoc, and Pong with one "
        "whole episode per member. *outside / generation* is outside over the generation's `wall_s`. *checkpoint* is "
        "history.csv + checkpoint.json + the state tensors; *outside* is ask + decode + tell + checkpoint.\n\n"
        + table(rows)
    )
    publish(args.out, "overhead", table=pd.DataFrame(rows), markdown=text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
