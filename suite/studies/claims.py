"""A paper's claim tested on a study folder: which runs to compare, the test, the verdict and its reason.

A claim says "variant X beats variant Y" (optionally "within a margin": X plus the margin beats Y,
a non-inferiority reading for findings like "matches" or "near-gradient accuracy"), stratified by
task, on one value of one of the study's tables: ``leaderboard`` (``final_score``, with every
setting of ``config`` as a column too) or a CSV the study wrote (``lottery``, ``window``, ...).

- **Missing values** (NaN: a stitch that does not exist, a run without the column) are dropped and
  counted; a side with nothing measured leaves the claim undecided, "not measured".
- **Pairs** are analysed as pairs: when both sides' rows carry a ``seed`` and the same (task, seed)
  keys, run i of X is paired with run i of Y (a child with its parent, two masks of one init, two
  variants whose runs share what the seed fixes: init, minibatches, episodes).
- **The decision** is an exact test (``evoboard.suite.board.decide``: stratified Mann-Whitney, or
  Wilcoxon signed-rank for pairs), one-sided each way at 0.025, Holm-corrected over the claims of the study.
- **Floors**: a claim is decided, either way, only when each variant it compares beats its floor
  (``requires``: one-sided exact test at 0.05, e.g. random search, unigram, chance accuracy).
  A budget that cannot confirm a finding cannot refute it either.
- **Pooling**: IQMs over several tasks pool normalized scores, (score - floor) / (reference - floor)
  per task (``Scale``); the test itself is per-task ranks and needs no normalization.
- A claim whose rows a known bug invalidated says ``waiting`` (why) and is not tested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evoboard.suite.board import decide, leaderboard
from evoboard.suite.board.decide import NOT_REPRODUCED, REPRODUCED, UNDECIDED, WAITING  # noqa: F401 (re-exported)
from evoboard.suite.board.stats import improvement_ci, iqm, normalized, paired_improvement_ci, stratified_iqm_ci


@dataclass(frozen=True)
class Sample:
    """The runs of one variant: rows of ``table`` whose columns equal ``where`` (None: unset), one ``value`` each;
    or, with ``constant``, a fixed score per task (chance accuracy) that every run is paired with."""

    label: str
    where: Mapping[str, Any] = field(default_factory=dict)
    table: str = "leaderboard"
    value: str = "final_score"
    constant: Mapping[str, float] | None = None


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
    paired: bool | None = None
    """None: paired when both sides have the same (task, seed) keys; False: never."""


@dataclass(frozen=True)
class Scale:
    """Per task, 0 at ``floor``'s IQM and 1 at ``reference``'s: how scores of several tasks are pooled."""

    floor: Sample
    reference: Sample


@dataclass(frozen=True)
class Claim:
    """One finding of a paper and the comparison that tests it."""

    finding: str
    paper: str
    test: Comparison
    requires: tuple[Comparison, ...] = field(default_factory=tuple)
    """Each compared variant against its floor; each must be won one-sided at ``decide.FLOOR_ALPHA``."""
    scale: Scale | None = None
    """How the IQMs pool tasks (None: raw values, for one task or a value in the same units on each)."""
    waiting: str = ""
    """Why its rows cannot decide it until the re-run (a fixed bug); empty: test it."""


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


def strata(rows: pd.DataFrame, value: str) -> dict[str, pd.Series]:
    """Task -> the runs' values indexed by seed where the table has one (one stratum "-" without a task
    column); missing values (NaN) are kept here and dropped by ``measure``, which counts them."""
    if rows.empty:
        return {}
    rows = rows.assign(_task=rows["task"] if "task" in rows.columns else "-")
    if value not in rows.columns:  # a table from before the column existed: nothing measured
        rows = rows.assign(**{value: np.nan})
    keyed = rows.set_index("seed") if "seed" in rows.columns else rows.reset_index(drop=True)
    return {t: pd.to_numeric(g[value], errors="coerce").astype(float) for t, g in keyed.groupby("_task", sort=True)}


def _higher(comparison: Comparison, rows: pd.DataFrame) -> bool:
    if comparison.higher_is_better is not None:
        return comparison.higher_is_better
    kinds = set(rows.get("score_kind", pd.Series(dtype=str)).dropna())
    return not kinds & leaderboard.LOWER_IS_BETTER


def _side(folder: str | Path, sample: Sample) -> tuple[dict[str, pd.Series], pd.DataFrame]:
    if sample.constant is not None:
        return {}, pd.DataFrame()
    rows = select(read_table(folder, sample.table), sample)
    return strata(rows, sample.value), rows


def _level(folder: str | Path, sample: Sample, task: str) -> float:
    """A floor's or reference's level on ``task``: its constant, or the IQM of its runs there."""
    if sample.constant is not None:
        return float(sample.constant.get(task, np.nan))
    runs = _side(folder, sample)[0].get(task)
    return iqm(runs.dropna().to_numpy()) if runs is not None and runs.notna().any() else float("nan")


NAN_FIELDS = ("effect", "p_low", "p_high", "p_greater", "p_less", "x_iqm", "x_low", "x_high", "y_iqm", "y_low",
              "y_high")  # fmt: skip


def measure(folder: str | Path, comparison: Comparison, scale: Scale | None = None, seed: int = 0) -> dict[str, Any]:
    """The test of X against Y, P(X > Y) with its bootstrap CI, both sides' IQMs with CIs, n and missing per side."""
    x, y = comparison.x, comparison.y
    xs, x_rows = _side(folder, x)
    ys, y_rows = _side(folder, y)
    if y.constant is not None:  # every run of X against the same fixed level
        ys = {t: pd.Series(y.constant[t], index=v.index) for t, v in xs.items() if t in y.constant}
    tasks = [t for t in (comparison.tasks or sorted(set(xs) | set(ys))) if t in xs or t in ys]
    missing_x = sum(int(xs[t].isna().sum()) for t in tasks if t in xs)
    missing_y = sum(int(ys[t].isna().sum()) for t in tasks if t in ys)
    same_keys = all(t in xs and t in ys and set(xs[t].index) == set(ys[t].index) for t in tasks)  # before drops
    xs = {t: v.dropna() for t, v in xs.items() if t in tasks and v.notna().any()}
    ys = {t: v.dropna() for t, v in ys.items() if t in tasks and v.notna().any()}
    both = [t for t in tasks if t in xs and t in ys]
    out: dict[str, Any] = {"x": x.label, "y": y.label, "tasks": ", ".join(both or tasks),
                           "n_x": sum(len(xs[t]) for t in (both or xs)), "n_y": sum(len(ys[t]) for t in (both or ys)),
                           "missing_x": missing_x, "missing_y": missing_y, "design": "", "test": "",
                           "normalization": "", **dict.fromkeys(NAN_FIELDS, float("nan"))}  # fmt: skip
    if not both:
        return out
    sign = 1.0 if _higher(comparison, pd.concat([x_rows, y_rows])) else -1.0
    seeded = all("seed" in rows.columns or s.constant is not None for s, rows in ((x, x_rows), (y, y_rows)))
    keys_match = seeded and all(xs[t].index.is_unique and ys[t].index.is_unique for t in both)
    paired = comparison.paired is not False and keys_match and same_keys
    if paired:  # pairs whose two values were both measured
        common = {t: sorted(set(xs[t].index) & set(ys[t].index)) for t in both}
        xv = [sign * xs[t][common[t]].to_numpy() + comparison.margin for t in both]
        yv = [sign * ys[t][common[t]].to_numpy() for t in both]
        result, ci = decide.signed_rank_test(xv, yv), paired_improvement_ci(xv, yv, seed=seed)
        out["n_x"] = out["n_y"] = sum(len(c) for c in common.values())
    else:
        xv = [sign * xs[t].to_numpy() + comparison.margin for t in both]
        yv = [sign * ys[t].to_numpy() for t in both]
        result, ci = decide.rank_sum_test(xv, yv), improvement_ci(xv, yv, seed=seed)
    raw_x, raw_y = [xs[t].to_numpy() for t in both], [ys[t].to_numpy() for t in both]
    out["normalization"] = f"none ({comparison.x.value}{', one task' if len(both) == 1 else ''})"
    if scale is not None:
        levels = {t: (_level(folder, scale.floor, t), _level(folder, scale.reference, t)) for t in both}
        raw_x = [normalized(v, *levels[t]) for v, t in zip(raw_x, both, strict=True)]
        raw_y = [normalized(v, *levels[t]) for v, t in zip(raw_y, both, strict=True)]
        out["normalization"] = "(v - floor) / (reference - floor); " + "; ".join(
            f"{t}: {scale.floor.label} {f:.4g}, {scale.reference.label} {r:.4g}" for t, (f, r) in levels.items()
        )
    xi = stratified_iqm_ci(raw_x, seed=seed)
    yi = stratified_iqm_ci(raw_y, seed=seed) if y.constant is None or scale is not None else (float(np.mean(
        np.concatenate(raw_y))),) * 3  # fmt: skip
    values = (result.effect, ci[1], ci[2], result.p_greater, result.p_less, *xi, *yi)
    return {**out, **dict(zip(NAN_FIELDS, values, strict=True)), "design": "paired" if paired else "unpaired",
            "test": result.test}  # fmt: skip


