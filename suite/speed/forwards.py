"""Forward-pass speed benchmarks (not tests): print figures and write them to ``results/``.

    python -m evoboard.suite.speed.forwards mlp [--out results] [--repeats 5] [--threads 1,2]
    python -m evoboard.suite.speed.forwards encodings [--out results] [--repeats 5]
    python -m evoboard.suite.speed.forwards charlm [--out results] [--repeats 5]
    python -m evoboard.suite.speed.forwards cnn [--out results] [--repeats 5]

1. (mlp) Member-forwards/s of the population-batched MLP (one stacked matmul per layer) against
   a Python loop over P separate torch modules, at P = 16, 64, 256, once per torch thread count
   (``--threads``). Env steps/s against the raw vector env are ``evoboard bench throughput``'s.
2. (encodings) Member-forwards/s of each encoding's population forward at P = 64 and 256, on
   a 512-wide linear layer and on the Nature CNN (Pong frames), against one shared forward
   (one weight for every member: the floor any per-member form pays for). Children all descend
   from one parent, as in an ES; a GA with T parents sits between.
3. (charlm) Tokens/s of the char transformer's population forward (P distinct members, 32
   windows of 64 characters each) against one shared-weight forward over the same total batch,
   at P = 16, 64, 256, with each configuration's peak resident memory (its own subprocess).
4. (cnn) One step of Pong's Nature CNN for P=32 children of one parent per encoding, in fp32 and
   bf16 (``--set dtype=bfloat16``), against the parent's network on all 32 frames, with each layer's
   form and time (the shared forms of ``sparse_layers`` and ``perturbed_layers`` show here).
Each pair is measured side by side, alternating, and reported as medians and their ratio.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from evoboard.agents import make_policy
from evoboard.agents.encodings import make as make_encoding
from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.speed.harness import median_time, paired_medians


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

    times = paired_medians(batched, loop, repeats)
    return {
        "benchmark": "mlp_forward",
        "population": population,
        "evoboard_per_s": population * calls / times.a,
        "baseline_per_s": population * calls / times.b,
        "baseline": "python loop over P torch modules",
        "unit": "member-forwards/s",
        "ratio": times.ratio,
    }


def mlp(out: Path, repeats: int, threads: tuple[int, ...]) -> pd.DataFrame:
    """``mlp_forward`` at P = 16, 64, 256 for each torch thread count; writes ``mlp_forward.{csv,md}``."""
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        rows += [{**mlp_forward(p, repeats), "threads": n} for p in (16, 64, 256)]
    table = pd.DataFrame(rows)
    table["machine"] = machine("cpu", threads)
    rows = [[r.benchmark, str(r.population), str(r.threads), f"{r.evoboard_per_s:,.0f}",
             f"{r.baseline_per_s:,.0f} ({r.baseline})", r.unit, f"{r.ratio:.2f}x"]
            for r in table.itertuples()]  # fmt: skip
    header = ["benchmark", "P", "torch threads", "evoboard", "baseline", "unit", "ratio"]
    publish(out, "mlp_forward", table, markdown_table(header, rows))
    return table


ENCODING_SETTINGS = [
    ("dense", {}),
    ("lowrank", {"rank": 1}),
    ("lowrank", {"rank": 4}),
    ("lowrank", {"rank": 16}),
    ("lowrank-perturb", {"perturb_rank": 1, "shared_min": 0}),
    ("lowrank-perturb", {"perturb_rank": 4, "shared_min": 0}),
    ("lowrank-perturb", {"perturb_rank": 16, "shared_min": 0}),
    ("sparse", {"density": 0.01}),
]


@dataclass
class OneLayer:
    """A stand-in policy of one layer, enough for an encoding to lay out and decode it."""

    layers: tuple


def layer_forward(layer, params, x: torch.Tensor) -> torch.Tensor:
    """One layer's population forward through its parameter form: x (P, N, ...)."""
    return params.linear(x) if layer.kind == "linear" else params.conv2d(x)


