"""Declarative option bounds: every bound refuses what breaks it, with one line that names it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from evoboard.options import Checked, bounded, check_bounds


@dataclass
class Example(Checked):
    count: int = bounded(1, ge=1)
    rate: float = bounded(0.5, gt=0, lt=1)
    margin: float | None = bounded(None, ge=0, finite=True)
    free: int = 3


@pytest.mark.parametrize(
    "values, message",
    [
        ({"count": 0}, "count must be >= 1, got 0"),
        ({"rate": 0.0}, "rate must be > 0 and < 1, got 0.0"),
        ({"rate": 1.0}, "rate must be > 0 and < 1, got 1.0"),
        ({"rate": float("nan")}, "rate must be > 0 and < 1, got nan"),
        ({"margin": float("inf")}, "margin must be >= 0 and finite, got inf"),
        ({"margin": -1.0}, "margin must be >= 0 and finite, got -1.0"),
    ],
)
def test_a_broken_bound_is_one_line_naming_it(values, message):
    with pytest.raises(ValueError) as err:
        Example(**values)
    assert str(err.value) == message


def test_values_inside_bounds_none_and_unbounded_fields_pass():
    options = Example(count=1, rate=0.999, margin=None, free=-5)
    check_bounds(options)
    assert (options.count, options.margin, options.free) == (1, None, -5)
