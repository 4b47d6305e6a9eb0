"""Multi-worker benchmark (not a test): env steps/s of every backend against the raw one-core env, and the wire.

    python -m evoboard.suite.speed.parallel [--task HalfCheetah-v5] [--population 64] [--generations 3] [--workers 1,2]
                                   [--backends processes,ray]

Runs the same spec and seed with the local backend, and with the process and Ray backends at
each worker count (Ray on one local instance, 127.0.0.1 only, with as many CPUs as the most
workers), alternating with the raw env (gymnasium's SyncVectorEnv with random actions, P envs,
one process) so every figure sees the same machine load, and reports:

- bytes sent per member per generation: the pickled requests the driver sends (genomes as
  references to parents the worker holds, plus per-shard episode seeds and elite trace) and their
  genome part alone, against the full seed chains and the dense float32 parameters of one member;
- bytes received per member per generation (fitness, returns, steps, cut and failure flags);
- env steps/s over the evaluation phases (decode, population, elite candidates), and whether the
  run's result (best fitness, final score, frames) equals the local backend's;
- the ratio of each to the raw one-core env (``vs_raw``) and to the local backend (``vs_local``).

Writes ``results/parallel.csv`` and prints a table. The runs themselves go to a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import pandas as pd
import torch

from evoboard.suite.publish import machine, publish
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.speed.raw import raw_gym

RESULT_KEYS = ("best_fitness", "final_score", "frames", "member_forwards")


def dense_parameter_bytes(run: Run) -> int:
    """Bytes of one member's policy as dense float32 weights and biases (what the genome stands for)."""
    return 4 * sum(math.prod(t.shape) for layer in run.policy.layers for t in layer.tensors())


def measure(spec: RunSpec, out: Path) -> tuple[dict, Run, float]:
    """Run ``spec``; returns its leaderboard row, the finished Run and the seconds building it took (workers)."""
    t0 = time.perf_counter()
    run = Run(resolve(spec), out)
    startup = time.perf_counter() - t0
    row = run.run()
    return row, run, startup


def summarise(name: str, workers: int, row: dict, run: Run, startup: float, reference: dict | None) -> dict:
    """One line of the table: throughput of the evaluation phases and, for multi-worker backends, the traffic."""
    history = pd.DataFrame(run.history)
    eval_s = float((history["t_decode"] + history["t_evaluate"] + history["t_elite"]).sum())
    steps = int(history["frames"].sum())
    line = {
        "backend": name,
        "workers": workers,
        "task": run.spec.task,
        "population": run.spec.population,
        "generations": run.spec.generations,
        "startup_s": round(startup, 2),
        "env_steps": steps,
        "eval_s": round(eval_s, 2),
        "steps_per_s": round(steps / eval_s, 1),
        "dense_param_bytes": dense_parameter_bytes(run),
        "same_result": reference is None or all(row[k] == reference[k] for k in RESULT_KEYS),
    }
    traffic = pd.DataFrame(getattr(run.backend, "traffic", []))
    if len(traffic):
        generations = run.spec.generations
        members = run.spec.population * generations  # per member per generation: the population's members
        per = {  # every evaluation of a generation (population and elite candidates) counts toward its bytes
            "sent_bytes_per_member": traffic["request_bytes"].sum() / members,
            "genome_bytes_per_member": traffic["genome_bytes"].sum() / members,
            "chain_bytes_per_member": traffic["chain_bytes"].sum() / members,
            "received_bytes_per_member": traffic["reply_bytes"].sum() / members,
        }
        last = traffic[traffic["evaluation"] >= traffic["evaluation"].max() - 1]  # the last generation
        per["last_gen_genome_bytes_per_member"] = last["genome_bytes"].sum() / run.spec.population
        per["last_gen_chain_bytes_per_member"] = last["chain_bytes"].sum() / run.spec.population
        line.update({k: round(v, 1) for k, v in per.items()})
    return line


SETTING = {"processes": "processes", "ray": "ray_actors"}
"""Each multi-worker backend's setting for its number of workers."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="HalfCheetah-v5")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--backends", default="processes,ray", help="comma-separated multi-worker backends")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each backend, alternated; medians reported")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    counts = [int(a) for a in args.workers.split(",")]
    backends = args.backends.split(",")
    base = {"task": args.task, "population": args.population, "generations": args.generations, "seed": args.seed}
    configs = [("local", 0, RunSpec(**base, device="cpu"))]
    for name in backends:
        configs += [(name, n, RunSpec(**base, device="cpu", backend=name, settings={SETTING[name]: n})) for n in counts]
    raw_steps = gym.spec(args.task).max_episode_steps or 1000
    lines, raws, reference = [], [], None
    torch.set_num_threads(1)  # the runs' own setting (threads=1), for the raw env in this process too
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        ray_start = float("nan")
        if "ray" in backends:
            import ray

            from evoboard.suite.backends.ray_actors import start_local

            t0 = time.perf_counter()
            start_local(max(counts))  # one instance for every Ray run; its start-up is reported apart
            ray_start = time.perf_counter() - t0
            stack.callback(ray.shutdown)
        for repeat in range(args.repeats):  # alternate, so every backend sees the same machine load
            raws.append(raw_gym(args.task, args.population, raw_steps))
            for name, n, spec in configs:
                row, run, startup = measure(spec, Path(tmp) / f"{name}{n}-{repeat}")
                reference = reference or row
                line = summarise(name, n, row, run, startup, reference)
                lines.append({**line, "repeat": repeat, "load_avg_1m": round(os.getloadavg()[0], 2)})
    runs = pd.DataFrame(lines)
    by = ["backend", "workers"]
    table = runs.groupby(by, sort=False).last().reset_index()  # traffic and results repeat exactly
    table["steps_per_s"] = runs.groupby(by, sort=False)["steps_per_s"].median().round(1).to_numpy()
    table["steps_per_s_runs"] = (
        runs.groupby(by, sort=False)["steps_per_s"].agg(lambda v: " ".join(map(str, v))).to_numpy()
    )
    table["same_result"] = runs.groupby(by, sort=False)["same_result"].all().to_numpy()
    table["eval_s"] = runs.groupby(by, sort=False)["eval_s"].median().to_numpy()
    table["ray_start_s"] = [round(ray_start, 2) if b == "ray" else float("nan") for b in table["backend"]]
    table = table.drop(columns=["repeat"])
    raw = statistics.median(raws)
    local = table.loc[table["backend"] == "local", "steps_per_s"].iloc[0]
    at = table.columns.get_loc("steps_per_s") + 1
    table.insert(at, "vs_local", (table["steps_per_s"] / local).round(2))
    table.insert(at, "vs_raw", (table["steps_per_s"] / raw).round(2))
    table.insert(at, "raw_one_core_steps_per_s", round(raw, 1))
    table["machine"] = machine("cpu", 1)
    (csv,) = publish(args.out, "parallel", table)
    with pd.option_context("display.max_columns", None, "display.width", 250):
        print(table.drop(columns=["machine", "task", "steps_per_s_runs"]).to_string(index=False))
        print(runs[[*by, "repeat", "steps_per_s", "load_avg_1m"]].to_string(index=False))
        print("raw one-core steps/s per repeat:", " ".join(f"{r:.0f}" for r in raws))
    print(f"wrote {csv}")


if __name__ == "__main__":
    main()