def _floors(folder: str | Path, claim: Claim, seed: int) -> tuple[str, str, str]:
    """(each floor's P and p, the first floor not beaten or '', what would beat that floor or '')."""
    texts, failed, plan = [], "", ""
    for c in claim.requires:
        r = measure(folder, c, seed=seed)
        if r["p_greater"] != r["p_greater"]:  # NaN: nothing measured on one side
            texts.append(f"{c.x.label} vs {c.y.label}: not measured")
            failed = failed or f"floor not measured: {c.x.label} vs {c.y.label}"
            continue
        texts.append(f"P({c.x.label} > {c.y.label}) = {r['effect']:.2f}, p = {r['p_greater']:.3g}")
        if r["p_greater"] > decide.FLOOR_ALPHA and not failed:
            failed = f"floor not beaten: {c.x.label} vs {c.y.label} (P = {r['effect']:.2f}, p = {r['p_greater']:.3g})"
            plan = _plan(r, decide.FLOOR_ALPHA, f"{c.x.label} to beat {c.y.label}", floor=True)
    return "; ".join(texts), failed, plan


def _plan(row: Mapping[str, Any], alpha: float, what: str, floor: bool = False) -> str:
    """What the observed effect says would decide ``what`` (``decide.seeds_to_decide``), in words; a floor
    the variant does not even lean towards beating (P <= 1/2) needs a larger budget, not more seeds."""
    tasks = len([t for t in str(row["tasks"]).split(", ") if t])
    if floor and row["effect"] <= 0.5:
        return f"no number of seeds: {what} needs a larger budget (observed P = {row['effect']:.2f} <= 0.5)"
    n = decide.seeds_to_decide(row["effect"], tasks, row["design"] == "paired", alpha)
    if n is None:
        return f"beyond any seed budget at the observed P = {row['effect']:.2f}"
    return (f"about {n} seeds a task for {what} (observed P = {row['effect']:.2f}, power {decide.POWER:g} "
            f"at alpha {alpha:.3g}; Noether's approximation)")  # fmt: skip