def shared_forward(layer, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The same layer with one weight for every member: all P*N inputs in one call."""
    if layer.kind == "linear":
        return x.reshape(-1, x.shape[-1]) @ weight.T
    return torch.nn.functional.conv2d(x.reshape(-1, *x.shape[2:]), weight, stride=layer.stride)


def repeated(fn: Callable[[], object], calls: int) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                fn()

    return run


def encoding_forwards(population: int, repeats: int, calls: int) -> list[dict]:
    """Population forward of one layer per encoding vs one shared forward, member-forwards/s."""
    from evoboard.agents.encodings import ENCODINGS
    from evoboard.agents.layers import LayerSpec
    from evoboard.suite.settings import build_options

    cases = {
        "linear 512x512": (LayerSpec("fc", "linear", 512, 512), (population, 1, 512)),
        "Nature CNN conv1 (4->32, 8x8/4, 84x84)": (
            LayerSpec("conv", "conv2d", 4, 32, kernel=8, stride=4),
            (population, 1, 4, 84, 84),
        ),
    }
    rows = []
    for case, (layer, shape) in cases.items():
        x = torch.randn(*shape)
        genomes = [(0, 1000 + i) for i in range(population)]  # every child of one parent
        weight = torch.randn(*layer.weight_shape) / layer.fan_in**0.5

        shared = repeated(functools.partial(shared_forward, layer, weight, x), calls)

        for name, settings in ENCODING_SETTINGS:
            cls = ENCODINGS.get(name)
            encoding = cls(OneLayer((layer,)), build_options(cls.Options, settings), torch.device("cpu"))
            params = encoding.decode(genomes)[layer.name]

            population_forward = repeated(functools.partial(layer_forward, layer, params, x), calls)
            times = paired_medians(population_forward, shared, repeats)
            label = name + "".join(f" {k}={v}" for k, v in settings.items() if k != "shared_min")
            rows.append(
                {
                    "benchmark": f"encoding_forward {case}",
                    "population": population,
                    "encoding": label,
                    "search_dims": encoding.search_dims,
                    "evoboard_per_s": population * calls / times.a,
                    "baseline_per_s": population * calls / times.b,
                    "baseline": "one shared forward",
                    "unit": "member-forwards/s",
                    "ratio": times.ratio,
                }
            )
    return rows


def encodings(out: Path, repeats: int) -> pd.DataFrame:
    torch.set_num_threads(1)
    rows = []
    for population, calls in ((64, 20), (256, 5)):
        rows += encoding_forwards(population, repeats, calls)
    table = pd.DataFrame(rows)
    dense = table[table["encoding"] == "dense"].set_index(["benchmark", "population"])["evoboard_per_s"]
    table["vs_dense"] = [r.evoboard_per_s / dense[(r.benchmark, r.population)] for r in table.itertuples()]
    table["machine"] = machine("cpu", 1)
    rows = [[r.benchmark.removeprefix("encoding_forward "), str(r.population), r.encoding, f"{r.search_dims:,}",
             f"{r.evoboard_per_s:,.0f}", f"{r.baseline_per_s:,.0f}", f"{r.ratio:.2f}x", f"{r.vs_dense:.1f}x"]
            for r in table.itertuples()]  # fmt: skip
    header = [
        "layer",
        "P",
        "encoding",
        "search dims",
        "member-forwards/s",
        "shared forward /s",
        "vs shared",
        "vs dense",
    ]
    publish(out, "encodings_forward", table, markdown_table(header, rows))
    return table


CNN_SETTINGS = [
    ("dense", {}),
    ("lowrank", {"rank": 4}),
    ("lowrank-perturb", {"perturb_rank": 4}),
    ("sparse", {"density": 0.01}),
    ("sparse", {"density": 0.1}),
]


def shared_cnn(policy, weights: dict, obs: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The Nature CNN with one member's (weight, bias) by layer for all frames obs (P, C, H, W): plain torch calls."""
    x = obs.to(dtype) / 255
    for layer in policy.layers:
        w, b = weights[layer.name]
        if layer.kind == "conv2d":
            x = torch.relu(torch.nn.functional.conv2d(x, w, b, stride=layer.stride))
        else:
            x = torch.nn.functional.linear(x.flatten(1), w, b)
            x = torch.relu(x) if layer.name != "out" else x
    return x


def cnn_forward(name: str, settings: dict, dtype: str, population: int, repeats: int, calls: int = 10) -> dict:
    """One step of Pong's Nature CNN for ``population`` children of one parent, and each layer's share, in ms."""
    from evoboard.agents.cnn import DTYPES, CNNOptions
    from evoboard.agents.layers import conv2d, linear
    from evoboard.suite.settings import build_options

    screen = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    policy = make_policy("nature_cnn", screen, gym.spaces.Discrete(6), CNNOptions(dtype=dtype))
    cls = make_encoding(name, policy).__class__
    encoding = make_encoding(name, policy, build_options(cls.Options, settings), "cpu")
    encoding.decode([(0,)])
    params = encoding.decode([(0, 1000 + i) for i in range(population)])  # (P, ...) children of one parent
    obs = torch.randint(0, 255, (population, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    one = encoding.decode([(0,)])  # the parent alone: the shared-weight floor, all P frames through one network
    dense = {k: v.materialize() for k, v in one.items()}
    weights = {k: (v.weight[0].to(DTYPES[dtype]), v.bias[0].to(DTYPES[dtype])) for k, v in dense.items()}
    step = median_time(repeated(lambda: policy.act(params, obs), calls), repeats) / calls
    floor = median_time(repeated(lambda: shared_cnn(policy, weights, obs, DTYPES[dtype]), calls), repeats) / calls
    layers, x = {}, (obs.unsqueeze(1).float() / 255).to(DTYPES[dtype])
    cast = params.cast(DTYPES[dtype])
    with torch.inference_mode():
        for layer in policy.layers:
            x = x.flatten(2) if layer.kind == "linear" and x.dim() > 3 else x
            form, inputs = cast[layer.name], x
            apply = conv2d if layer.kind == "conv2d" else linear
            seconds = median_time(repeated(lambda f=form, i=inputs, a=apply: a(i, f), calls), repeats) / calls
            layers[layer.name] = f"{type(form).__name__} {1e3 * seconds:.2f}"
            x = torch.relu(apply(x, form))
    label = name + "".join(f" {k}={v}" for k, v in settings.items())
    return {"benchmark": "cnn_forward", "population": population, "encoding": label, "dtype": dtype,
            "step_ms": 1e3 * step, "shared_ms": 1e3 * floor, "vs_shared": floor / step, **layers}  # fmt: skip


def cnn(out: Path, repeats: int, population: int = 32) -> pd.DataFrame:
    """``cnn_forward`` of every encoding in fp32 and bf16 at one torch thread; writes ``cnn_forward.{csv,md}``."""
    torch.set_num_threads(1)
    rows = [cnn_forward(n, s, d, population, repeats) for d in ("float32", "bfloat16") for n, s in CNN_SETTINGS]
    table = pd.DataFrame(rows)
    table["machine"] = machine("cpu", 1)
    names = ["conv0", "conv1", "conv2", "fc", "out"]
    header = ["encoding", "dtype", "P", "step ms", "shared-weight ms", "vs shared", *[f"{n}: form ms" for n in names]]
    cells = [[r["encoding"], r["dtype"], str(r["population"]), f"{r['step_ms']:.2f}", f"{r['shared_ms']:.2f}",
              f"{r['vs_shared']:.2f}x", *[r[n] for n in names]] for r in rows]  # fmt: skip
    publish(out, "cnn_forward", table, markdown_table(header, cells))
    return table


def charlm_one(population: int, shared: bool, repeats: int, windows: int = 32) -> dict:
    """Tokens/s of one char-transformer forward configuration; run in a fresh process for its peak RSS."""
    import resource

    from evoboard import envs

    torch.set_num_threads(1)
    task = envs.make("charlm/pydoc")
    policy = make_policy("char_transformer", task.observation_space, task.action_space)
    members = 1 if shared else population
    params = make_encoding("dense", policy).decode([(s,) for s in range(members)])
    inputs, _ = task.windows(0)
    batch = inputs[:windows].repeat(population if shared else 1, 1)  # shared: all P*B windows for one member
    tokens = batch.unsqueeze(0).expand(members, *batch.shape)  # (members, B', T), a view

    def forward():
        with torch.inference_mode():
            policy.act(params, tokens)

    forward()
    seconds = median_time(forward, repeats)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"tokens_per_s": population * windows * inputs.shape[1] / seconds, "peak_mib": peak_kib / 1024}


def charlm(out: Path, repeats: int) -> pd.DataFrame:
    import json
    import subprocess
    import sys

    rows = []
    for population in (16, 64, 256):
        measured = {}
        for shared in (False, True):
            call = f"charlm_one({population}, {shared}, {repeats})"
            code = f"import json; from evoboard.suite.speed.forwards import charlm_one; print(json.dumps({call}))"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            measured[shared] = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append({
            "benchmark": "charlm_forward", "population": population,
            "evoboard_per_s": measured[False]["tokens_per_s"], "baseline_per_s": measured[True]["tokens_per_s"],
            "baseline": "one shared-weight forward, same total batch", "unit": "tokens/s",
            "ratio": measured[False]["tokens_per_s"] / measured[True]["tokens_per_s"],
            "peak_mib": measured[False]["peak_mib"], "baseline_peak_mib": measured[True]["peak_mib"],
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["machine"] = machine("cpu", 1)
    header = ["P", "population tokens/s", "shared tokens/s", "ratio", "peak MiB", "shared peak MiB"]
    cells = [[str(r.population), f"{r.evoboard_per_s:,.0f}", f"{r.baseline_per_s:,.0f}", f"{r.ratio:.2f}x",
              f"{r.peak_mib:,.0f}", f"{r.baseline_peak_mib:,.0f}"] for r in table.itertuples()]  # fmt: skip
    publish(out, "charlm_forward", table, markdown_table(header, cells))
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evoboard.suite.speed.forwards")
    parser.add_argument("name", choices=["mlp", "encodings", "charlm", "cnn"])
    parser.add_argument("--out", default="results", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to measure, comma-separated")
    args = parser.parse_args(argv)
    if args.name == "encodings":
        encodings(args.out, args.repeats)
    elif args.name == "charlm":
        charlm(args.out, args.repeats)
    elif args.name == "cnn":
        cnn(args.out, args.repeats)
    else:
        mlp(args.out, args.repeats, tuple(int(t) for t in args.threads.split(",")))


if __name__ == "__main__":
    main()
