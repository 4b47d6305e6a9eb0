"""Experiment tracking: each generation's history row as TensorBoard scalars.

Attached through the runner's reporter hook, beside the progress bar, so the loop does not
change. ``evoboard run --log tensorboard`` writes ``runs/<run_id>/tensorboard/``; point
``tensorboard --logdir results/runs`` at the output folder to see every run side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evoboard.errors import UsageError

LOGGERS = ("tensorboard",)
Reporter = Callable[[dict[str, Any], int], None]


def require(log: str | None) -> None:
    """UsageError naming the extra to install when ``log``'s package is missing (checked before a run)."""
    if log is None:
        return
    if log not in LOGGERS:
        raise UsageError(f"unknown log {log!r}; valid: {', '.join(LOGGERS)}")
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UsageError("--log tensorboard needs tensorboard: pip install 'evoboard[tensorboard]'") from None


class TensorBoardLog:
    """A reporter writing every numeric column of a history row under ``history/``, step = generation.

    The folder is asked for at the first row (``folder()``), since a run names its folder only when it starts.
    """

    def __init__(self, folder: Callable[[], Path]):
        self.folder, self.writer = folder, None

    def __call__(self, row: dict[str, Any], total: int) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.folder()))
        step = int(row["generation"])
        for key, value in row.items():
            if key != "generation" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"history/{key}", float(value), step)
        self.writer.flush()
        if step + 1 >= total:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def compose(*reporters: Reporter | None) -> Reporter | None:
    """One reporter calling each given one in turn (None when none is given)."""
    active = [r for r in reporters if r is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def report(row: dict[str, Any], total: int) -> None:
        for reporter in active:
            reporter(row, total)

    return report
