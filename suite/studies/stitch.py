"""``evoboard bench stitch``: which stitched combinations of two trained networks dominate a parent (S2).

Guijt et al. 2024 (see ``evoboard.agents.stitching``). Two digits classifiers are trained with the
``adam`` reference, different seeds and widths (A: 3 hidden layers of 64, B: 3 of 24), each
saved by its run as a checkpoint and read back from it. Stitches are fitted by least squares
on the activations of the training images; a small multi-objective GA over the switches
(accuracy on the first half of the held-out images up, multiply-adds per image down) searches
the combinations without retraining any; test accuracy is on the other half. Writes ``stitch.csv`` (every genotype the
GA evaluated: switches, output, validation and test accuracy, multiply-adds, on the front,
dominates A, dominates B) and ``stitch.png`` (test accuracy vs multiply-adds) into the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from evoboard.agents import checkpoints
from evoboard.agents.stitching import Genotype, MLPNetwork, StitchedPair, dominates, pareto_front, pareto_ga
from evoboard.envs.digits import digits_split
from evoboard.suite.publish import publish, pyplot
from evoboard.suite.studies.parents import train_parent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NETWORKS = (("A", 0, "64,64,64"), ("B", 1, "24,24,24"))
"""(name, training seed, hidden widths) of the two parents."""


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).double().mean())


def stitch_table(pair: StitchedPair, data: dict, population: int = 16, generations: int = 12, seed: int = 0):
    """Run the GA on ``pair``; every evaluated genotype as a row, with its front and dominance flags."""
    x_val, y_val = data["val"]
    x_test, y_test = data["test"]

    def objective(g: Genotype) -> tuple[float, int]:
        return accuracy(pair.logits(g, x_val), y_val), pair.macs(g)

    seen = pareto_ga(pair.genes, objective, population, generations, seed, pair.canonical)
    parents = {name: objective(Genotype((False,) * pair.genes, i)) for i, name in enumerate(("A", "B"))}
    front = set(pareto_front({k: v[1:] for k, v in seen.items()}))
    rows = []
    for key, (g, val, macs) in seen.items():
        rows.append({"genotype": key, "switches": key.split(":")[0], "output": key.split(":")[1],
                     "stitches_on": sum(g.switches), "val_accuracy": val,
                     "test_accuracy": accuracy(pair.logits(g, x_test), y_test), "macs": macs,
                     "on_front": key in front, "dominates_A": dominates((val, macs), parents["A"]),
                     "dominates_B": dominates((val, macs), parents["B"])})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["macs", "val_accuracy"], ascending=[True, False])


def figure(table: pd.DataFrame) -> Figure:
    """Test accuracy vs multiply-adds: every evaluated genotype, the front, the parents, and who dominates them."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.scatter(table["macs"], table["test_accuracy"], s=12, color="0.7", label="evaluated")
    dom = table[table["dominates_A"] | table["dominates_B"]]
    ax.scatter(dom["macs"], dom["test_accuracy"], s=30, color="tab:green", label="dominates a parent (val)")
    front = table[table["on_front"]].sort_values("macs")
    ax.plot(front["macs"], front["test_accuracy"], "o-", color="tab:blue", ms=4, label="Pareto front (val)")
    for name, marker in (("A", "s"), ("B", "D")):
        row = table[(table["output"] == name) & (table["stitches_on"] == 0)]
        ax.scatter(row["macs"], row["test_accuracy"], marker=marker, s=70, color="k", zorder=5)
        ax.annotate(f"parent {name}", (row["macs"].iloc[0], row["test_accuracy"].iloc[0]), fontsize=8,
                    xytext=(5, -10), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("multiply-adds per image")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits: stitched networks (no retraining)")
    ax.legend(fontsize=7)
    return fig


def digits_data() -> dict:
    """Stitch-fitting images (the training split), validation images (the first half of the held-out
    split: the GA's objective) and test images (its second half), as tensors. The parents never
    trained on either half, and the GA never sees the test half."""
    x_train, _, x_held, y_held = digits_split(0.2)
    cut = len(y_held) // 2
    t = torch.from_numpy
    return {"fit": t(x_train), "val": (t(x_held[:cut]), t(y_held[:cut])), "test": (t(x_held[cut:]), t(y_held[cut:]))}


def run_stitch(out: str | Path, seeds: int = 1, device: str = "cpu") -> pd.DataFrame:
    """Train both parents, stitch them, search; writes stitch.csv and stitch.png into ``out`` (seed 0 only)."""
    out = Path(out)
    torch.set_num_threads(1)
    nets = {}
    for name, seed, hidden in NETWORKS:
        path, row = train_parent(out, seed=seed, hidden=hidden, device=device)
        nets[name] = MLPNetwork.from_tensors(checkpoints.load(path).tensors, "tanh")
        print(f"stitch parent {name} ({hidden}, seed {seed}): test accuracy {row['final_score']:.4f} <- {path}")
    data = digits_data()
    pair = StitchedPair(nets["A"], nets["B"], data["fit"])
    table = stitch_table(pair, data)
    publish(out, "stitch", table, figure=figure(table))
    shown = ["genotype", "val_accuracy", "test_accuracy", "macs", "dominates_A", "dominates_B"]
    print(table[table["on_front"]][shown].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"stitch: {len(table)} genotypes evaluated, {int(table['on_front'].sum())} on the front, "
          f"{int(table['dominates_A'].sum())} dominate A, {int(table['dominates_B'].sum())} dominate B")  # fmt: skip
    return table
