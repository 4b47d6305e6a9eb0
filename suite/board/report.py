"""``evoboard report``: plots and a Markdown report for one run folder or a whole output folder.

Per task, runs are grouped into variants (encoding/algorithm plus any setting that differs
between the task's runs, such as an early-termination rule); seeds of a variant are drawn as
a median line with a min-max band. Plots: fitness against generation and against frames,
and frames used and saved per generation (what early termination bought); for GA runs, the
distribution per encoding of the mutation effects each generation records (the fraction of
children worse than their parent and the median child-minus-parent change, Such et al. 2017's
question of how often a mutation helps). The leaderboard table marks the baseline rows and each
variant's gap to its task's best baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from evoboard.errors import UsageError
from evoboard.suite.board import leaderboard  # noqa: E402
from evoboard.suite.board.tables import AGGREGATE_SHOWN, render  # noqa: E402
from evoboard.suite.publish import save_figure  # noqa: E402

VARIANT_IGNORES = {"seed", "backend"}


@dataclass
class RunRecord:
    run_id: str
    config: dict[str, Any]
    history: pd.DataFrame

    @property
    def task(self) -> str:
        return self.config["task"]

    def flat(self) -> dict[str, Any]:
        """Every setting that defines the run, flattened (``encoding``, ``sigma``, ...)."""
        flat = {k: v for k, v in self.config.items() if not isinstance(v, dict)}
        for part in self.config.get("settings", {}).values():
            flat.update(part)
        return {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in flat.items()}


def collect(path: str | Path) -> tuple[list[RunRecord], Path]:
    """The runs under ``path`` (a run folder or an output folder) and where its report goes."""
    path = Path(path)
    if (path / "spec.json").exists():
        folders, out = [path], path / "report"
    elif (path / "runs").is_dir():
        folders, out = sorted(p for p in (path / "runs").iterdir() if (p / "history.csv").exists()), path / "report"
    else:
        raise UsageError(f"{path} is neither a run folder (spec.json) nor an output folder (runs/)")
    records = [
        RunRecord(f.name, json.loads((f / "spec.json").read_text()), pd.read_csv(f / "history.csv"))
        for f in folders
        if (f / "history.csv").exists()
    ]
    if not records:
        raise UsageError(f"no finished generation under {path} to report on")
    return records, out


def variants(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Runs of one task grouped by what differs between them, seeds together."""
    flats = [r.flat() for r in records]
    # Settings every run has (an encoding's own settings are implied by its name) and that differ.
    shared = set.intersection(*(set(f) for f in flats)) - VARIANT_IGNORES - {"encoding", "algorithm"}
    differing = sorted(k for k in shared if len({str(f[k]) for f in flats}) > 1)
    groups: dict[str, list[RunRecord]] = {}
    for record, flat in zip(records, flats, strict=True):
        label = f"{flat.get('encoding')}/{flat.get('algorithm')}"
        label += "".join(f" {k}={flat.get(k)}" for k in differing)
        groups.setdefault(label, []).append(record)
    return groups


def band(ax, xs: list[np.ndarray], ys: list[np.ndarray], label: str) -> None:
    """Median line and min-max band of several seeds' curves on a common x grid."""
    grid = np.unique(np.concatenate(xs))
    stacked = np.stack([np.interp(grid, x, y) for x, y in zip(xs, ys, strict=True)])  # (seeds, grid)
    (line,) = ax.plot(grid, np.median(stacked, axis=0), label=f"{label} (n={len(xs)})")
    if len(xs) > 1:
        ax.fill_between(grid, stacked.min(axis=0), stacked.max(axis=0), color=line.get_color(), alpha=0.2)


