"""Declarative bounds for option dataclasses: a field says its limits once, one check enforces them.

    @dataclass
    class GAOptions(Checked):
        elites: int = bounded(1, ge=0)
        \"\"\"Top members copied unchanged.\"\"\"

``Checked.__post_init__`` refuses a value outside its bounds with one line
(``elites must be >= 0, got -1``); ``None`` always passes (an option that is off). A class with
checks that bounds cannot say (one field against another) overrides ``__post_init__`` and calls
``super().__post_init__()`` first.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

_OPS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
        "le": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}  # fmt: skip


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    finite: bool = False,
) -> Any:
    """A dataclass field whose value (when not None) must satisfy every given bound."""
    limits = {op: b for op, b in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if b is not None}
    return dataclasses.field(default=default, metadata={"bounds": limits, "finite": finite})


def describe_bounds(field: dataclasses.Field) -> str:
    """The field's bounds in words (``>= 0 and < 1``), empty where it has none."""
    words = [f"{_OPS[op][0]} {b:g}" for op, b in field.metadata.get("bounds", {}).items()]
    if field.metadata.get("finite"):
        words.append("finite")
    return " and ".join(words)


def check_bounds(options: Any) -> None:
    """ValueError naming the first field whose value breaks its bounds."""
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if value is None or isinstance(value, (str, tuple, list, bool)):
            continue
        limits = field.metadata.get("bounds", {})
        broken = any(not check(value, limits[op]) for op, (_, check) in _OPS.items() if op in limits)
        finite = field.metadata.get("finite")
        checked = limits or finite
        if checked and ((finite and not math.isfinite(value)) or broken or value != value):  # NaN breaks every bound
            raise ValueError(f"{field.name} must be {describe_bounds(field)}, got {value}")


class Checked:
    """Mixin for option dataclasses: checks every ``bounded`` field after construction."""

    def __post_init__(self) -> None:
        check_bounds(self)
