"""Recorded runs stay as they were: every row and history of ``tests.golden_specs`` matches its record."""

from __future__ import annotations

import json

import pytest

from tests.golden_specs import GOLDEN, SPECS, record

RECORDED = json.loads(GOLDEN.read_text())


def test_every_spec_has_a_record():
    assert sorted(RECORDED) == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_row_and_history_match_the_record(name, tmp_path):
    now = record(name, tmp_path)
    assert now["row"] == RECORDED[name]["row"]
    assert now["history"] == RECORDED[name]["history"]
