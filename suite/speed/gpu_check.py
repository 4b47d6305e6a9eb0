"""``evoboard bench gpu-check --out DIR``: what to run first on a GPU machine; without CUDA, a CPU dry run of it.

Three parts, each written to ``DIR/gpu.md`` (and ``DIR/gpu.json``):
1. Smoke: every algorithm kind (ask/tell search, evolution strategy, direct trainer, count model)
   on each task family (classic control, MuJoCo, Atari, char-LM, digits) runs two generations on
   the device, through the ordinary runner, to its leaderboard row.
2. Agreement with the CPU: the same genomes (the next generation asked from the smoke run's state)
   decoded on the device and on the CPU must give the same weights bit for bit (seeds decode the
   same on every device, issue #29), and their fitness on the same episodes must agree within
   ``RTOL`` relative (float32 kernels differ between devices; TF32 is off, ``--set tf32``). An RL
   member may still differ where a tiny change in a logit flips a greedy action: the table shows
   how many members differ, not only whether one does.
3. Profile: char-LM at P=256 and 1024 and Pong at P=256, phase by phase (``t_decode`` etc., the
   clock read after a CUDA synchronize), and the peak GPU memory of each run.
Sized to finish in under 8 minutes on one H100; a part that would run past ``BUDGET_S`` is
skipped and says so. On a machine without CUDA the same code runs CPU against CPU at tiny sizes
(the dry run: every path exercised, the same report), which is a test.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evoboard.agents import PopulationActor
from evoboard.agents.algorithms import ALGORITHMS, CountModel, DirectTrainer
from evoboard.suite.backends.base import build_parts
from evoboard.suite.backends.local import evaluate_here
from evoboard.suite.backends.shards import state_on
from evoboard.suite.devices import device_name, peak_memory_mib, reset_peak_memory, tf32_state
from evoboard.suite.provenance import TRAIN, episode_seeds, resolve_device
from evoboard.suite.publish import machine, markdown_table
from evoboard.suite.runner import Run
from evoboard.suite.settings import option_names
from evoboard.suite.spec import RunSpec, resolve

RTOL = 1e-4
"""Fitness agreement: |device - cpu| <= RTOL * max(1, |cpu|) per member."""
BUDGET_S = 420.0
"""Seconds the check may take before it skips what is left (8 minutes less a margin)."""
PHASES = ("t_ask", "t_decode", "t_evaluate", "t_tell", "t_elite", "t_checkpoint")


@dataclasses.dataclass(frozen=True)
class Case:
    """One smoke run and its agreement check: a task family, its task, an algorithm and an encoding."""

    family: str
    task: str
    algorithm: str
    encoding: str = "dense"


CASES = (
    Case("control", "CartPole-v1", "ga"),
    Case("control", "CartPole-v1", "ga", "lowrank"),
    Case("control", "CartPole-v1", "ga", "lowrank-perturb"),
    Case("control", "CartPole-v1", "ga", "sparse"),
    Case("control", "CartPole-v1", "ga", "small_dense"),
    Case("control", "CartPole-v1", "random"),
    Case("control", "CartPole-v1", "snes", "lowrank"),
    Case("mujoco", "HalfCheetah-v5", "ga"),
    Case("mujoco", "HalfCheetah-v5", "openai-es"),
    Case("atari", "ALE/Pong-v5", "ga"),
    Case("atari", "ALE/Pong-v5", "ga", "lowrank-perturb"),
    Case("atari", "ALE/Pong-v5", "openai-es"),
    Case("charlm", "charlm/pydoc", "ga"),
    Case("charlm", "charlm/pydoc", "ga", "lowrank"),
    Case("charlm", "charlm/pydoc", "openai-es"),
    Case("charlm", "charlm/pydoc", "snes"),
    Case("charlm", "charlm/pydoc", "adam"),
    Case("charlm", "charlm/pydoc", "unigram"),
    Case("digits", "digits", "ga"),
    Case("digits", "digits", "snes"),
    Case("digits", "digits", "rso"),
    Case("digits", "digits", "adam"),
)
"""RSO only on digits: one of its generations tries every weight (the char-LM's 117k would take minutes)."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Budgets of one mode: the GPU check, or the CPU dry run."""

    population: int
    generations: int
    settings: dict[str, dict[str, Any]]
    """Per family: the ``--set`` values of its smoke runs (small episodes, the default networks on a GPU)."""
    profiles: tuple[tuple[str, str, int], ...]
    """(family, algorithm, population) of each profiled run."""
    profile_generations: int
    profile_settings: dict[str, dict[str, Any]]


COMMON = {"eval_episodes": 1}
ELITES = {"elite_candidates": 2, "elite_episodes": 1}
"""Cheaper elite re-evaluation, for the algorithms that re-evaluate (GA, random search)."""
GPU = Sizes(
    population=64,
    generations=2,
    settings={
        "control": {"max_steps": 200},
        "mujoco": {"max_steps": 200},
        "atari": {"max_frames": 400},
        "charlm": {},
        "digits": {},
    },
    profiles=(("charlm", "ga", 256), ("charlm", "ga", 1024), ("charlm", "openai-es", 1024), ("atari", "ga", 256)),
    profile_generations=3,
    profile_settings={"charlm": {}, "atari": {"max_frames": 4000}},
)
DRY = Sizes(
    population=4,
    generations=2,
    settings={
        "control": {"max_steps": 20},
        "mujoco": {"max_steps": 10},
        "atari": {"max_frames": 40, "cnn_hidden": 16, "noop_max": 0},
        "charlm": {"context": 16, "batch_windows": 4, "val_windows": 8, "n_layer": 1, "n_embd": 16, "n_head": 2},
        "digits": {"hidden": "8", "batch_size": 16},
    },
    profiles=(("charlm", "ga", 6), ("charlm", "ga", 8), ("charlm", "openai-es", 8), ("atari", "ga", 4)),
    profile_generations=2,
    profile_settings={},
)


def spec_for(case: Case, sizes: Sizes, device: str, population: int | None = None) -> RunSpec:
    elites = {k: v for k, v in ELITES.items() if k in option_names(ALGORITHMS.get(case.algorithm).Options)}
    settings = {**COMMON, **elites, **sizes.settings[case.family]}
    if case.algorithm == "rso":
        population = 9  # four weights a forward: a cycle of the tiny digits network stays short
    population = population or sizes.population
    return RunSpec(case.task, encoding=case.encoding, algorithm=case.algorithm, population=population,
                   generations=sizes.generations, seed=0, device=device, settings=settings)  # fmt: skip


def first_line(err: BaseException) -> str:
    """The error's type and the start of its first line (the whole trace goes to gpu.json)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:100]}"


def smoke(case: Case, sizes: Sizes, device: torch.device, out: Path) -> tuple[dict, Run | None]:
    """Two generations of ``case`` on ``device`` to a leaderboard row; the row's summary and the finished run."""
    t0 = time.perf_counter()
    try:
        run = Run(resolve(spec_for(case, sizes, device.type)), out)
        row = run.run()
    except Exception as err:  # one broken case must not hide the others
        return {**dataclasses.asdict(case), "status": first_line(err), "trace": traceback.format_exc()}, None
    wall = round(time.perf_counter() - t0, 2)
    return {**dataclasses.asdict(case), "status": "ok", "final_score": row["final_score"], "wall_s": wall}, run


def dense_tensors(params) -> dict[str, torch.Tensor]:
    """Every layer's dense tensors (materialised forms) on the CPU, by layer and role."""
    out = {}
    for name, form in params.items():
        dense = form.materialize()
        for role, t in vars(dense).items():
            if isinstance(t, torch.Tensor):
                out[f"{name}.{role}"] = t.detach().float().cpu()
    return out


def members(run: Run, parts, device: torch.device):
    """The parameters and actor inputs to compare: (params on ``device``, member count)."""
    algorithm = parts.algorithm
    if isinstance(algorithm, DirectTrainer):  # the trainer's initial network
        return algorithm.trainer(parts.encoding, parts.policy, run.spec.seed).params(), None, None
    genomes, state = run.algorithm.ask(run.state)  # the next generation after the smoke run: children of parents
    state = state_on(state, device)
    return algorithm.decode(parts.encoding, genomes, state), genomes, state


def agreement(case: Case, sizes: Sizes, run: Run, device: torch.device) -> dict:
    """The same members decoded and evaluated on ``device`` and on the CPU: weights bit for bit, fitness within RTOL."""
    base = {**dataclasses.asdict(case)}
    if isinstance(run.algorithm, CountModel):
        return {**base, "status": "n/a: a count table, not a network"}
    try:
        seeds = episode_seeds(0, TRAIN, 99, 1)
        results = []
        for where in (device, torch.device("cpu")):
            resolved = resolve(spec_for(case, sizes, where.type))
            parts = build_parts(resolved, where)
            try:
                params, genomes, state = members(run, parts, where)
                if genomes is None:
                    ev = parts.task.evaluate(PopulationActor(parts.policy, params, where), 1, seeds)
                else:
                    ev = evaluate_here(parts, genomes, state, seeds)[0]
                results.append((dense_tensors(params), ev.fitness))
            finally:
                parts.task.close()
        (dev_w, dev_f), (cpu_w, cpu_f) = results
    except Exception as err:
        return {**base, "status": first_line(err), "trace": traceback.format_exc()}
    same = sum(torch.equal(dev_w[k], cpu_w[k]) for k in cpu_w)
    diff = max(float((dev_w[k] - cpu_w[k]).abs().max()) if dev_w[k].numel() else 0.0 for k in cpu_w)
    gap = np.abs(np.asarray(dev_f, float) - np.asarray(cpu_f, float))
    off = int((gap > RTOL * np.maximum(1.0, np.abs(cpu_f))).sum())
    ok = same == len(cpu_w) and off == 0
    return {**base, "status": "ok" if ok else "DIFFERS", "members": len(cpu_f), "tensors_identical": same,
            "tensors": len(cpu_w), "max_weight_diff": diff, "max_fitness_diff": float(gap.max()),
            "members_off": off}  # fmt: skip


def profile(family: str, algorithm: str, population: int, sizes: Sizes, device: torch.device, out: Path) -> dict:
    """One run's phases (medians over generations after the first) and its peak GPU memory."""
    case = dataclasses.replace(next(c for c in CASES if c.family == family), algorithm=algorithm, encoding="dense")
    spec = spec_for(case, sizes, device.type, population)
    settings = {**spec.settings, **sizes.profile_settings.get(family, {})}
    spec = dataclasses.replace(spec, generations=sizes.profile_generations, settings=settings)
    base = {"task": case.task, "algorithm": algorithm, "population": population}
    try:
        reset_peak_memory(device)
        run = Run(resolve(spec), out)
        run.run()
    except Exception as err:
        return {**base, "status": first_line(err), "trace": traceback.format_exc()}
    later = run.history[1:] or run.history
    phases = {p: statistics.median(r.get(p, 0.0) for r in later) for p in PHASES}
    wall = statistics.median(r["wall_s"] for r in later)
    return {**base, "status": "ok", **phases, "wall_s": wall, "peak_mib": peak_memory_mib(device)}


def cells(rows: list[dict], columns: list[str]) -> str:
    def show(v: Any) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    return markdown_table(columns, [[show(r.get(c, "")) for c in columns] for r in rows])


def report(mode: str, device: torch.device, sections: dict[str, list[dict]], wall: float) -> str:
    lines = [
        "# GPU check",
        "",
        f"Mode: {mode}. Device: {device_name(device)}; compared against: cpu. {machine(device.type)}.",
        f"TF32: {tf32_state()} (evoboard's default: off). "
        f"Fitness tolerance: |device - cpu| <= {RTOL:g} x max(1, |cpu|) per member.",
        f"Total: {wall:.0f} s (budget {BUDGET_S:.0f} s; what would run past it is skipped).",
        "",
        "## Smoke: two generations of each algorithm kind on each task family",
        "",
        cells(sections["smoke"], ["family", "task", "algorithm", "encoding", "status", "final_score", "wall_s"]),
        "## Agreement with the CPU: the same members decoded and evaluated on both",
        "",
        cells(
            sections["agreement"],
            [
                "family",
                "algorithm",
                "encoding",
                "status",
                "members",
                "tensors_identical",
                "tensors",
                "max_weight_diff",
                "members_off",
                "max_fitness_diff",
            ],
        ),  # fmt: skip
        "## Profile: seconds per phase (median over generations after the first) and peak memory",
        "",
        cells(sections["profile"], ["task", "algorithm", "population", "status", *PHASES, "wall_s", "peak_mib"]),
    ]
    return "\n".join(lines)


def run_check(
    out: str | Path,
    device: str = "auto",
    sizes: Sizes | None = None,
    cases: tuple[Case, ...] = CASES,
    budget_s: float = BUDGET_S,
) -> dict:
    """The check on ``device`` (auto: cuda where torch sees it); without CUDA, the CPU dry run. Writes gpu.md/.json.

    ``sizes``, ``cases`` and ``budget_s`` narrow it (tests); the defaults are the check."""
    out = Path(out)
    chosen = resolve_device(device)
    dry = chosen.type != "cuda"
    sizes = sizes or (DRY if dry else GPU)
    mode = "CPU dry run (cpu against cpu, tiny sizes)" if dry else "CUDA check"
    runs = out / "gpu-check-runs"
    started = time.perf_counter()
    sections: dict[str, list[dict]] = {"smoke": [], "agreement": [], "profile": []}

    def over() -> bool:
        return time.perf_counter() - started > budget_s

    for case in cases:
        if over():
            sections["smoke"].append({**dataclasses.asdict(case), "status": "skipped: time budget"})
            continue
        row, run = smoke(case, sizes, chosen, runs)
        sections["smoke"].append(row)
        if run is not None:
            sections["agreement"].append(agreement(case, sizes, run, chosen))
    for family, algorithm, population in sizes.profiles:
        if over():
            sections["profile"].append({"task": family, "algorithm": algorithm, "population": population,
                                        "status": "skipped: time budget"})  # fmt: skip
            continue
        sections["profile"].append(profile(family, algorithm, population, sizes, chosen, runs))
    wall = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.md").write_text(report(mode, chosen, sections, wall) + "\n")
    result = {"mode": mode, "device": device_name(chosen), "wall_s": wall, **sections}
    (out / "gpu.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"gpu check ({mode}) written to {out / 'gpu.md'} in {wall:.0f} s")
    return result
