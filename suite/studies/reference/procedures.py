"""The reference studies that are procedures: built on the lottery, sparse-window and stitch studies, run
over several seeds (parents), each writing the per-seed table its claims read.

- ``tickets`` (Lange & Sprekeler 2023): the lottery rounds on digits and Acrobot-v1, then the last
  round's SNR and random masks used to train ``openai-es`` (both tasks) and ``adam`` (digits) from the
  same init: does an SNES ticket transfer to other optimisers? Writes ``transfer.csv``.
- ``sparse-window`` (Whitaker & Whitley 2023): one adam parent per seed, the sparse-window sweep of
  each at equal step norms (``equal_step_sigmas``), and per (parent, density) the critical sigma:
  the largest sigma whose children keep a mean test accuracy within ``TOLERANCE`` of their parent,
  and its step norm (``critical_step``, sigma x sqrt(p)). Writes ``window.csv``; and per parent the
  (p, sigma) whose child ensemble scored best on the selection split, its ensemble's test
  accuracy beside the parent's (``ensembles.csv``: chosen without looking at test).
- ``stitch`` (Guijt et al. 2024): per seed a wide and a narrow parent (different widths and seeds),
  the GA over stitches on validation, and per parent the validation front's offspring costing no
  more multiply-adds than that parent with the best validation accuracy, scored once on test
  (``chosen_offspring``). Writes ``stitch_seeds.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from evoboard.suite.publish import publish

if TYPE_CHECKING:
    from evoboard.suite.studies.lottery import LotteryTask

TOLERANCE = 0.05
"""Children within this much test accuracy of their parent are "near" it (the window's edge)."""


def ticket_tasks() -> tuple[LotteryTask, ...]:
    """The lottery's tasks and budgets in the lange-tickets study."""
    from evoboard.suite.studies.lottery import LotteryTask

    return (
        LotteryTask("digits", population=32, generations=80, rounds=12, settings={"batch_size": 128}),
        LotteryTask("Acrobot-v1", population=16, generations=15, rounds=8, settings={"hidden": "16,16"}),
    )


def tickets(folder: Path, seeds: int, device: str, tasks: tuple[LotteryTask, ...] | None = None) -> pd.DataFrame:
    """Lottery rounds on digits and Acrobot-v1 (or ``tasks``), then the final tickets trained by openai-es and adam."""
    from evoboard.suite.spec import RunSpec
    from evoboard.suite.studies.lottery import run_lottery
    from evoboard.suite.suites.driver import run_all

    tasks = tasks or ticket_tasks()
    run_lottery(folder, seeds, device, tasks)
    specs, rows = [], []
    for task in tasks:
        last = task.rounds - 1
        for seed in range(seeds):
            for method in ("snr", "random"):
                mask = folder / "lottery" / "masks" / f"{task.task.replace('/', '-')}-{method}-s{seed}-r{last}.npz"
                for algorithm in ("openai-es", "adam") if task.task == "digits" else ("openai-es",):
                    # every mask at the run seed, as the lottery trains them: the same init and episodes
                    spec = RunSpec(task.task, algorithm=algorithm, population=task.population, seed=seed,
                                   generations=task.generations, device=device,
                                   settings={**task.settings, "mask": str(mask)})  # fmt: skip
                    specs.append(spec)
                    rows.append({"task": task.task, "method": method, "algorithm": algorithm, "seed": seed})
    for row, done in zip(rows, run_all(specs, folder, "tickets"), strict=True):  # on --jobs workers, resumable
        row.update(final_score=done["final_score"], score_kind=done["score_kind"], run_id=done["run_id"])
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


STEPS = tuple(float(s) for s in np.logspace(-2.0, 1.0, 13))
"""Step norms swept, in units of a dense child's (sigma at p=1): every density is swept at the same step norms."""


def equal_step_sigmas(density: float) -> tuple[float, ...]:
    """Per-mutated-entry sigmas giving a p-sparse child the step norms ``STEPS``: its norm is sqrt(p) of a
    dense child's at equal sigma, so sigma = step / sqrt(p). At equal sigma the window would move with
    density by construction (Whitaker & Whitley's claim could not fail); at equal step norm it can."""
    return tuple(s / np.sqrt(density) for s in STEPS)


def sparse_window(folder: Path, seeds: int, device: str) -> pd.DataFrame:
    """One parent per seed, the sparse-window sweep of each at equal step norms, the critical sigma and step
    norm per (parent, density)."""
    from evoboard.suite.studies.parents import train_parent
    from evoboard.suite.studies.sparse_window import DENSITIES, figure, sweep

    torch.set_num_threads(1)
    sweeps, windows = [], []
    for seed in range(seeds):
        parent, _ = train_parent(folder, seed=seed, device=device)
        rows = pd.concat([pd.DataFrame(sweep(parent, (p,), equal_step_sigmas(p), children=16, device=device))
                          for p in DENSITIES], ignore_index=True).assign(seed=seed)  # fmt: skip
        rows["step"] = rows["sigma"] * np.sqrt(rows["density"])
        sweeps.append(rows)
        for density, group in rows.groupby("density"):
            critical = critical_sigma(group)
            windows.append({"seed": seed, "density": density, "critical_sigma": critical,
                            "critical_step": critical * np.sqrt(density)})  # fmt: skip
    table = pd.concat(sweeps, ignore_index=True)
    publish(folder, "sparse_window", table, figure=figure(table[table["seed"] == 0]))
    window = pd.DataFrame(windows)
    publish(folder, "window", window)
    publish(folder, "ensembles", chosen_ensembles(table))
    return window


def chosen_offspring(table: pd.DataFrame, parent: str) -> dict:
    """The stitched offspring chosen for ``parent``: of the validation front's stitches costing no more
    multiply-adds than the parent, the one with the best validation accuracy (the cheaper on a tie),
    scored once on test; NaN where no stitch is that cheap. Choosing by test accuracy, as this did
    before, reported the best of several test scores."""
    top = table[(table["output"] == parent) & (table["stitches_on"] == 0)].iloc[0]
    front = table[table["on_front"] & (table["stitches_on"] > 0) & (table["macs"] <= top["macs"])]
    chosen = front.sort_values(["val_accuracy", "macs"], ascending=[False, True], kind="stable").head(1)
    return {"parent_test": float(top["test_accuracy"]), "parent_val": float(top["val_accuracy"]),
            "parent_macs": int(top["macs"]), "candidates": len(front),
            "offspring_val": float(chosen["val_accuracy"].iloc[0]) if len(chosen) else float("nan"),
            "offspring_test": float(chosen["test_accuracy"].iloc[0]) if len(chosen) else float("nan"),
            "offspring_macs": int(chosen["macs"].iloc[0]) if len(chosen) else -1}  # fmt: skip


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
        for name in ("A", "B"):
            rows.append({"seed": seed, "parent": name, **chosen_offspring(table, name)})
    result = pd.DataFrame(rows)
    publish(folder, "stitch_seeds", result)
    return result
