"""The reference studies that are procedures: built on the lottery, sparse-window and stitch studies, run
over several seeds (parents), each writing the per-seed table its claims read.

- ``tickets`` (Lange & Sprekeler 2023): the lottery rounds on digits and Acrobot-v1, then the last
  round's SNR and random masks used to train ``openai-es`` (both tasks) and ``adam`` (digits) from the
  same init: does an SNES ticket transfer to other optimisers? Writes ``transfer.csv``.
- ``sparse-window`` (Whitaker & Whitley 2023): one adam parent per seed, the sparse-window sweep of
  each, and per (parent, density) the critical sigma: the largest sigma whose children keep a mean
  test accuracy within ``TOLERANCE`` of their parent. Writes ``window.csv``; and per parent the
  (p, sigma) whose child ensemble scored best on the selection split, its ensemble's test
  accuracy beside the parent's (``ensembles.csv``: chosen without looking at test).
- ``stitch`` (Guijt et al. 2024): per seed a wide and a narrow parent (different widths and seeds),
  the GA over stitches on validation, and per parent the best test accuracy of a validation-front
  offspring costing no more multiply-adds than that parent. Writes ``stitch_seeds.csv``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from evoboard.suite.publish import publish

TOLERANCE = 0.05
"""Children within this much test accuracy of their parent are "near" it (the window's edge)."""


def tickets(folder: Path, seeds: int, device: str) -> pd.DataFrame:
    """Lottery rounds on digits and Acrobot-v1, then the final tickets trained by openai-es and adam."""
    from evoboard.suite.spec import RunSpec
    from evoboard.suite.studies.lottery import LotteryTask, run_lottery
    from evoboard.suite.suites.driver import run_all

    tasks = (
        LotteryTask("digits", population=32, generations=80, rounds=12, settings={"batch_size": 128}),
        LotteryTask("Acrobot-v1", population=16, generations=15, rounds=8, settings={"hidden": "16,16"}),
    )
    run_lottery(folder, seeds, device, tasks)
    specs, rows = [], []
    for task in tasks:
        last = task.rounds - 1
        for seed in range(seeds):
            for method in ("snr", "random"):
                mask = folder / "lottery" / "masks" / f"{task.task.replace('/', '-')}-{method}-s{seed}-r{last}.npz"
                run_seed = seed + 1000 * last if method == "random" else seed  # as the lottery trained it
                for algorithm in ("openai-es", "adam") if task.task == "digits" else ("openai-es",):
                    spec = RunSpec(task.task, algorithm=algorithm, population=task.population, seed=run_seed,
                                   generations=task.generations, device=device,
                                   settings={**task.settings, "mask": str(mask)})  # fmt: skip
                    specs.append(spec)
                    rows.append({"task": task.task, "method": method, "algorithm": algorithm, "seed": seed})
    for row, done in zip(rows, run_all(specs, folder, "tickets"), strict=True):  # on --jobs workers, resumable
        row.update(final_score=done["final_score"], score_kind=done["score_kind"])
    table = pd.DataFrame(rows)
    publish(folder, "transfer", table)
    return table


def critical_sigma(rows: pd.DataFrame, tolerance: float = TOLERANCE) -> float:
    """The largest sigma whose children's mean accuracy is within ``tolerance`` of the parent (0 if none)."""
    near = rows[rows["child_mean"] >= rows["parent_accuracy"] - tolerance]
    return float(near["sigma"].max()) if len(near) else 0.0


def chosen_ensembles(sweeps: pd.DataFrame) -> pd.DataFrame:
    """Per parent (seed): the sweep row whose ensemble scored best on the selection split (the first on a
    tie), its density, sigma and size, and its test accuracy beside the parent's."""
    best = sweeps.loc[sweeps.groupby("seed")["ensemble_selection"].idxmax()]
    columns = ["seed", "density", "sigma", "ensemble_size", "parent_selection", "ensemble_selection",
               "parent_accuracy", "ensemble_accuracy"]  # fmt: skip
    return best[columns].reset_index(drop=True)


def sparse_window(folder: Path, seeds: int, device: str) -> pd.DataFrame:
    """One parent per seed, the sparse-window sweep of each, the critical sigma per (parent, density)."""
    from evoboard.suite.studies.parents import train_parent
    from evoboard.suite.studies.sparse_window import figure, sweep

    torch.set_num_threads(1)
    sweeps, windows = [], []
    for seed in range(seeds):
        parent, _ = train_parent(folder, seed=seed, device=device)
        rows = pd.DataFrame(sweep(parent, children=16, device=device)).assign(seed=seed)
        sweeps.append(rows)
        for density, group in rows.groupby("density"):
            windows.append({"seed": seed, "density": density, "critical_sigma": critical_sigma(group)})
    table = pd.concat(sweeps, ignore_index=True)
    publish(folder, "sparse_window", table, figure=figure(table[table["seed"] == 0]))
    window = pd.DataFrame(windows)
    publish(folder, "window", window)
    publish(folder, "ensembles", chosen_ensembles(table))
    return window


def stitch(folder: Path, seeds: int, device: str) -> pd.DataFrame:
    """Per seed: parents of two widths, the stitch GA on validation, test accuracy of the cheap front."""
    from evoboard.agents import checkpoints
    from evoboard.agents.stitching import MLPNetwork, StitchedPair
    from evoboard.suite.studies.parents import train_parent
    from evoboard.suite.studies.stitch import digits_data, stitch_table

    torch.set_num_threads(1)
    data, rows = digits_data(), []
    for seed in range(seeds):
        nets = {}
        for name, offset, hidden in (("A", 0, "64,64,64"), ("B", 1, "24,24,24")):
            path, _ = train_parent(folder, seed=2 * seed + offset, hidden=hidden, device=device)
            nets[name] = MLPNetwork.from_tensors(checkpoints.load(path).tensors, "tanh")
        table = stitch_table(StitchedPair(nets["A"], nets["B"], data["fit"]), data, seed=seed)
        front = table[table["on_front"] & (table["stitches_on"] > 0)]
        for name in ("A", "B"):
            parent = table[(table["output"] == name) & (table["stitches_on"] == 0)].iloc[0]
            cheap = front[front["macs"] <= parent["macs"]]
            best = float(cheap["test_accuracy"].max()) if len(cheap) else float("nan")
            acc, macs, top = cheap["test_accuracy"], cheap["macs"], parent["test_accuracy"]
            dominating = cheap[(acc >= top) & ((acc > top) | (macs < parent["macs"]))]
            rows.append({"seed": seed, "parent": name, "parent_test": float(parent["test_accuracy"]),
                         "parent_macs": int(parent["macs"]), "offspring_test": best,
                         "dominating_on_test": len(dominating)})  # fmt: skip
    result = pd.DataFrame(rows)
    publish(folder, "stitch_seeds", result)
    return result
