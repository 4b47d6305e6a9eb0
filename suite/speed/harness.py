"""The one speed harness: paired timing and medians.

Every benchmark under ``suite/speed`` times through here, so a figure is measured one way: two
contenders alternated in one run, so both see the same machine load, and their medians. Figures
land through ``evoboard.suite.publish`` (machine line, Markdown table, CSV/MD/PNG).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call of ``fn`` took, and what it returned."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn``."""
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def alternate(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[list, list]:
    """What ``a`` and ``b`` returned, called alternately (a, b, a, b, ...) ``repeats`` times each."""
    first, second = [], []
    for _ in range(repeats):
        first.append(a())
        second.append(b())
    return first, second


class Paired(NamedTuple):
    """Median seconds of two contenders timed alternately; ``ratio`` is how many times faster ``a`` is."""

    a: float
    b: float

    @property
    def ratio(self) -> float:
        return self.b / self.a


def paired_medians(a: Callable[[], object], b: Callable[[], object], repeats: int) -> Paired:
    """Median wall time of ``a`` and ``b``, run alternately so both see the same machine load."""
    ta, tb = alternate(lambda: timed(a)[0], lambda: timed(b)[0], repeats)
    return Paired(statistics.median(ta), statistics.median(tb))


def medians(records: Iterable[dict]) -> dict:
    """The median of each key over records that share their keys (repeats of one measurement)."""
    records = list(records)
    return {k: statistics.median(r[k] for r in records) for k in records[0]}
