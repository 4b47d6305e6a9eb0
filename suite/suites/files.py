"""Suite files: the TOML form of a suite, the same for the built-ins and a user's own.

A suite file names its runs; ``evoboard bench FILE --seeds K`` runs each once per seed::

    description = "dense vs lowrank on CartPole"
    [defaults]                         # keys every run starts from (optional)
    population = 16
    generations = 5
    [[runs]]                           # run keys: evoboard run's flags and --set keys
    task = "CartPole-v1"
    grid = { encoding = ["dense", "lowrank"] }   # one run per combination (optional)
    tune = { sigma = [0.05, 0.1, 0.2], seeds = [100, 101, 102] }  # each run at its best sigma (optional;
                                       # generations = 10 tunes at a shorter horizon than the reported runs)
    max_seeds = 5                      # at most 5 of --seeds' seeds for this run (optional: a costly run)
    [[baselines]]                      # run on every task of the runs (optional)
    algorithm = "random"
    [[compare]]                        # claims written beside the leaderboard (optional; docs/compare.md)
    x = "lowrank/ga"
    y = "dense/ga"                     # also: task = "CartPole-v1", floor = "random"

Seeds come from ``--seeds`` and the device from ``--device``, so runs set neither. A baseline
without ``task`` runs on every task of the runs at that task's budget: each ``BUDGET_KEYS`` key
on which all of the task's runs agree (Frostbite's ``patience = 400``, say) is the baseline's
too unless it sets its own, so a floor is never measured at another budget than what it floors.
A run's ``tune`` grid is tried first on its tuning seeds, never reported (``suites.tuning``,
docs/claims.md); baselines are not tuned.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from evoboard.errors import UsageError
from evoboard.suite.config import SPEC_TYPES, check_keys, read_toml, spec_from_table
from evoboard.suite.spec import RunSpec
from evoboard.suite.suites.registry import Suite, Tune

RUN_KEYS = tuple(k for k in SPEC_TYPES if k not in ("seed", "device"))
BUDGET_KEYS = ("population", "generations", "episodes", "max_steps", "max_frames", "patience", "eval_episodes",
               "max_seeds")  # fmt: skip
"""What a baseline without ``task`` takes from its task's runs where they all agree."""
TOP_KEYS = ("name", "description", "defaults", "runs", "baselines", "compare")
COMPARE_KEYS = ("x", "y", "task", "floor")
FOLDER = Path(__file__).resolve().parent
"""Where the built-in suite files live (shipped as package data)."""


