"""Any two variants of a leaderboard compared by the claims' rule: per-task IQMs, the pooled test, the verdict.

``evoboard compare X Y`` builds a one-claim study ("X beats Y") and decides it with the very functions
the reference claims use (``evoboard.suite.studies.claims``: exact stratified tests, floors first,
bootstrap intervals), so on a study's own rows it gives exactly that study's numbers for the pair.
A variant is ``encoding/algorithm``, a bare algorithm or encoding name, or ``key=value`` filters on
the run's config (``lowrank/ga,elite_margin=100``). The floor is the study's own when the folder is a
reference study's, else the first of ``random``, ``unigram``, ``bigram`` run on every compared task;
several tasks pool normalized scores (0 at the floor, 1 at Y's IQM; a study's own scale in its folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from evoboard.agents.algorithms import BASELINES
from evoboard.errors import UsageError
from evoboard.suite.board import leaderboard
from evoboard.suite.board.stats import stratified_iqm_ci
from evoboard.suite.publish import markdown_table
from evoboard.suite.studies.claims import Claim, Comparison, Sample, Scale, evaluate_claims, read_table, select

NO_FLOOR = Sample(f"a floor ({', '.join(BASELINES)}: none run on these tasks)", {"algorithm": None})
"""Stands for a floor that is not on the leaderboard: it selects no rows, so the claim is undecided, "floor not
measured", by the claims' own rule (a verdict needs each variant to beat its floor)."""
RUN_LOCAL = ("seed", "device", "threads")
"""Config keys in which the runs of one variant may differ."""


def variants(table: pd.DataFrame) -> str:
    """The ``encoding/algorithm`` pairs present, for an error message."""
    pairs = sorted(set(zip(table["encoding"].astype(str), table["algorithm"].astype(str), strict=True)))
    return ", ".join(f"{e}/{a}" for e, a in pairs) or "none"


def _typed(table: pd.DataFrame, key: str, value: str) -> Any:
    """``value`` as the column holds it (``100`` matches a float column's 100.0); "none" or "" is unset."""
    if value.strip().lower() in ("", "none"):
        return None
    column = table[key]
    try:
        if pd.api.types.is_integer_dtype(column):
            return int(value)
        if pd.api.types.is_float_dtype(column):
            return float(value)
    except ValueError:
        return value
    return value.strip()


def parse_variant(text: str, table: pd.DataFrame) -> Sample:
    """``text`` (``encoding/algorithm``, a bare name, or ``key=value`` filters joined by commas) as a Sample."""
    where: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
            if key not in table.columns:
                keys = sorted(c for c in table.columns if c not in leaderboard.COLUMNS or c in ("task", "policy_name"))
                raise UsageError(f"variant {text}: no config key {key!r} in the leaderboard (keys: {', '.join(keys)})")
            where[key] = _typed(table, key, value)
        elif "/" in part:
            where["encoding"], where["algorithm"] = part.split("/", 1)
        elif part in set(table["algorithm"].astype(str)):
            where["algorithm"] = part
        elif part in set(table["encoding"].astype(str)):
            where["encoding"] = part
        else:
            raise UsageError(
                f"unknown variant {text!r}: use encoding/algorithm or key=value; present: {variants(table)}"
            )
    sample = Sample(text, where)
    rows = select(table, sample)
    if rows.empty:
        raise UsageError(f"no runs of {text} on this leaderboard; variants present: {variants(table)}")
    _one_configuration(text, rows)
    return sample


def _identity(config: str) -> str:
    data = json.loads(config)
    for key in RUN_LOCAL:
        data.pop(key, None)
        for part in data.get("settings", {}).values():
            part.pop(key, None)
    return json.dumps(data, sort_keys=True)


