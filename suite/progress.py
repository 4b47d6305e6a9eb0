"""Progress: a bar per run (generation, best and elite fitness, frames/s) and a line per finished step.

The bar is drawn with rich on a terminal and is silent when stderr is not one (CI, pipes, files);
the lines (``RunLines``: suites, procedures, benchmarks) are always printed, with the elapsed time and
the time still expected.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def reporting(label: str, log: str | None, folder: Callable[[], Path], bar: bool | None = None) -> Iterator[Any]:
    """The progress bar (``bar``: None draws it on a terminal) composed with the --log tracker, whose folder is
    ``folder()`` once the run has one."""
    from evoboard.suite.tracking import TensorBoardLog, compose

    tracker = TensorBoardLog(folder) if log == "tensorboard" else None
    try:
        with progress_reporter(label, bar) as drawn:
            yield compose(drawn, tracker)
    finally:
        if tracker is not None:
            tracker.close()


@contextmanager
def progress_reporter(label: str, enabled: bool | None = None) -> Iterator[Any]:
    """Yield a reporter for ``Run`` (or None when quiet): one bar per run."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task_id = bar.add_task(label, total=None, status="starting")

        def report(row: dict[str, Any], total: int) -> None:
            status = (
                f"best {row['best_fitness']:.4g}  elite {row['elite_fitness']:.4g}  {row['frames_per_s']:,.0f} frames/s"
            )
            bar.update(task_id, completed=row["generation"] + 1, total=total, status=status)

        yield report


def duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class RunLines:
    """One line per finished step of ``total``: ``[done/total] what (elapsed 1m05s, ~3m20s left)``.

    The time left is the mean time per finished step so far times the steps left: with N workers it is
    the wall time they take together, since steps finish N times as often.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None):
        self.total, self.label, self.stream = total, label, stream
        self.done = 0
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def finished(self, text: str) -> None:
        self.done += 1
        self.say(text)

    def failed(self, text: str) -> None:
        self.done += 1
        self.say(f"FAILED {text}")

    def say(self, text: str) -> None:
        elapsed = self.elapsed()
        left = self.total - self.done
        timing = f"elapsed {duration(elapsed)}"
        if self.done and left > 0:
            timing += f", ~{duration(elapsed / self.done * left)} left"
        prefix = f"[{self.label + ' ' if self.label else ''}{self.done}/{self.total}]"
        print(f"{prefix} {text} ({timing})", file=self.stream or sys.stdout, flush=True)