def legend_below(fig, ax) -> None:
    """One legend for the figure, under the plots, so no curve is hidden (``save_figure`` lays the axes out)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(labels)), fontsize=8)


def plot_task(task: str, records: list[RunRecord], out: Path) -> list[Path]:
    slug = task.replace("/", "-")
    groups = variants(records)
    fig, (by_gen, by_frames) = plt.subplots(1, 2, figsize=(12, 4.2))
    for label, runs in groups.items():
        band(by_gen, [r.history["generation"].to_numpy() for r in runs],
             [r.history["best_fitness"].to_numpy() for r in runs], label)  # fmt: skip
        band(by_frames, [r.history["total_frames"].to_numpy() for r in runs],
             [r.history["best_fitness"].to_numpy() for r in runs], label)  # fmt: skip
    by_gen.set(xlabel="generation", ylabel="best fitness in generation", title=f"{task}: fitness by generation")
    by_frames.set(xlabel="frames used", ylabel="best fitness in generation", title=f"{task}: fitness by frames")
    legend_below(fig, by_gen)
    fitness_png = out / f"{slug}_fitness.png"
    save_figure(fig, fitness_png, dpi=110, bbox_inches="tight")

    fig, (used, saved, wall) = plt.subplots(1, 3, figsize=(16, 4.2))
    for label, runs in groups.items():
        gens = [r.history["generation"].to_numpy() for r in runs]
        band(used, gens, [r.history["frames"].to_numpy() for r in runs], label)
        band(saved, gens, [r.history["frames_saved"].to_numpy() for r in runs], label)
        band(wall, gens, [r.history["wall_s"].to_numpy() for r in runs], label)
    used.set(xlabel="generation", ylabel="frames", title=f"{task}: frames used per generation")
    saved.set(xlabel="generation", ylabel="frames", title=f"{task}: frames saved by early termination")
    wall.set(xlabel="generation", ylabel="seconds", title=f"{task}: wall time per generation")
    legend_below(fig, used)
    frames_png = out / f"{slug}_frames.png"
    save_figure(fig, frames_png, dpi=110, bbox_inches="tight")
    return [fitness_png, frames_png, *plot_mutation_effects(task, records, out)]


MUTATION_COLUMNS = {"harmful_fraction": "fraction of children worse than their parent",
                    "median_delta": "median child - parent fitness"}  # fmt: skip


def plot_mutation_effects(task: str, records: list[RunRecord], out: Path) -> list[Path]:
    """Box plots per encoding of each generation's mutation effects (GA runs); none when no run records them."""
    by_encoding: dict[str, list[pd.DataFrame]] = {}
    for record in records:
        if set(MUTATION_COLUMNS) <= set(record.history.columns):
            by_encoding.setdefault(record.config.get("encoding", "?"), []).append(record.history)
    if not by_encoding:
        return []
    fig, axes = plt.subplots(1, len(MUTATION_COLUMNS), figsize=(12, 4.2))
    names = sorted(by_encoding)
    for ax, (column, meaning) in zip(axes, MUTATION_COLUMNS.items(), strict=True):
        values = [pd.concat(by_encoding[n])[column].dropna().to_numpy() for n in names]  # generations of all seeds
        ax.boxplot(values, tick_labels=names)
        ax.set(xlabel="encoding", ylabel=meaning, title=f"{task}: {column} per generation")
    png = out / f"{task.replace('/', '-')}_mutations.png"
    save_figure(fig, png, dpi=110, bbox_inches="tight")
    return [png]


def write_report(path: str | Path) -> Path:
    """Plots per task and ``report.md`` embedding them with the aggregated leaderboard; returns its path."""
    records, out = collect(path)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# evoboard report: {Path(path).resolve().name}", ""]
    by_task: dict[str, list[RunRecord]] = {}
    for record in records:
        by_task.setdefault(record.task, []).append(record)
    board_path = Path(path) if (Path(path) / "leaderboard.csv").exists() else Path(path).parent.parent
    if leaderboard.path_in(board_path).exists():
        table = leaderboard.read(board_path)
        label = {r.run_id: lbl for runs in by_task.values() for lbl, group in variants(runs).items() for r in group}
        table = table[table["run_id"].isin(label)].assign(variant=lambda t: t["run_id"].map(label))
        summary = leaderboard.aggregate(table, by=["task", "variant", "algorithm", "score_kind"])
        shown = ["rank", "task", "variant", *AGGREGATE_SHOWN[4:]]
        lines += ["## Leaderboard (IQM over seeds, 95% bootstrap CI)", "", render(summary, "markdown", shown), ""]
    for task, runs in sorted(by_task.items()):
        lines += [f"## {task}", ""]
        for png in plot_task(task, runs, out):
            lines += [f"![{png.stem}]({png.name})", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
