"""Shared fixtures: tiny real components and a way to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    """Run ``python -m suite`` in a subprocess, as a user runs ``evoboard``."""
    return subprocess.run(
        [sys.executable, "-m", "suite", *args],
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"
