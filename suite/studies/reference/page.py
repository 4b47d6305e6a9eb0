"""The tables of docs/results.md, made from the committed reference folders so that no number is copied by hand.

    python -m evoboard.suite.studies.reference.page [FOLDER] [--page docs/results.md] [--check]

Per study: the commit its rows were made at, its claims (verdict, both sides' IQMs, P(X > Y), the
Holm-adjusted p and what would decide an undecided one) and the table its claims read, with the floors
in it (a suite study's leaderboard over seeds; a procedure study's per-seed table summed up). The page's
own words stay outside the markers; ``tests/test_docs.py`` checks the block between them is current.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from evoboard.suite.publish import markdown_table

BEGIN = "<!-- generated tables: python -m evoboard.suite.studies.reference.page; edit the code, not this block -->"
END = "<!-- end of generated tables -->"

SUMMARIES: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {
    "garbus-early-stop": (("effects", (), ()),),
    "whitaker-sparse": (("window", ("density",), ("critical_step",)),
                        ("ensembles", (), ("parent_accuracy", "ensemble_accuracy", "ensemble_size"))),
    "lange-tickets": (("lottery", ("task", "method", "round"), ("kept", "final_score")),
                      ("transfer", ("task", "method", "algorithm"), ("final_score",))),
    "guijt-stitch": (("stitch_seeds", ("parent",), ("parent_test", "offspring_test", "candidates", "offspring_macs")),),
}  # fmt: skip
"""Procedure studies: (table, group columns, value columns) summed up as medians over seeds, with n; a table
with no value columns (``effects``, already one row per variant) is shown as it is."""


def _number(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)


def _frame(table: pd.DataFrame) -> str:
    return markdown_table(list(table.columns), [[_number(v) for v in row] for row in table.itertuples(index=False)])


def claims_table(folder: Path) -> str:
    """A study's claims in short: verdict and reason, both sides' IQMs, P(X > Y), adjusted p, what would decide it."""
    claims = pd.read_csv(folder / "claims.csv")
    body = []

    def iqm(c: pd.Series, side: str) -> str:
        point, low, high = (c[f"{side}_{k}"] for k in ("iqm", "low", "high"))
        return "-" if point != point else f"{_number(point)} [{_number(low)}, {_number(high)}]"

    for _, c in claims.iterrows():
        sides = f"{c['x']}: {iqm(c, 'x')}; {c['y']}: {iqm(c, 'y')}"
        if str(c.get("normalization", "")).startswith("(v - floor)"):
            sides += " (normalized per task: 0 = floor, 1 = reference)"
        reason = f": {c['reason']}" if isinstance(c.get("reason"), str) and c["reason"] else ""
        plan = c.get("to_decide")
        body.append([c["finding"], f"**{c['verdict']}**{reason}", sides, f"{_number(c['effect'])} ({c['n_x']} vs "
                     f"{c['n_y']})", _number(c["p_adjusted"]), plan if isinstance(plan, str) else ""])  # fmt: skip
    return markdown_table(["claim", "verdict", "IQM [95% CI]", "P(X > Y) (n)", "Holm p", "to decide"], body)


def leaderboard_table(folder: Path) -> str:
    """A suite study's runs over seeds: n, IQM [95% CI] per task and variant, the floors marked."""
    from evoboard.suite.board import leaderboard

    by = ["task", "encoding", "algorithm", "policy", "population", "generations", "score_kind"]
    table = leaderboard.aggregate(leaderboard.read(folder), by=by)  # adam at 5 and at 320 steps: two rows
    table = table.assign(variant=table["encoding"] + "/" + table["algorithm"] + " " + table["policy"],
                         iqm_ci=[f"{_number(i)} [{_number(lo)}, {_number(hi)}]" for i, lo, hi in
                                 zip(table["iqm"], table["ci_low"], table["ci_high"], strict=True)],
                         floor=["floor" if str(b) in ("True", "yes") else "" for b in table["baseline"]])  # fmt: skip
    columns = ["task", "rank", "variant", "population", "generations", "score_kind", "n", "iqm_ci", "floor", "wall_s"]
    return _frame(table[columns])


def summary_tables(folder: Path, name: str) -> str:
    """A procedure study's per-seed tables summed up (``SUMMARIES``)."""
    parts = []
    for table_name, by, values in SUMMARIES[name]:
        table = pd.read_csv(folder / f"{table_name}.csv")
        if "round" in by:  # the lottery: the dense start and the last round of each task, not every round
            last = table.groupby("task")["round"].transform("max")
            table = table[(table["round"] == 0) | (table["round"] == last)]
        if not values:
            parts.append(f"`{table_name}.csv`:\n\n" + _frame(table))
            continue
        grouped = table.groupby(list(by), sort=True) if by else table.assign(all="all").groupby("all")
        summary = grouped[list(values)].median().add_prefix("median ").reset_index()
        summary.insert(len(by) or 1, "n", grouped.size().to_numpy())
        summary = summary.drop(columns="all", errors="ignore")
        parts.append(f"`{table_name}.csv`, medians over seeds:\n\n" + _frame(summary))
    return "\n\n".join(parts)


def study_section(folder: Path, name: str) -> str:
    """One study's block: its commit, its claims, its table (with the tuning table where it tunes)."""
    from evoboard.suite.studies.reference import consistent_sha
    from evoboard.suite.suites.tuning import tuning_markdown

    lines = [f"### {name}", "", consistent_sha(folder) + f" (`{folder.as_posix()}`).", "", claims_table(folder)]
    lines += [summary_tables(folder, name) if name in SUMMARIES else leaderboard_table(folder)]
    tuning = tuning_markdown(folder)
    return "\n".join(lines) + (tuning.replace("\n## ", "\n#### ", 1) if tuning else "")


def generated_block(folder: str | Path = "results/reference") -> str:
    """Every reference study's section, in the catalogue's order, between the markers."""
    from evoboard.suite.studies.reference.catalogue import STUDIES

    folder = Path(folder)
    sections = [study_section(folder / name, name) for name in STUDIES if (folder / name / "claims.csv").exists()]
    return "\n".join([BEGIN, "", *(s.rstrip() + "\n" for s in sections), END])


def rewrite(page: str | Path, folder: str | Path = "results/reference") -> bool:
    """Put the current block into ``page`` between its markers; True when it changed."""
    path = Path(page)
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page} has no generated-tables markers ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + generated_block(folder) + tail
    path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evoboard.suite.studies.reference.page")
    parser.add_argument("folder", nargs="?", default="results/reference")
    parser.add_argument("--page", default="docs/results.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page's block is not current")
    args = parser.parse_args(argv)
    if args.check:
        current = generated_block(args.folder) in Path(args.page).read_text()
        print("current" if current else f"{args.page}: generated tables out of date")
        return 0 if current else 1
    print(f"{args.page}: {'rewritten' if rewrite(args.page, args.folder) else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
