"""Speed benchmarks (not tests): print figures and write them to ``results/``.

    python -m suite.benchmarks throughput [--out results] [--repeats 5]

1. Member-forwards/s of the population-batched MLP (one stacked matmul per layer) against
   a Python loop over P separate torch modules, at P = 16, 64, 256.
2. Env steps/s of evoboard's population evaluation on HalfCheetah-v5 (P=64, one episode
   each, 1000 steps) against gymnasium's raw SyncVectorEnv with random actions, same envs.
Each pair is measured side by side, alternating, and reported as medians and their ratio,
once per torch thread count (``--threads 1,2``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

import envs
from agents import PopulationActor, make_policy
from agents.encodings import make as make_encoding
from envs.quiet import quiet_mujoco


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_medians(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time of a and b, run alternately so both see the same machine load."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(median_time(a, 1))
        tb.append(median_time(b, 1))
    return statistics.median(ta), statistics.median(tb)


def mlp_forward(population: int, repeats: int, calls: int = 200) -> dict:
    """Batched MLP vs a loop over per-member modules, HalfCheetah-sized (17-64-64-6), one obs each."""
    box = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
    policy = make_policy("mlp", gym.spaces.Box(-np.inf, np.inf, (17,)), box)
    params = make_encoding("dense", policy).decode([(s,) for s in range(population)])
    modules = [
        torch.nn.Sequential(
            torch.nn.Linear(17, 64),
            torch.nn.Tanh(),
            torch.nn.Linear(64, 64),
            torch.nn.Tanh(),
            torch.nn.Linear(64, 6),
            torch.nn.Tanh(),
        )  # fmt: skip
        for _ in range(population)
    ]
    obs = torch.randn(population, 17)

    def batched():
        with torch.inference_mode():
            for _ in range(calls):
                policy.act(params, obs)

    def loop():
        with torch.inference_mode():
            for _ in range(calls):
                torch.stack([m(obs[i : i + 1])[0] for i, m in enumerate(modules)])

    t_batched, t_loop = paired_medians(batched, loop, repeats)
    return {
        "benchmark": "mlp_forward",
        "population": population,
        "evoboard_per_s": population * calls / t_batched,
        "baseline_per_s": population * calls / t_loop,
        "baseline": "python loop over P torch modules",
        "unit": "member-forwards/s",
        "ratio": t_loop / t_batched,
    }


def env_throughput(task_id: str, population: int, repeats: int) -> dict:
    """evoboard evaluation vs raw SyncVectorEnv (random actions), one episode per env, env steps/s."""
    quiet_mujoco()
    task = envs.make(task_id)
    steps = task.max_steps
    raw = gym.vector.SyncVectorEnv(
        [lambda: gym.make(task_id, disable_env_checker=True) for _ in range(population)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    raw.action_space.seed(0)
    policy = make_policy("mlp", task.observation_space, task.action_space)
    params = make_encoding("dense", policy).decode([(s,) for s in range(population)])
    frames = {}

    def run_raw():
        raw.reset(seed=0)
        for _ in range(steps):
            raw.step(raw.action_space.sample())
        frames["raw"] = steps * population

    def run_evoboard():
        ev = task.evaluate(PopulationActor(policy, params, torch.device("cpu")), population, [0])
        frames["evoboard"] = ev.frames

    run_raw(), run_evoboard()  # warm up (env construction, allocator)
    t_raw, t_evo = paired_medians(run_raw, run_evoboard, repeats)
    task.close()
    raw.close()
    return {
        "benchmark": f"evaluate_{task_id}",
        "population": population,
        "evoboard_per_s": frames["evoboard"] / t_evo,
        "baseline_per_s": frames["raw"] / t_raw,
        "baseline": "gymnasium SyncVectorEnv, random actions",
        "unit": "env steps/s",
        "ratio": (frames["evoboard"] / t_evo) / (frames["raw"] / t_raw),
    }


def throughput(out: Path, repeats: int, threads: tuple[int, ...]) -> pd.DataFrame:
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        rows += [{**mlp_forward(p, repeats), "threads": n} for p in (16, 64, 256)]
        rows.append({**env_throughput("HalfCheetah-v5", 64, repeats), "threads": n})
    table = pd.DataFrame(rows)
    table["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, cpu"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "throughput_core.csv", index=False)
    lines = [
        "| benchmark | P | torch threads | evoboard | baseline | unit | ratio |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r.benchmark} | {r.population} | {r.threads} | {r.evoboard_per_s:,.0f} "
            f"| {r.baseline_per_s:,.0f} ({r.baseline}) | {r.unit} | {r.ratio:.2f}x |"
            for r in table.itertuples()
        ),
    ]
    (out / "throughput_core.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m suite.benchmarks")
    parser.add_argument("name", choices=["throughput"])
    parser.add_argument("--out", default="results", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to measure, comma-separated")
    args = parser.parse_args(argv)
    throughput(args.out, args.repeats, tuple(int(t) for t in args.threads.split(",")))


if __name__ == "__main__":
    main()
