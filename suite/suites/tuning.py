"""Each variant at its own step: a run's settings grid tried on tuning seeds, the best kept for its reported runs.

Benchmarks that compare methods tune each on the same budget, on seeds kept apart from the reported
ones (NeuroEvoBench, Lange et al. 2023, tunes every strategy per task). A suite run's ``tune`` grid
(``sigma = [0.02, 0.05, 0.1, 0.2]``, say) is run once per value and tuning seed (100-102 unless it
says) into ``<folder>/tuning/``, so those runs never enter the suite's leaderboard or its claims;
the value with the best mean final score (lower for bits per character) is chosen for that run
(at the tune's ``generations`` where it sets a shorter horizon than the run's, a documented setting),
that is per variant and per task, and ``<folder>/tuning.csv`` keeps every tuning run's score.
The runs go through ``run_all``: ``--jobs``, progress and resume work as for any suite.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from evoboard.errors import UsageError
from evoboard.suite.board.baselines import LOWER_IS_BETTER
from evoboard.suite.publish import markdown_table
from evoboard.suite.suites.registry import Suite, Tune

COLUMNS = ["run", "task", "encoding", "algorithm", "setting", "seed", "final_score", "score_kind", "mean", "chosen"]
"""``tuning.csv``: one row a tuning run; ``run`` is the suite run's index, ``mean`` its setting's mean score."""


def combinations(tune: Tune) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the order declared."""
    keys = [k for k, _ in tune.grid]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in tune.grid))]


def tuned(suite: Suite, folder: str | Path, device: str, seeds: int) -> Suite:
    """``suite`` with each tuned run at its best grid values, after the grid's runs on the tuning seeds
    (into ``folder/tuning/``; every score in ``folder/tuning.csv``). ``seeds``: the reported seeds 0..seeds-1,
    which a tuning seed must not be."""
    from evoboard.suite.suites.driver import run_all  # the driver imports the runner: only when tuning

    if not suite.tunes:
        return suite
    reported = sorted({s for t in suite.tunes if t for s in t.seeds if s < seeds})
    if reported:
        raise UsageError(f"{suite.name}: tuning seed(s) {reported} would also be reported (--seeds {seeds}): "
                         f"choose tuning seeds >= {seeds}")  # fmt: skip
    jobs = [(i, combo, seed) for i, tune in enumerate(suite.tunes) if tune for combo in combinations(tune)
            for seed in tune.seeds]  # fmt: skip
    specs = [replace(suite.specs[i], seed=seed, device=device, settings={**suite.specs[i].settings, **combo},
                     generations=suite.tunes[i].generations or suite.specs[i].generations)
             for i, combo, seed in jobs]  # fmt: skip
    rows = run_all(specs, Path(folder) / "tuning", f"{suite.name} tuning")
    table = pd.DataFrame([
        {"run": i, "task": row["task"], "encoding": row["encoding"], "algorithm": row["algorithm"],
         "setting": json.dumps(combo, sort_keys=True), "seed": seed, "final_score": float(row["final_score"]),
         "score_kind": row["score_kind"]}
        for (i, combo, seed), row in zip(jobs, rows, strict=True)
    ])  # fmt: skip
    table, best = choose(table)
    table[COLUMNS].to_csv(Path(folder) / "tuning.csv", index=False)
    specs = tuple(replace(s, settings={**s.settings, **best[i]}) if i in best else s for i, s in enumerate(suite.specs))
    return replace(suite, specs=specs)


def choose(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, dict[str, Any]]]:
    """Per suite run (``run``), the setting (JSON) with the best mean ``final_score`` in its score kind's direction
    (bits per character: lowest), the first in grid order on a tie; ``table`` with ``mean`` and ``chosen``."""
    sign = table["score_kind"].isin(LOWER_IS_BETTER).map({True: -1.0, False: 1.0})
    table = table.assign(mean=table.groupby(["run", "setting"], sort=False)["final_score"].transform("mean"))
    better = (table["mean"] * sign).groupby([table["run"], table["setting"]], sort=False).first()  # grid order
    best = {int(i): json.loads(better[i].idxmax()) for i in better.index.get_level_values(0).unique()}
    chosen = [json.loads(s) == best[int(i)] for i, s in zip(table["run"], table["setting"], strict=True)]
    return table.assign(chosen=chosen), best


def tuning_markdown(folder: str | Path) -> str:
    """The grid, the tuning seeds and the chosen values per variant and task (empty when nothing was tuned)."""
    path = Path(folder) / "tuning.csv"
    if not path.exists():
        return ""
    table = pd.read_csv(path)
    body = []
    for _, runs in table.groupby("run", sort=False):
        task, encoding, algorithm = runs.iloc[0][["task", "encoding", "algorithm"]]
        means = runs.drop_duplicates("setting")
        grid = ", ".join(f"{_plain(s)}: {m:.4g}" for s, m in zip(means["setting"], means["mean"], strict=True))
        chosen = _plain(runs.loc[runs["chosen"], "setting"].iloc[0])
        seeds = ", ".join(str(s) for s in sorted(runs["seed"].unique()))
        body.append([f"{encoding}/{algorithm}", task, f"**{chosen}**", grid, seeds])
    header = ["variant", "task", "chosen", "grid (mean tuning score)", "tuning seeds"]
    intro = ("\n## Each variant at its own step\n\nThe reported runs use each variant's best value on tuning seeds "
             "that are never reported (mean final score over them; `tuning.csv` has every run).\n\n")  # fmt: skip
    return intro + markdown_table(header, body)


def chosen_for(folder: str | Path, where: Mapping[str, Any]) -> str:
    """The values chosen for the tuned runs whose task, encoding and algorithm match ``where`` (a claim side's
    columns; others are not in ``tuning.csv``), by task: "HalfCheetah-v5 sigma=0.05; ..."; "" when none."""
    path = Path(folder) / "tuning.csv"
    if not path.exists():
        return ""
    table = pd.read_csv(path)
    table = table[table["chosen"]].drop_duplicates("run")
    for key in ("task", "encoding", "algorithm"):
        if where.get(key) is not None:
            table = table[table[key].astype(str) == str(where[key])]
    return "; ".join(f"{t} {_plain(s)}" for t, s in zip(table["task"], table["setting"], strict=True))


def _plain(setting: str) -> str:
    """``{"sigma": 0.05}`` as ``sigma=0.05``."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in json.loads(setting).items())
