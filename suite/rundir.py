"""A run's folder: ``runs/<run_id>/`` with spec.json, history.csv and checkpoint.json.

Every file is written atomically (temp file, then rename), so a run killed at any moment,
even mid-write, leaves the previous complete version behind. The checkpoint is plain JSON
(genomes are seed chains), so loading it never unpickles anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from suite.leaderboard import write_atomic


def write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """Paths and atomic writers of one run's folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.json"

    def create(self, config: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=False)
        write_json(self.spec_path, config)

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        write_atomic(self.history_path, pd.DataFrame(rows))

    def write_checkpoint(self, data: dict[str, Any]) -> None:
        write_json(self.checkpoint_path, data)

    def read_spec(self) -> dict[str, Any]:
        return json.loads(self.spec_path.read_text())

    def read_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        return json.loads(self.checkpoint_path.read_text())