def _one_configuration(text: str, rows: pd.DataFrame) -> None:
    """A UsageError naming the keys that differ when ``text`` selects runs of several configurations on a task."""
    for task, group in rows.groupby("task"):
        if group["config"].map(_identity).nunique() > 1:
            extra = [c for c in group.columns if c not in leaderboard.COLUMNS and c not in RUN_LOCAL]
            differ = [c for c in extra if group[c].map(repr).nunique() > 1]
            key = differ[0] if differ else "KEY"
            values = ", ".join(sorted({"none" if pd.isna(v) else str(v) for v in group[key]})) if differ else "?"
            raise UsageError(f"variant {text} matches runs of several configurations on {task} (they differ in "
                             f"{', '.join(differ) or 'their config'}: {key} = {values}): narrow it, e.g. "
                             f"{text},{key}=VALUE")  # fmt: skip


def study_rule(folder: str | Path) -> tuple[Sample | None, Scale | None] | None:
    """(floor, scale) of the reference study whose folder this is (by its name), None for another folder."""
    from evoboard.suite.studies.reference.catalogue import STUDIES

    study = STUDIES.get(Path(folder).resolve().name)
    if study is None:
        return None
    floor = next((c.requires[0].y for c in study.claims if c.requires and c.requires[0].y.table == "leaderboard"), None)
    scale = next((c.scale for c in study.claims if c.scale is not None), None)
    return floor, scale


def floor_and_scale(
    folder: str | Path, table: pd.DataFrame, tasks: list[str], y: Sample
) -> tuple[Sample, Scale | None]:
    """The floor both variants must beat and how tasks pool: the study's own, else the first baseline run on
    every task (``NO_FLOOR`` when none is) and, over several tasks, 0 at the floor and 1 at Y's IQM."""
    rule = study_rule(folder)
    if rule is not None and rule[0] is not None:
        return rule
    floor = NO_FLOOR
    for name in BASELINES:
        if set(tasks) <= set(table.loc[table["algorithm"] == name, "task"]):
            floor = Sample(name, {"algorithm": name})
            break
    return floor, Scale(floor, y) if len(tasks) > 1 and floor is not NO_FLOOR else None


def claim_for(folder: str | Path, table: pd.DataFrame, x: Sample, y: Sample, task: str | None = None,
              floor: Sample | None = None, finding: str = "") -> Claim:  # fmt: skip
    """ "X beats Y" as a claim: on ``task`` or every task both have, each gated by its floor."""
    tasks = [task] if task else sorted(set(select(table, x)["task"]) & set(select(table, y)["task"]))
    found, scale = floor_and_scale(folder, table, tasks, y)
    floor = floor or found
    if scale is not None and scale.floor is not floor and study_rule(folder) is None:
        scale = Scale(floor, y)
    test = Comparison(x, y, tasks=(task,) if task else None)
    gates = tuple(Comparison(s, floor) for s in (x, y) if dict(s.where) != dict(floor.where))  # not the floor itself
    return Claim(finding or f"{x.label} beats {y.label}", "evoboard compare", test, gates, scale)


def compare(folder: str | Path, x: str, y: str, task: str | None = None, floor: str | None = None) -> dict[str, Any]:
    """The claim row of "X beats Y" (as ``evaluate_claims`` gives it), per-task IQMs, and the rows' commits."""
    if not leaderboard.path_in(folder).exists():
        raise UsageError(f"no leaderboard in {folder} (expected {leaderboard.path_in(folder)})")
    table = read_table(folder, "leaderboard")
    if task is not None and task not in set(table["task"]):
        raise UsageError(f"no runs on task {task} in {folder}; tasks there: {', '.join(sorted(set(table['task'])))}")
    xs, ys = parse_variant(x, table), parse_variant(y, table)
    claim = claim_for(folder, table, xs, ys, task, parse_variant(floor, table) if floor else None)
    row = evaluate_claims(folder, (claim,))[0]
    per_task = []
    for name in row["tasks"].split(", ") if row["tasks"] else []:
        entry: dict[str, Any] = {"task": name}
        for side, sample in (("x", xs), ("y", ys)):
            rows = select(table, sample)
            values = pd.to_numeric(rows.loc[rows["task"] == name, "final_score"], errors="coerce").dropna().to_numpy()
            point, low, high = stratified_iqm_ci([values]) if len(values) else (float("nan"),) * 3
            entry.update({f"{side}_n": len(values), f"{side}_iqm": point, f"{side}_low": low, f"{side}_high": high})
        entry["score_kind"] = ", ".join(sorted(set(table.loc[table["task"] == name, "score_kind"].astype(str))))
        per_task.append(entry)
    commits = {
        side: sorted(set(select(table, s)["git_sha"].dropna().astype(str))) for side, s in (("x", xs), ("y", ys))
    }
    return {**row, "x_commits": " ".join(commits["x"]), "y_commits": " ".join(commits["y"]), "per_task": per_task}


