"""``evoboard bench sparse-window``: the critical mutation window of sparse mutations (S0).

Whitaker & Whitley 2023, "Sparse Mutation Decompositions": mutating a fraction p of a trained
network's weights tolerates a larger per-weight sigma than mutating all of them, so the window
of sigmas whose children stay near the parent shifts right as p falls. From one parent (the
``adam`` reference trained on digits, a few hundred steps, saved as a checkpoint by its run),
this sweeps sigma for p in {1, 0.1, 0.01}: each point is ``CHILDREN`` sparse children of the
parent (genomes (checkpoint link, seed), decoded through ``--set init``'s path). The parent and
the children never train on a selection split (``select_fraction``, 10% of the training
images): the best child and the ensemble (mean probabilities of the top-k children, k chosen
there too; ``evoboard.suite.studies.ensembles.select``) are chosen on it, then parent, best child and
ensemble are scored once on the test images, side by side. The children's test accuracy
(mean, sd, min, max over all of them) describes the window; nothing is chosen by it. Writes
``sparse_window.csv`` and ``sparse_window.png`` in the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from evoboard.agents import PopulationActor
from evoboard.suite.backends.base import build_parts
from evoboard.suite.provenance import resolve_device
from evoboard.suite.publish import publish, pyplot
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.studies.ensembles import ChildEnsembles, EnsembleActor
from evoboard.suite.studies.parents import train_parent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DENSITIES = (1.0, 0.1, 0.01)
SIGMAS = tuple(float(s) for s in np.logspace(-2.5, 1.0, 11))
CHILDREN = 32
SELECT_FRACTION = 0.1  # of the training images: where children and ensemble size are chosen


def sweep(parent: Path, densities=DENSITIES, sigmas=SIGMAS, children: int = CHILDREN, device: str = "cpu") -> list:
    """One row per (p, sigma): parent, best child and ensemble (chosen on the selection split) on test, and the
    test accuracy of all children (mean, sd, min, max)."""
    rows = []
    for p in densities:
        for sigma in sigmas:
            spec = RunSpec("digits", encoding="sparse", population=children, seed=0, device=device,
                           settings={"init": str(parent), "density": p, "sparse_sigma": sigma,
                                     "select_fraction": SELECT_FRACTION})  # fmt: skip
            parts = build_parts(resolve(spec), resolve_device(device))
            task, link = parts.task, parts.encoding.root
            params = parts.encoding.decode([(link, s) for s in range(children)])  # (C, ...) children of the parent
            chosen = ChildEnsembles(parts, children).choose(params, [])
            best, members = chosen.order[0], chosen.order[: chosen.size]
            acc = task.accuracy(PopulationActor(parts.policy, params, parts.device), children)
            ensemble = EnsembleActor(parts.policy, params.select(torch.tensor(members)), parts.device, "probs")
            parent_actor = PopulationActor(parts.policy, parts.encoding.decode([(link,)]), parts.device)
            row = {"density": p, "sigma": sigma, "children": children,
                   "mutated_per_child": parts.encoding.mutated_per_child,
                   "parent_accuracy": task.accuracy(parent_actor)[0], "best_child_accuracy": acc[best],
                   "ensemble_accuracy": task.final_score(ensemble, [])[0], "ensemble_size": chosen.size,
                   "parent_selection": task.selection_fitness(parent_actor)[0],
                   "best_child_selection": chosen.child_fitness[best], "ensemble_selection": chosen.ensemble_fitness,
                   "child_mean": acc.mean(), "child_sd": acc.std(), "child_min": acc.min(),
                   "child_max": acc.max()}  # fmt: skip
            rows.append(row)
            print(f"sparse-window p={p:g} sigma={sigma:.4g}: parent {row['parent_accuracy']:.3f}, best child "
                  f"{row['best_child_accuracy']:.3f}, ensemble of {chosen.size} {row['ensemble_accuracy']:.3f} "
                  f"(children {acc.mean():.3f}, min {acc.min():.3f})")  # fmt: skip
    return rows


def figure(table: pd.DataFrame) -> Figure:
    """Test accuracy vs sigma (log) per density: children's mean and min-max band, the selected best child
    (dash-dot) and ensemble (dotted); the parent dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for p, group in table.groupby("density", sort=False):
        line = ax.plot(group["sigma"], group["child_mean"], marker="o", label=f"children, p={p:g}")[0]
        ax.fill_between(group["sigma"], group["child_min"], group["child_max"], color=line.get_color(), alpha=0.15)
        ax.plot(group["sigma"], group["ensemble_accuracy"], ls=":", color=line.get_color(), label=f"ensemble, p={p:g}")
        ax.plot(group["sigma"], group["best_child_accuracy"], ls="-.", color=line.get_color(), lw=0.8,
                label=f"best child, p={p:g}")  # fmt: skip
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
    parent, row = train_parent(out, device=device, settings={"select_fraction": SELECT_FRACTION})
    print(f"sparse-window parent: {row['run_id']} test accuracy {row['final_score']:.4f}")
    table = pd.DataFrame(sweep(parent, device=device))
    publish(out, "sparse_window", table, figure=figure(table))
    return table
