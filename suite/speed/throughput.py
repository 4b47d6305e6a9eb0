"""``evoboard bench throughput``: population evaluation against the simulator's own speed.

Measured side by side in one process and one run (each pair alternates; medians):
- raw env steps/s with random actions: gymnasium's SyncVectorEnv (MuJoCo, classic control),
  ale_py's AtariVectorEnv (Pong), at the same number of envs as members;
- evoboard's evaluation of a population at the same P, with its time split into env,
  policy forward, decode and book-keeping (children of one parent; on CartPole also a spread
  population, whose long tail of few running members shows the per-step fixed cost);
- EvoTorch's VecGymNE (optional: ``pip install 'evoboard[bench]'``) on the same task, P,
  episodes and network, and how many env steps it really took against how many it counted
  (a counting CartPole).
- Pong at 1 and 2 torch threads (the slots step in two lanes, one lane's emulators on C++ threads while
  the policy picks the other lane's actions; the first, untimed evaluation builds the emulator slots,
  whose ROM loads are not evaluation), and at
  P=32, 1 thread, also with the CNN in bfloat16 (``--set dtype=bfloat16``); each row says the
  seeded resets' milliseconds per episode (a ROM reload each: docs/atari-speed.md), and at P=32, 1 thread,
  also with the opt-in snapshot resets (``--set resets=snapshot``: no reload, the slots in one worker process
  per core, two lanes overlapping the policy with the emulators; the raw env stays the vector env);
- both cores: ``--backend processes`` with 2 worker processes on HalfCheetah, against the
  one-core raw env.
Writes ``results/throughput.csv`` and ``results/throughput.md``.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, make_policy
from evoboard.agents.encodings import make as make_encoding
from evoboard.agents.policies import POLICIES
from evoboard.envs.quiet import quiet_mujoco
from evoboard.suite.backends.base import build_parts
from evoboard.suite.progress import RunLines
from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.settings import build_options
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.speed import counting
from evoboard.suite.speed.counting import CountingCartPole
from evoboard.suite.speed.harness import alternate, medians, timed
from evoboard.suite.speed.raw import raw_atari, raw_gym

SPREAD = 0.3
"""sigma of a spread CartPole population: parameters far apart, so episodes last 8 to 500 steps."""


def evoboard_eval(
    task,
    population: int,
    encoding: str = "dense",
    settings: dict | None = None,
    device: str = "cpu",
    generations: int = 1,
    policy_settings: dict | None = None,
) -> dict:
    """``generations`` population evaluations (decode + evaluate on ``device``, each a new set of children of
    one parent); steps/s over all of them and the time split. Several keep a CartPole figure (a population
    of ~10-step episodes is ~10 ms) above timer and scheduler noise. ``policy_settings``: the policy's own
    options (e.g. ``{"dtype": "bfloat16"}``)."""
    options = build_options(POLICIES.get(task.default_policy).Options, policy_settings or {})
    policy = make_policy(task.default_policy, task.observation_space, task.action_space, options)
    cls = make_encoding(encoding, policy).__class__
    enc = make_encoding(encoding, policy, build_options(cls.Options, settings or {}), device)
    enc.decode([(0,)])
    parts = {"steps": 0, "total": 0.0, "env_s": 0.0, "policy_s": 0.0, "decode_s": 0.0, "reset_s": 0.0}
    shortest, longest = None, 0
    for g in range(generations):
        genomes = [(0, 1000 + g * population + i) for i in range(population)]  # children of one parent
        t_decode, params = timed(lambda genomes=genomes: enc.decode(genomes))
        actor = PopulationActor(policy, params, torch.device(device))
        t_eval, ev = timed(lambda actor=actor, g=g: task.evaluate(actor, population, [g]))
        parts["steps"] += ev.frames // task.frames_per_step
        parts["total"] += t_decode + t_eval
        parts["env_s"] += ev.timings["env"]
        parts["policy_s"] += ev.timings["policy"]
        parts["decode_s"] += t_decode
        parts["reset_s"] += ev.timings.get("reset", 0.0)
        shortest = int(ev.steps.min()) if shortest is None else min(shortest, int(ev.steps.min()))
        longest = max(longest, int(ev.steps.max()))
    outside = parts["env_s"] + parts["policy_s"] + parts["reset_s"] + parts["decode_s"]
    return {
        "steps": parts["steps"],
        "steps_per_s": parts["steps"] / parts["total"],
        **{k: parts[k] for k in ("env_s", "policy_s", "decode_s", "reset_s")},
        "bookkeeping_s": parts["total"] - outside,
        "reset_ms_per_episode": 1e3 * parts["reset_s"] / (population * generations),
        "shortest": shortest,
        "longest": longest,
    }


def evotorch_eval(task_id: str, population: int, hidden: int = 64, spread: float | None = None) -> dict | None:
    """EvoTorch VecGymNE on the same task, P and MLP; None when evotorch is not installed.

    ``spread``: members' parameters drawn N(0, spread^2) (seeded) instead of EvoTorch's near-zero
    start, so episode lengths differ (finished envs would have to wait for the longest)."""
    try:
        from evotorch.neuroevolution import VecGymNE
    except ImportError:
        return None
    import logging

    logging.getLogger("evotorch").setLevel(logging.WARNING)
    layers = [f"Linear(obs_length, {hidden})", "Tanh()", f"Linear({hidden}, {hidden})", "Tanh()"]
    net = " >> ".join([*layers, f"Linear({hidden}, act_length)"])
    problem = VecGymNE(task_id, net, num_episodes=1, max_num_envs=population)
    batch = problem.generate_batch(population)
    if spread is not None:
        generator = torch.Generator().manual_seed(0)
        batch.access_values()[:] = spread * torch.randn(batch.values.shape, generator=generator)
    problem.evaluate(batch)  # warm up
    before = problem.status["total_interaction_count"]
    CountingCartPole.steps_taken = 0
    seconds, _ = timed(lambda: problem.evaluate(batch))
    counted = problem.status["total_interaction_count"] - before
    returns = batch.evals.flatten()  # CartPole: one point per step, so returns are episode lengths
    return {"steps": counted, "steps_per_s": counted / seconds, "taken": CountingCartPole.steps_taken,
            "shortest": int(returns.min()), "longest": int(returns.max())}  # fmt: skip


@contextlib.contextmanager
def processes_eval(task_id: str, population: int, workers: int) -> Iterator[Callable[[], dict]]:
    """``workers`` worker processes (``--backend processes``), warmed up; yields a function that times one
    evaluation of the same genomes as ``evoboard_eval`` (decoded in the workers). Stops them on exit."""
    from evoboard.suite.backends.processes import ProcessBackend

    resolved = resolve(RunSpec(task_id, population=population, backend="processes"))
    resolved = replace(resolved, backend=replace(resolved.backend, processes=workers))
    parts = build_parts(resolved, torch.device("cpu"))
    parts.task.close()  # the workers own their tasks
    backend = ProcessBackend(parts, resolved, resolved.backend)
    try:
        backend.evaluate([(0, 5000 + i) for i in range(population)], None, [0])  # imports, env pools

        def once() -> dict:
            seconds, (ev, _) = timed(lambda: backend.evaluate([(0, 1000 + i) for i in range(population)], None, [0]))
            return {"steps": ev.frames, "steps_per_s": ev.frames / seconds}

        yield once
    finally:
        backend.close()


def control_rows(task_id: str, population: int, repeats: int) -> list[dict]:
    """The population of ``evoboard_eval`` against the raw env; on CartPole also a spread population
    (parameters drawn at sigma 0.3: episodes of 8-500 steps), where few members run most steps."""
    quiet_mujoco()
    task = envs.make(task_id)
    steps = task.max_steps
    rows = []
    spread = (("children", {}), ("spread", {"sigma": SPREAD})) if task_id == counting.COUNTING_CARTPOLE else (
        ("children", {}),)  # fmt: skip
    k = 20 if task_id == counting.COUNTING_CARTPOLE else 1  # CartPole: ~10 ms a generation, so 20 of them
    for name, settings in spread:
        evo_runs, raw_runs = alternate(lambda s=settings: evoboard_eval(task, population, settings=s, generations=k),
                                       lambda: raw_gym(task_id, population, steps), repeats)  # fmt: skip
        raw = statistics.median(raw_runs)
        evo = medians(evo_runs)
        rows.append({"task": task_id, "population": population, "encoding": "dense", "members": name,
                     "raw_steps_per_s": raw, "evoboard_steps_per_s": evo["steps_per_s"],
                     "ratio_vs_raw": evo["steps_per_s"] / raw, **evo})  # fmt: skip
    task.close()
    other = evotorch_eval(task_id, population)
    if other:
        rows[0].update(
            evotorch_steps_per_s=other["steps_per_s"], ratio_vs_evotorch=rows[0]["steps_per_s"] / other["steps_per_s"]
        )
    if task_id == counting.COUNTING_CARTPOLE:
        rows[0].update(counted_steps(task_id, population))
    return rows


def counted_steps(task_id: str, population: int, spread: float = SPREAD) -> dict:
    """Env steps each library counted and took on the counting CartPole, for a population whose
    episode lengths differ (parameters spread by N(0, ``spread``^2)): a library that steps finished
    envs until the longest episode ends takes more than it counts."""
    CountingCartPole.steps_taken = 0
    task = envs.make(task_id)
    ev = evoboard_eval(task, population, settings={"sigma": spread})
    task.close()
    counts = {"evoboard_steps_counted": ev["steps"], "evoboard_steps_taken": CountingCartPole.steps_taken,
              "evoboard_episode_steps": f"{ev['shortest']}-{ev['longest']}"}  # fmt: skip
    other = evotorch_eval(task_id, population, spread=spread)
    if other:
        counts.update(evotorch_steps_counted=other["steps"], evotorch_steps_taken=other["taken"],
                      evotorch_episode_steps=f"{other['shortest']}-{other['longest']}")  # fmt: skip
    return counts


def both_cores_row(task_id: str, population: int, repeats: int, workers: int = 2) -> dict:
    """``workers`` worker processes against the one-core raw env, alternated: the both-cores figure."""
    steps = gym.spec(task_id).max_episode_steps
    with processes_eval(task_id, population, workers) as evaluate:
        evo_runs, raw_runs = alternate(evaluate, lambda: raw_gym(task_id, population, steps), repeats)
    raw, evo = statistics.median(raw_runs), statistics.median(r["steps_per_s"] for r in evo_runs)
    return {"task": task_id, "population": population, "encoding": "dense", "processes": workers,
            "raw_steps_per_s": raw, "evoboard_steps_per_s": evo, "ratio_vs_raw": evo / raw}  # fmt: skip


def atari_rows(
    game: str,
    population: int,
    steps: int,
    repeats: int,
    threads: int = 1,
    device: str = "cpu",
    dtypes: tuple[str, ...] = ("float32",),
    task_settings: dict | None = None,
) -> list[dict]:
    """Pong with each encoding's CNN at ``threads`` torch threads (two lanes: the emulators of one step while the
    policy runs the other's),
    at each of ``dtypes`` (the CNN's ``dtype``: bfloat16 is opt-in reduced precision). ``task_settings``: more
    Atari settings, as ``--set`` takes them (``{"resets": "snapshot"}``); the raw env stays the vector env."""
    from evoboard.envs.ale_workers import process_count
    from evoboard.envs.atari import AtariOptions

    options = build_options(AtariOptions, {"max_steps": steps, "noop_max": 0, **(task_settings or {})})
    task = envs.make(f"ALE/{game.title()}-v5", options)
    processes = process_count(options) if options.resets == "snapshot" else None
    evoboard_eval(task, population, "lowrank", {"rank": 1})  # untimed: builds the emulator slots once
    raws, rows = [], []
    torch.set_num_threads(threads)
    encodings = (("dense", {}), ("lowrank", {"rank": 4}), ("lowrank-perturb", {"perturb_rank": 4}),
                 ("sparse", {"density": 0.01}))  # fmt: skip
    for dtype in dtypes:
        for encoding, settings in encodings:
            raws.append(raw_atari(game, population, steps))  # one raw run beside each encoding's; median of all
            runs = [evoboard_eval(task, population, encoding, settings, device, policy_settings={"dtype": dtype})
                    for _ in range(repeats)]  # fmt: skip
            evo = medians(runs)
            rows.append({"task": f"ALE/{game.title()}-v5", "population": population, "encoding": encoding,
                         "device": device, "dtype": dtype, "torch_threads": threads, "resets": options.resets,
                         "env_processes": processes,
                         "evoboard_steps_per_s": evo["steps_per_s"], **evo})  # fmt: skip
    raw = statistics.median(raws)
    for row in rows:
        row.update(raw_steps_per_s=raw, ratio_vs_raw=row["evoboard_steps_per_s"] / raw)
    torch.set_num_threads(1)
    task.close()
    return rows


def run(out: Path, repeats: int = 3, atari: bool = True, device: str = "cpu") -> pd.DataFrame:
    """Every row above; with ``device`` cuda, Pong's CNN runs there too (one thread count: the CPU is the env's)."""
    torch.set_num_threads(1)
    rows = []
    atari_steps = [(p, t) for p in (8, 32) for t in ((1, 2) if device == "cpu" else (1,))] if atari else []
    lines = RunLines(4 + len(atari_steps) + bool(atari), "throughput")  # a line per measurement, the time left
    for task_id in ("HalfCheetah-v5", "Hopper-v5", counting.register()):
        rows += control_rows(task_id, 64, repeats)
        lines.finished(f"{task_id} P=64 against the raw env and EvoTorch")
    rows.append(both_cores_row("HalfCheetah-v5", 64, repeats))
    lines.finished("HalfCheetah-v5 P=64 on both cores")
    for population, threads in atari_steps:
        dtypes = ("float32", "bfloat16") if (population, threads) == (32, 1) else ("float32",)
        rows += atari_rows("pong", population, 250, max(1, repeats // 2), threads, device, dtypes)
        lines.finished(f"Pong P={population}, {threads} torch thread(s), every encoding")
    if atari:  # the opt-in snapshot resets (#28): episode starts without the ROM reload, against the same raw env
        rows += atari_rows("pong", 32, 250, max(1, repeats // 2), 1, device, ("float32", "bfloat16"),
                           task_settings={"resets": "snapshot"})  # fmt: skip
        lines.finished("Pong P=32, 1 torch thread, every encoding, resets=snapshot")
    table = pd.DataFrame(rows)
    table["members"] = table["members"].fillna("children") if "members" in table else "children"
    for column in ("processes", "torch_threads"):
        table[column] = table[column].fillna(1).astype(int) if column in table else 1
    table["device"] = table["device"].fillna("cpu") if "device" in table else "cpu"
    table["dtype"] = table["dtype"].fillna("float32") if "dtype" in table else "float32"
    table["machine"] = machine(device, table["torch_threads"])
    publish(out, "throughput", table, markdown(table))
    return table


def steps_range(row: dict) -> str:
    """The shortest and longest episode of the evaluated population, where known."""
    low, high = row.get("shortest"), row.get("longest")
    if low is None or (isinstance(low, float) and np.isnan(low)):
        return ""
    return f"{int(low)}-{int(high)}"


def markdown(table: pd.DataFrame) -> str:
    def f(v, fmt=",.0f"):
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)

    header = ["task", "P", "encoding", "members", "episode steps", "processes", "torch threads", "raw steps/s",
              "evoboard steps/s", "vs raw",
              "EvoTorch steps/s", "evoboard / EvoTorch", "env s", "policy s", "decode s", "reset s",
              "reset ms/episode", "other s"]  # fmt: skip
    rows = [[r["task"], str(r["population"]), r["encoding"] + ("" if r["device"] == "cpu" else f" ({r['device']})")
             + ("" if r["dtype"] == "float32" else f", {r['dtype']}")
             + (f", snapshot resets, {r['env_processes']:.0f} env processes" if r.get("resets") == "snapshot" else ""),
             r.get("members") or "children", steps_range(r), str(r["processes"]), str(r["torch_threads"]),
             f(r["raw_steps_per_s"]), f(r["evoboard_steps_per_s"]),
             f(r["ratio_vs_raw"], ".2f") + "x", f(r.get("evotorch_steps_per_s")), f(r.get("ratio_vs_evotorch"), ".2f"),
             f(r.get("env_s"), ".2f"), f(r.get("policy_s"), ".2f"), f(r.get("decode_s"), ".3f"),
             f(r.get("reset_s"), ".2f"), f(r.get("reset_ms_per_episode"), ".0f"), f(r.get("bookkeeping_s"), ".2f")]
            for r in table.to_dict("records")]  # fmt: skip
    lines = [markdown_table(header, rows).rstrip("\n")]
    counted = table.dropna(subset=["evoboard_steps_counted"]) if "evoboard_steps_counted" in table else table.iloc[:0]
    for r in counted.to_dict("records"):
        sentence = (
            f"{r['task']}, a population with episodes of {r['evoboard_episode_steps']} steps: evoboard counted "
            f"{f(r['evoboard_steps_counted'])} env steps and took {f(r['evoboard_steps_taken'])}"
        )
        if f(r.get("evotorch_steps_taken")):
            sentence += (
                f"; EvoTorch (episodes of {r['evotorch_episode_steps']} steps) counted "
                f"{f(r['evotorch_steps_counted'])} and took {f(r['evotorch_steps_taken'])}"
            )
        lines += ["", sentence + "."]
    return "\n".join(lines) + "\n"
