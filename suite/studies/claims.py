"""A paper's claim tested on a study folder: which runs to compare, the statistic, the verdict.

A claim says "variant X beats variant Y" (optionally "within a margin": X plus the margin beats Y,
a non-inferiority reading for findings like "matches" or "near-gradient accuracy"), stratified by
task, on one value of one of the study's tables: ``leaderboard`` (``final_score``, with every
setting of ``config`` as a column too) or a CSV the study wrote (``lottery``, ``window``, ...).
The evidence is the probability of improvement P(X > Y) with its stratified bootstrap CI and each
side's IQM with its CI (Agarwal et al. 2021, ``evoboard.suite.board.stats``). Verdict:

- ``reproduced``: the CI of P(X > Y) lies above 0.5 and every precondition holds (e.g. X beats the
  ``random`` floor: a budget where the method has learned nothing cannot confirm a finding);
- ``not reproduced``: the CI lies below 0.5;
- ``inconclusive at this budget``: anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evoboard.suite.board import leaderboard
from evoboard.suite.board.stats import improvement_ci, performance_profile, stratified_iqm_ci
from evoboard.suite.publish import markdown_table, publish, pyplot

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive at this budget"


@dataclass(frozen=True)
class Sample:
    """The runs of one variant: rows of ``table`` whose columns equal ``where`` (None: unset), one ``value`` each."""

    label: str
    where: Mapping[str, Any]
    table: str = "leaderboard"
    value: str = "final_score"


@dataclass(frozen=True)
class Comparison:
    """X beats Y on ``value``, task by task (``tasks``: None is every task both have)."""

    x: Sample
    y: Sample
    higher_is_better: bool | None = None
    """None: from the rows' ``score_kind`` (bits per char: lower is better)."""
    margin: float = 0.0
    """X is credited this much in the better direction: "X is within ``margin`` of Y or beats it"."""
    tasks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Claim:
    """One finding of a paper and the comparison that tests it."""

    finding: str
    paper: str
    test: Comparison
    requires: tuple[Comparison, ...] = field(default_factory=tuple)
    """Preconditions that must each be reproduced (e.g. the method beats its baseline)."""


def flat(table: pd.DataFrame) -> pd.DataFrame:
    """Leaderboard rows with every setting of ``config`` as a column (``elite_margin``, ``sigma``, ``policy_name``)."""
    settings = []
    for text in table["config"]:
        config = json.loads(text)
        row = {k: v for k, v in config.items() if not isinstance(v, dict)}
        row["policy_name"] = row.pop("policy", None)  # the registered name; the column describes the shape
        for part in config.get("settings", {}).values():
            row.update({k: v for k, v in part.items() if k not in row})
        settings.append(row)
    extra = pd.DataFrame(settings, index=table.index)
    return table.join(extra[[c for c in extra.columns if c not in table.columns]])


def read_table(folder: str | Path, name: str) -> pd.DataFrame:
    """One of a study's tables: ``leaderboard`` (flattened) or ``<folder>/<name>.csv``."""
    if name == "leaderboard":
        return flat(leaderboard.read(folder))
    path = Path(folder) / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the study first")
    return pd.read_csv(path)


def select(table: pd.DataFrame, sample: Sample) -> pd.DataFrame:
    """The rows of ``sample``'s variant."""
    keep = pd.Series(True, index=table.index)
    for key, want in sample.where.items():
        if key not in table.columns:
            keep &= want is None
        elif want is None:
            keep &= table[key].isna()
        else:
            keep &= table[key].astype(str) == str(want)
    return table[keep]


def strata(rows: pd.DataFrame, value: str) -> dict[str, np.ndarray]:
    """Task -> the runs' values (one stratum when the table has no task column)."""
    if rows.empty:
        return {}
    if "task" not in rows.columns:
        return {"-": rows[value].to_numpy(dtype=float)}
    return {task: group[value].to_numpy(dtype=float) for task, group in rows.groupby("task", sort=True)}


def verdict(low: float, high: float, preconditions: list[tuple[float, float]] = ()) -> str:
    """The rule of the module docstring on the CI (low, high) of P(X > Y) and of each precondition."""
    if high < 0.5:
        return NOT_REPRODUCED
    if low > 0.5 and all(p_low > 0.5 for p_low, _ in preconditions):
        return REPRODUCED
    return INCONCLUSIVE


def _higher(comparison: Comparison, rows: pd.DataFrame) -> bool:
    if comparison.higher_is_better is not None:
        return comparison.higher_is_better
    kinds = set(rows.get("score_kind", pd.Series(dtype=str)).dropna())
    return not kinds & leaderboard.LOWER_IS_BETTER


