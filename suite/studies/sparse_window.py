"""``evoboard bench sparse-window``: the critical mutation window of sparse mutations (S0).

Whitaker & Whitley 2023, "Sparse Mutation Decompositions": mutating a fraction p of a trained
network's weights tolerates a larger per-weight sigma than mutating all of them, so the window
of sigmas whose children stay near the parent shifts right as p falls. From one parent (the
``adam`` reference trained on digits, a few hundred steps, saved as a checkpoint by its run),
this sweeps sigma for p in {1, 0.1, 0.01}: each point is ``CHILDREN`` sparse children of the
parent (genomes (checkpoint link, seed), decoded through ``--set init``'s path) scored on the
test images, plus their ensemble (mean probabilities). Writes ``sparse_window.csv`` and
``sparse_window.png`` in the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from agents import PopulationActor
from suite.backends.local import build_parts
from suite.publish import publish, pyplot
from suite.runner import resolve_device
from suite.spec import RunSpec, resolve
from suite.studies.ensembles import EnsembleActor
from suite.studies.parents import train_parent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DENSITIES = (1.0, 0.1, 0.01)
SIGMAS = tuple(float(s) for s in np.logspace(-2.5, 1.0, 11))
CHILDREN = 32


def sweep(parent: Path, densities=DENSITIES, sigmas=SIGMAS, children: int = CHILDREN, device: str = "cpu") -> list:
    """One row per (p, sigma): test accuracy of sparse children (mean, sd, min, max) and of their ensemble."""
    rows = []
    for p in densities:
        for sigma in sigmas:
            spec = RunSpec("digits", encoding="sparse", population=children, seed=0, device=device,
                           settings={"init": str(parent), "density": p, "sparse_sigma": sigma})  # fmt: skip
            resolved = resolve(spec)
            parts = build_parts(resolved, resolve_device(device))
            link = parts.encoding.root
            params = parts.encoding.decode([(link, s) for s in range(children)])  # (C, ...) children of the parent
            acc = parts.task.accuracy(PopulationActor(parts.policy, params, parts.device), children)
            ensemble, _ = parts.task.final_score(EnsembleActor(parts.policy, params, parts.device, "probs"), [])
            parent_acc = parts.task.accuracy(
                PopulationActor(parts.policy, parts.encoding.decode([(link,)]), parts.device)
            )[0]
            rows.append({"density": p, "sigma": sigma, "children": children, "mutated_per_child":
                         parts.encoding.mutated_per_child, "parent_accuracy": parent_acc,
                         "child_mean": acc.mean(), "child_sd": acc.std(), "child_min": acc.min(),
                         "child_max": acc.max(), "ensemble_accuracy": ensemble})  # fmt: skip
            print(f"sparse-window p={p:g} sigma={sigma:.4g}: children {acc.mean():.3f} (min {acc.min():.3f}), "
                  f"ensemble {ensemble:.3f}, parent {parent_acc:.3f}")  # fmt: skip
    return rows


def figure(table: pd.DataFrame) -> Figure:
    """Child test accuracy vs sigma (log), one line per density, min-max band; parent dashed, ensembles dotted."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for p, group in table.groupby("density", sort=False):
        line = ax.plot(group["sigma"], group["child_mean"], marker="o", label=f"children, p={p:g}")[0]
        ax.fill_between(group["sigma"], group["child_min"], group["child_max"], color=line.get_color(), alpha=0.15)
        ax.plot(group["sigma"], group["ensemble_accuracy"], ls=":", color=line.get_color(), label=f"ensemble, p={p:g}")
    ax.axhline(table["parent_accuracy"].iloc[0], ls="--", color="k", label="parent (adam)")
    ax.set_xscale("log")
    ax.set_xlabel("sigma (per mutated weight)")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits: critical mutation window of sparse children")
    ax.legend(fontsize=7)
    return fig


def run_sparse_window(out: str | Path, seeds: int = 1, device: str = "cpu") -> pd.DataFrame:
    """Train the parent (seed 0), sweep, write sparse_window.csv and .png into ``out``."""
    out = Path(out)
    torch.set_num_threads(1)
    parent, row = train_parent(out, device=device)
    print(f"sparse-window parent: {row['run_id']} test accuracy {row['final_score']:.4f}")
    table = pd.DataFrame(sweep(parent, device=device))
    publish(out, "sparse_window", table, figure=figure(table))
    return table
