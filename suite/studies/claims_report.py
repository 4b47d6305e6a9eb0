"""A study's claims written out: ``claims.md`` (the table a reader quotes), ``claims.csv`` and ``profile.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evoboard.suite.board.decide import ALPHA, FLOOR_ALPHA
from evoboard.suite.board.stats import performance_profile
from evoboard.suite.publish import markdown_table, publish, pyplot
from evoboard.suite.studies.claims import Claim, _higher, evaluate_claims, read_table, select, strata

COLUMNS = ["finding", "paper", "x", "y", "tasks", "normalization", "n_x", "n_y", "missing_x", "missing_y", "design",
           "test", "effect", "p_low", "p_high", "p_greater", "p_less", "p_adjusted", "x_iqm", "x_low", "x_high",
           "y_iqm", "y_low", "y_high", "floors", "verdict", "reason", "to_decide"]  # fmt: skip
RULE = (
    f"Verdicts: exact one-sided tests each way at {ALPHA:g} (0.05 two-sided; stratified Mann-Whitney, Wilcoxon "
    f"signed-rank for pairs), Holm-corrected over the tested claims of each study; a claim is decided only when "
    f"each compared variant beats its floor (one-sided, {FLOOR_ALPHA:g}). P(X > Y) and IQM intervals: 95% "
    f"percentile stratified bootstrap, 50,000 resamples. See docs/claims.md."
)


def _ci(point: float, low: float, high: float) -> str:
    return "-" if point != point else f"{point:.4g} [{low:.4g}, {high:.4g}]"


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def claims_markdown(rows: list[dict[str, Any]], command: str | None = None) -> str:
    """The claims table: finding, paper, (command), what was measured, P(X > Y), the test, the verdict and why."""
    header = ["finding", "paper", *(["study"] if command else []), "measured (IQM [95% CI])", "n (missing)",
              "P(X > Y) [95% CI]", "test, Holm-adjusted p", "verdict"]  # fmt: skip
    body = []
    for r in rows:
        x, y = _ci(r["x_iqm"], r["x_low"], r["x_high"]), _ci(r["y_iqm"], r["y_low"], r["y_high"])
        measured = f"{r['x']}: {x}; {r['y']}: {y} ({_text(r['tasks'])}; normalization: {_text(r['normalization'])})"
        if _text(r.get("floors")):
            measured += f"; floors: {r['floors']}"
        n = f"{r['n_x']}/{r['n_y']} ({r['missing_x']}/{r['missing_y']})"
        test = f"{_text(r['design'])} {_text(r['test'])}, p = {r['p_adjusted']:.3g}" if r["p_adjusted"] == r[
            "p_adjusted"] else "-"  # fmt: skip
        ruled = f"**{r['verdict']}**" + (f": {r['reason']}" if _text(r.get("reason")) else "")
        if _text(r.get("to_decide")):
            ruled += f". To decide: {r['to_decide']}"
        body.append([r["finding"], r["paper"], *([f"`{command}`"] if command else []), measured, n,
                     _ci(r["effect"], r["p_low"], r["p_high"]), test, ruled])  # fmt: skip
    return markdown_table(header, body)


def profile_figure(folder: str | Path, claims: tuple[Claim, ...]):
    """Performance profiles: per task of the claims' tests, the fraction of runs of each variant beating tau."""
    plt = pyplot()
    curves: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # (value, task) -> label -> runs
    higher: dict[tuple[str, str], bool] = {}
    for claim in claims:
        for sample in (claim.test.x, claim.test.y):
            if sample.constant is not None:
                continue
            rows = select(read_table(folder, sample.table), sample)
            for task, runs in strata(rows, sample.value).items():
                if runs.notna().any():
                    curves.setdefault((sample.value, task), {})[sample.label] = runs.dropna().to_numpy()
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
    """Evaluate ``claims`` on ``folder``; write ``claims.md`` and ``claims.csv`` (with the tuned settings, if any)
    and ``profile.png`` there."""
    from evoboard.suite.suites.tuning import chosen_for, tuning_markdown  # suites imports the studies: late

    rows = evaluate_claims(folder, claims)
    text = claims_markdown(rows, command) + "\n" + RULE + "\n" + tuning_markdown(folder)
    columns = COLUMNS
    if tuning_markdown(folder):  # each side's chosen setting per task, in claims.csv's ``tuned`` column
        columns = [*COLUMNS, "tuned"]
        for claim, row in zip(claims, rows, strict=True):
            sides = ((s.label, chosen_for(folder, s.where)) for s in (claim.test.x, claim.test.y))
            row["tuned"] = " | ".join(f"{label}: {chosen}" for label, chosen in sides if chosen)
    publish(folder, "claims", pd.DataFrame(rows, columns=columns), markdown=text, echo=False)
    publish(folder, "profile", figure=profile_figure(folder, claims))
    return rows