def compare(folder: str | Path, comparison: Comparison, seed: int = 0) -> dict[str, Any]:
    """P(X > Y) with its CI and both sides' IQM with CIs; NaN where either side has no runs."""
    x_rows = select(read_table(folder, comparison.x.table), comparison.x)
    y_rows = select(read_table(folder, comparison.y.table), comparison.y)
    xs, ys = strata(x_rows, comparison.x.value), strata(y_rows, comparison.y.value)
    tasks = [t for t in (comparison.tasks or sorted(xs)) if t in xs and t in ys]
    out: dict[str, Any] = {"x": comparison.x.label, "y": comparison.y.label, "tasks": ", ".join(tasks),
                           "n_x": sum(len(xs[t]) for t in tasks), "n_y": sum(len(ys[t]) for t in tasks)}  # fmt: skip
    if not tasks:
        return {**out, **dict.fromkeys(["p", "p_low", "p_high", "x_iqm", "x_low", "x_high", "y_iqm", "y_low",
                                        "y_high"], float("nan")), "higher_is_better": True}  # fmt: skip
    higher = _higher(comparison, pd.concat([x_rows, y_rows]))
    sign = 1.0 if higher else -1.0
    credited = [sign * xs[t] + comparison.margin for t in tasks]  # oriented so that larger is better
    p = improvement_ci(credited, [sign * ys[t] for t in tasks], seed=seed)
    x = stratified_iqm_ci([xs[t] for t in tasks], seed=seed)
    y = stratified_iqm_ci([ys[t] for t in tasks], seed=seed)
    names = ("p", "p_low", "p_high", "x_iqm", "x_low", "x_high", "y_iqm", "y_low", "y_high")
    return {**out, **dict(zip(names, (*p, *x, *y), strict=True)), "higher_is_better": higher}


def evaluate(folder: str | Path, claim: Claim, seed: int = 0) -> dict[str, Any]:
    """The claim's row: the test's evidence, its preconditions' P lower bounds, the verdict."""
    test = compare(folder, claim.test, seed)
    pre = [compare(folder, c, seed) for c in claim.requires]
    measured = test["p_low"] == test["p_low"]  # not NaN
    ruled = verdict(test["p_low"], test["p_high"], [(r["p_low"], r["p_high"]) for r in pre]) if measured else None
    return {"finding": claim.finding, "paper": claim.paper, **test,
            "requires": "; ".join(f"P({r['x']} > {r['y']}) = {r['p']:.2f} [{r['p_low']:.2f}, {r['p_high']:.2f}]"
                                  for r in pre),
            "verdict": ruled or "not measured (no runs)"}  # fmt: skip


def _ci(point: float, low: float, high: float) -> str:
    return f"{point:.4g} [{low:.4g}, {high:.4g}]"


def claims_markdown(rows: list[dict[str, Any]], command: str | None = None) -> str:
    """The claims table: finding, paper, (command), what we measured with CIs, verdict."""
    header = ["finding", "paper", *(["study"] if command else []), "measured (IQM [95% CI])", "P(X > Y) [95% CI]",
              "verdict"]  # fmt: skip
    body = []
    for r in rows:
        x, y = _ci(r["x_iqm"], r["x_low"], r["x_high"]), _ci(r["y_iqm"], r["y_low"], r["y_high"])
        measured = f"{r['x']}: {x}; {r['y']}: {y} (n={r['n_x']}/{r['n_y']}; {r['tasks']})"
        if r["requires"]:
            measured += f"; requires {r['requires']}"
        cells = [r["finding"], r["paper"], *([f"`{command}`"] if command else []), measured,
                 _ci(r["p"], r["p_low"], r["p_high"]), f"**{r['verdict']}**"]  # fmt: skip
        body.append(cells)
    return markdown_table(header, body)


def profile_figure(folder: str | Path, claims: tuple[Claim, ...]):
    """Performance profiles: per task of the claims' tests, the fraction of runs of each variant beating tau."""
    plt = pyplot()
    curves: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # (value, task) -> label -> runs
    higher: dict[tuple[str, str], bool] = {}
    for claim in claims:
        for sample in (claim.test.x, claim.test.y):
            rows = select(read_table(folder, sample.table), sample)
            for task, runs in strata(rows, sample.value).items():
                curves.setdefault((sample.value, task), {})[sample.label] = runs
                higher[(sample.value, task)] = _higher(claim.test, rows)
    panels = list(curves) or [("-", "-")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, key in zip(axes[0], panels, strict=True):
        runs = curves.get(key, {})
        if runs:
            pooled = np.concatenate(list(runs.values()))
            taus = np.linspace(pooled.min(), pooled.max(), 101)
            for label, values in runs.items():
                ax.step(taus, performance_profile([values], taus, higher.get(key, True)), where="post", label=label)
            ax.legend(fontsize=7)
        better = "above" if higher.get(key, True) else "below"
        ax.set(xlabel=f"{key[0]} threshold tau", ylabel=f"fraction of runs {better} tau", title=key[1])
    return fig


def write_claims(folder: str | Path, claims: tuple[Claim, ...], command: str | None = None) -> list[dict[str, Any]]:
    """Evaluate ``claims`` on ``folder``; write ``claims.md``, ``claims.csv`` and ``profile.png`` there."""
    rows = [evaluate(folder, claim) for claim in claims]
    publish(folder, "claims", pd.DataFrame(rows), markdown=claims_markdown(rows, command), echo=False)
    publish(folder, "profile", figure=profile_figure(folder, claims))
    return rows
