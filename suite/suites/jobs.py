"""A suite's independent runs as jobs: run in this process, in N worker processes or as Ray tasks.

Each job is one run exactly as it runs alone (``evoboard run`` of its spec, or ``evoboard resume``
of its folder); the row comes back to the driver, the only process that appends to the leaderboard.
A worker's run writes its row to ``row.json`` in its folder before it marks the run finished, so a
driver killed between a run's end and its append finds the row there next time (``plan``). How the
jobs travel is a ``Runner``'s: ``InProcess`` here, ``pool.ProcessPool``, ``ray_tasks.RayTasks``.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from evoboard.errors import RunFailed, UsageError, WriteFailed
from evoboard.suite.board import leaderboard
from evoboard.suite.progress import RunLines, reporting
from evoboard.suite.rundir import write_json
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve

ROW_FILE = "row.json"
"""A finished run's leaderboard row, written in its folder by a suite's worker before the run is marked finished."""


@dataclass(frozen=True)
class Job:
    """One run of a suite: its spec, and the folder of an interrupted attempt to continue (None: a fresh run)."""

    spec: RunSpec
    resume: Path | None = None
    log: str | None = None
    """The --log tracker its run writes (tensorboard), wherever it runs."""

    @property
    def label(self) -> str:
        s = self.spec
        return f"{s.task} {s.encoding}/{s.algorithm} s{s.seed}"


@dataclass
class Result:
    """What came back for one job: its row, or one line saying why there is none."""

    job: Job
    row: dict[str, Any] | None = None
    error: str | None = None
    where: str = ""
    """Where it ran, when that is worth a word (a Ray node)."""


class Runner(Protocol):
    """Runs jobs and yields each one's result as it finishes, in any order."""

    workers: int

    def results(self, jobs: list[Job]) -> Iterator[Result]: ...


class SuiteRun(Run):
    """A run whose row goes to ``row.json`` (the driver appends it) instead of the leaderboard."""

    def keep_row(self, row: dict[str, Any]) -> None:
        write_json(self.run_dir.path / ROW_FILE, row)


def prepared(job: Job) -> Job:
    """``job``, as a fresh run if the attempt it continues was cut before its first checkpoint (that folder, which
    holds no search state, is removed: a gradient trainer's, which never checkpoints, or one killed at once)."""
    if job.resume is None or (job.resume / "checkpoint.json").exists():
        return job
    shutil.rmtree(job.resume, ignore_errors=True)
    return replace(job, resume=None)


def execute(job: Job, out: Path, bar: bool = False) -> dict[str, Any]:
    """Run ``job`` to its end in this process: resumed from its folder, or fresh in ``out``; its row.
    ``bar``: draw its progress bar on a terminal (only where one process runs at a time)."""
    started = time.perf_counter()
    job = prepared(job)
    run = SuiteRun.resume(job.resume) if job.resume is not None else SuiteRun(resolve(job.spec), out, started=started)
    with reporting(job.label, job.log, lambda: run.run_dir.path / "tensorboard", None if bar else False) as reporter:
        run.reporter = reporter
        return run.run()


def one_line(err: BaseException) -> str:
    """An error as one line: evoboard's own say what went wrong; anything else also where it was raised."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, (UsageError, RunFailed, WriteFailed)):
        return text
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(err).__name__}: {text}{at}"


class InProcess:
    """One job at a time in this process (``--jobs 1``): no start-up cost, nothing to send."""

    workers = 1

    def __init__(self, out: Path):
        self.out = out

    def results(self, jobs: list[Job]) -> Iterator[Result]:
        for job in jobs:
            try:
                yield Result(job, row=execute(job, self.out, bar=True))
            except KeyboardInterrupt:
                raise
            except Exception as err:  # one run's failure is one line; the others still run
                yield Result(job, error=one_line(err))


def read_row(folder: Path) -> dict[str, Any] | None:
    """The row a suite's worker left in ``folder`` (None if it has none or it is unreadable)."""
    try:
        row = json.loads((folder / ROW_FILE).read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and all(c in row for c in leaderboard.COLUMNS) else None


@dataclass
class Outcome:
    """What a suite run did: the rows appended and the runs that failed (label: one line)."""

    run_ids: list[str]
    failed: list[tuple[str, str]]


def run_jobs(jobs: Iterable[Job], out: Path, runner: Runner, lines: RunLines) -> Outcome:
    """Every job through ``runner``; each row appended here as it arrives, a progress line per finished run."""
    outcome = Outcome([], [])
    for result in runner.results(list(jobs)):
        if result.row is None:
            outcome.failed.append((result.job.label, str(result.error)))
            lines.failed(f"{result.job.label}: {result.error}")
            continue
        leaderboard.append(out, result.row)  # once: a run_id already there is skipped
        outcome.run_ids.append(str(result.row["run_id"]))
        lines.finished(summary(result.row) + (f" on {result.where}" if result.where else ""))
    return outcome


def summary(row: dict[str, Any]) -> str:
    """A finished run in a few words: what it was, its score and time, its folder."""
    return (
        f"{row['task']} {row['encoding']}/{row['algorithm']} s{row['seed']}: final_score {row['final_score']:.4g} "
        f"({row['score_kind']}), {row['wall_s']:.1f} s -> {row['run_id']}"
    )
