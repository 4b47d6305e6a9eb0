"""A progress bar for runs and benches: generation, best and elite fitness, frames/s.

Drawn with rich on a terminal; silent when stderr is not one (CI, pipes, files).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


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
