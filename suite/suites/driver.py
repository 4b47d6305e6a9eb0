"""A suite's driver: decide what is left (``resume.plan``), run it with a runner, append each row, say progress.

``run_suite`` is ``evoboard bench SUITE``; ``run_all`` is the same for a procedure's independent runs (the
reference studies' transfer runs, say), with the rows back in the order of the specs. Both skip runs already
in the leaderboard and resume interrupted ones, so a procedure re-run in its folder also picks up where it
stopped. How many workers run them is ``--jobs`` (``using_workers`` hands it to procedures).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from evoboard.errors import RunFailed
from evoboard.suite.board import leaderboard
from evoboard.suite.progress import RunLines
from evoboard.suite.spec import ResolvedSpec, RunSpec, resolve
from evoboard.suite.suites.jobs import InProcess, Runner, run_jobs
from evoboard.suite.suites.resume import plan

_workers: list[int] = []
"""The --jobs of the bench command running now (procedures read it through ``workers``)."""


def default_jobs() -> int:
    """The CPUs this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def using_workers(n: int) -> Iterator[None]:
    """While a procedure runs: ``run_all`` uses ``n`` workers."""
    _workers.append(n)
    try:
        yield
    finally:
        _workers.pop()


def workers() -> int:
    """The workers ``run_all`` uses: the bench command's --jobs, else the CPUs this process may use."""
    return _workers[-1] if _workers else default_jobs()


def runner_for(n: int, ray: str | None, out: Path) -> Runner:
    """``n`` worker processes (this process when 1), or Ray tasks when ``ray`` is given ("" = a local instance)."""
    if ray is not None:
        from evoboard.suite.suites.ray_tasks import RayTasks  # ray loads only for --ray

        return RayTasks(ray or None, n, out)
    if n == 1:
        return InProcess(out)
    from evoboard.suite.suites.pool import ProcessPool

    return ProcessPool(n, out)


def run_suite(
    name: str, resolved: list[ResolvedSpec], out: Path, runner: Runner, rerun: bool = False, log: str | None = None
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Run what is left of ``resolved`` in ``out``; the suite's counted rows ranked, and the failed runs."""
    todo = plan(resolved, out, rerun)
    for row in todo.recovered:
        leaderboard.append(out, row)
    where = getattr(runner, "address", False)
    where = f"Ray tasks ({where or 'a local instance'})" if where is not False else f"{runner.workers} process(es)"
    skipped = f", {len(todo.skipped)} already in the leaderboard" if todo.skipped else ""
    recovered = f", {len(todo.recovered)} rows recovered from their run folders" if todo.recovered else ""
    print(f"{name}: {len(resolved)} runs{skipped}{recovered}; {len(todo.jobs)} to run ({todo.resumed} resumed) "
          f"on {where}", flush=True)  # fmt: skip
    for line in todo.notes:
        print(f"  {line}", flush=True)
    jobs = [dataclasses.replace(job, log=log) for job in todo.jobs]
    outcome = run_jobs(jobs, out, runner, RunLines(len(jobs), name))
    return leaderboard.ranked(rows_of(resolved, out)), outcome.failed


def rows_of(resolved: list[ResolvedSpec], out: Path) -> pd.DataFrame:
    """The leaderboard rows that count for ``resolved``'s runs (one per (config, seed), the newest)."""
    table = leaderboard.counted(leaderboard.read(out))
    keys = {leaderboard.run_key(r.config()) for r in resolved}
    return table[leaderboard.row_keys(table).isin(keys)] if not table.empty else table


def run_all(specs: list[RunSpec], out: str | Path, name: str) -> list[dict[str, Any]]:
    """A procedure's independent runs, on ``workers()`` workers; their rows in the order of ``specs``.
    Raises RunFailed (after the others finished) if any run failed."""
    out = Path(out)
    resolved = [resolve(spec) for spec in specs]
    n = workers()
    _, failed = run_suite(name, resolved, out, runner_for(min(n, len(specs)), None, out))
    if failed:
        raise RunFailed(f"{len(failed)} of {name}'s runs failed (first: {failed[0][0]}: {failed[0][1]})")
    table = leaderboard.counted(leaderboard.read(out))
    by_key = dict(zip(leaderboard.row_keys(table), table.to_dict("records"), strict=True))
    return [by_key[leaderboard.run_key(r.config())] for r in resolved]