def _ci(point: float, low: float, high: float) -> str:
    return "-" if point != point else f"{point:.4g} [{low:.4g}, {high:.4g}]"


def render_comparison(result: dict[str, Any], fmt: str = "table") -> str:
    """``result`` of ``compare`` as a text report, Markdown, or CSV (claims.csv's columns plus the commits)."""
    from evoboard.suite.studies.claims_report import COLUMNS

    if fmt == "csv":
        return pd.DataFrame([result], columns=[*COLUMNS, "x_commits", "y_commits"]).to_csv(index=False).rstrip("\n")
    r = result
    header = ["task", f"X = {r['x']}: IQM [95% CI]", "n", f"Y = {r['y']}: IQM [95% CI]", "n", "score"]
    body = [[t["task"], _ci(t["x_iqm"], t["x_low"], t["x_high"]), str(t["x_n"]), _ci(t["y_iqm"], t["y_low"],
             t["y_high"]), str(t["y_n"]), t["score_kind"]] for t in r["per_task"]]  # fmt: skip
    same = r["x_commits"] == r["y_commits"] and " " not in r["x_commits"]
    lines = [
        f"pooled, normalization {r['normalization'] or '-'}: X {_ci(r['x_iqm'], r['x_low'], r['x_high'])}, "
        f"Y {_ci(r['y_iqm'], r['y_low'], r['y_high'])}",
        f"P(X > Y) = {_ci(r['effect'], r['p_low'], r['p_high'])} over {r['n_x']}/{r['n_y']} runs "
        f"({r['design'] or '-'}; missing {r['missing_x']}/{r['missing_y']})",
        f"test: {r['test'] or '-'}; p(X beats Y) = {r['p_greater']:.3g}, p(Y beats X) = {r['p_less']:.3g}",
        f"floors: {r['floors'] or '-'}",
        f"verdict: {r['verdict']}" + (f": {r['reason']}" if r["reason"] else ""),
        f"commits: X {r['x_commits'] or '-'}; Y {r['y_commits'] or '-'}"
        + ("" if same else " (the rows come from different commits)"),
    ]
    if fmt == "markdown":
        return markdown_table(header, body) + "\n" + "\n".join(f"- {line}" for line in lines)
    width = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)) for row in [header, *body]]
    return "\n".join([*table, "", *lines])


def write_suite_claims(out: str | Path, comparisons: tuple[dict[str, str], ...], command: str = "") -> list[dict]:
    """A suite file's ``[[compare]]`` claims, one Holm family, into ``out/claims.md`` and ``claims.csv``."""
    from evoboard.suite.studies.claims_report import write_claims

    table = read_table(out, "leaderboard")
    claims = []
    for c in comparisons:
        floor = parse_variant(c["floor"], table) if c.get("floor") else None
        claims.append(claim_for(out, table, parse_variant(c["x"], table), parse_variant(c["y"], table), c.get("task"),
                                floor))  # fmt: skip
    rows = write_claims(out, tuple(claims), command or None)
    print(f"{len(rows)} claims ({', '.join(r['verdict'] for r in rows)}) in {Path(out) / 'claims.md'}")
    return rows