def _tables(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{where}: {key} must be an array of tables ([[{key}]])")
    return tables


def _expand(table: dict[str, Any], defaults: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One table per combination of its ``grid`` values, each over ``defaults``."""
    table = {**defaults, **table}
    grid = table.pop("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise UsageError(f'{where}: grid must be a table of non-empty lists, e.g. grid = {{ encoding = ["dense"] }}')
    return [{**table, **dict(zip(grid, combo, strict=True))} for combo in itertools.product(*grid.values())]


def parse_suite(data: dict[str, Any], name: str, where: str, source: Path | None = None) -> Suite:
    """A Suite from a parsed suite file; structure only (names and settings: ``check_suite``)."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        from evoboard.suite.settings import unknown_message

        raise UsageError(f"{where}: " + unknown_message("top-level key", unknown[0], TOP_KEYS))
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise UsageError(f"{where}: defaults must be a table ([defaults])")
    specs: list[RunSpec] = []
    runs: list[dict[str, Any]] = []
    tunes: list[Tune | None] = []
    caps: list[int | None] = []
    for i, table in enumerate(_tables(data, "runs", where)):
        for run in _expand(table, defaults, f"{where} runs[{i}]"):
            tunes.append(_tune(run.pop("tune", None), f"{where} runs[{i}]"))
            caps.append(_max_seeds(run.pop("max_seeds", None), f"{where} runs[{i}]"))
            specs.append(spec_from_table(run, f"{where} runs[{i}]", RUN_KEYS))
            runs.append(run if caps[-1] is None else {**run, "max_seeds": caps[-1]})  # a floor shares the cap
    if not specs:
        raise UsageError(f"{where} has no runs (add a [[runs]] table with a task)")
    tasks = list(dict.fromkeys(s.task for s in specs))
    for i, table in enumerate(_tables(data, "baselines", where)):
        for task in [table["task"]] if "task" in table else tasks:
            shared = {} if "task" in table else task_budget([r for r in runs if r.get("task") == task])
            for run in _expand({**shared, **table, "task": task}, defaults, f"{where} baselines[{i}]"):
                run.pop("tune", None)  # a floor is not tuned
                tunes.append(None)
                caps.append(_max_seeds(run.pop("max_seeds", None), f"{where} baselines[{i}]"))
                specs.append(spec_from_table(run, f"{where} baselines[{i}]", RUN_KEYS))
    description = data.get("description", f"{len(specs)} runs from {where}")
    compare = tuple(_comparison(t, f"{where} compare[{i}]") for i, t in enumerate(_tables(data, "compare", where)))
    tuned = tuple(tunes) if any(tunes) else ()
    capped = tuple(caps) if any(c is not None for c in caps) else ()
    return Suite(data.get("name", name), str(description), tuple(specs), source=source, compare=compare, tunes=tuned,
                 max_seeds=capped)  # fmt: skip


def _counts(value: Any) -> bool:
    """Unset, or a positive integer (not a bool): what ``max_seeds`` and a tune's ``generations`` take."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def _max_seeds(value: Any, where: str) -> int | None:
    """A run's ``max_seeds``: a positive integer, or None where it sets none."""
    if not _counts(value):
        raise UsageError(f"{where}: max_seeds must be an integer >= 1, got {value!r}")
    return value


def _tune(table: Any, where: str) -> Tune | None:
    """A run's ``tune`` table: lists of values per setting, optionally ``seeds`` (default 100, 101, 102) and
    ``generations`` (an integer: the tuning runs' horizon, default the run's own)."""
    if table is None:
        return None
    usage = (f"{where}: tune is a table of non-empty lists, e.g. tune = {{ sigma = [0.05, 0.1], seeds = [100, 101] }}"
             ", optionally generations = 10")  # fmt: skip
    if not isinstance(table, dict):
        raise UsageError(usage)
    table = dict(table)
    generations = table.pop("generations", None)
    if not _counts(generations) or not all(isinstance(v, list) and v for v in table.values()):
        raise UsageError(usage)
    seeds = table.get("seeds", [100, 101, 102])
    grid = tuple((k, tuple(v)) for k, v in table.items() if k != "seeds")
    if not grid or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise UsageError(usage)
    return Tune(grid, tuple(seeds), generations)


def _comparison(table: dict[str, Any], where: str) -> dict[str, str]:
    """A ``[[compare]]`` table: strings x and y (variants, as ``evoboard compare`` takes them), task and floor."""
    wrong = sorted(set(table) - set(COMPARE_KEYS)) or [k for k in ("x", "y") if k not in table]
    if wrong or not all(isinstance(v, str) for v in table.values()):
        raise UsageError(f'{where}: a comparison is x = "encoding/algorithm", y = "...", optionally task and floor '
                         f"(strings), got keys {', '.join(sorted(table))}")  # fmt: skip
    return dict(table)


def task_budget(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``BUDGET_KEYS`` values every one of ``runs`` (one task's, over the defaults) sets alike."""
    shared = {}
    for key in BUDGET_KEYS:
        values = {repr(run.get(key)) for run in runs}
        if len(values) == 1 and key in runs[0]:
            shared[key] = runs[0][key]
    return shared


def load_suite(path: str | Path) -> Suite:
    """A suite file (its name defaults to the file's stem)."""
    path = Path(path)
    return parse_suite(read_toml(path), path.stem, str(path), path)


def check_suite(suite: Suite) -> None:
    """Every run's keys against its components, with a did-you-mean (before any run starts)."""
    where = str(suite.source or suite.name)
    for spec in suite.specs:
        check_keys(spec, where, RUN_KEYS)


def builtin_files() -> list[Path]:
    """The built-in suite files, by name."""
    return sorted(FOLDER.glob("*.toml"))