def evaluate_claims(folder: str | Path, claims: tuple[Claim, ...], seed: int = 0) -> list[dict[str, Any]]:
    """Every claim's row: evidence, floors, Holm-adjusted p (each direction over the tested claims), verdict, reason."""
    rows = []
    for claim in claims:
        row = {"finding": claim.finding, "paper": claim.paper, **measure(folder, claim.test, claim.scale, seed)}
        row["floors"], row["floor_failed"], row["to_decide"] = _floors(folder, claim, seed) if claim.requires else (
            "", "", "")  # fmt: skip
        rows.append(row)
    tested = [not c.waiting and r["p_greater"] == r["p_greater"] for c, r in zip(claims, rows, strict=True)]
    greater = decide.holm([r["p_greater"] if t else np.nan for r, t in zip(rows, tested, strict=True)])
    less = decide.holm([r["p_less"] if t else np.nan for r, t in zip(rows, tested, strict=True)])
    for claim, row, g, lo in zip(claims, rows, greater, less, strict=True):
        row["p_adjusted"] = float(min(g, lo)) if g == g else float("nan")
        floor_failed = row.pop("floor_failed")
        if claim.waiting:
            row["verdict"], row["reason"] = WAITING, claim.waiting
        elif row["p_greater"] != row["p_greater"]:
            empty = [s for s, n in ((row["x"], row["n_x"]), (row["y"], row["n_y"])) if not n]
            row["verdict"], row["reason"] = UNDECIDED, f"not measured: no {' nor '.join(empty)} values"
        elif floor_failed:
            row["verdict"], row["reason"] = UNDECIDED, floor_failed
        else:
            row["verdict"], row["reason"] = decide.ruling(g, lo)
            strictest = decide.ALPHA / max(sum(tested), 1)  # Holm's first step: what a lone decision must meet
            row["to_decide"] = _plan(row, strictest, "this claim") if row["verdict"] == UNDECIDED else ""
    return rows


def evaluate(folder: str | Path, claim: Claim, seed: int = 0) -> dict[str, Any]:
    """One claim alone (a study of one claim: Holm changes nothing)."""
    return evaluate_claims(folder, (claim,), seed)[0]
