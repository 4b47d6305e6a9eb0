"""A run's folder: ``runs/<run_id>/`` with spec.json, history.csv, checkpoint.json and its state tensors.

Every file is written atomically (temp file, then rename), so a run killed at any moment,
even mid-write, leaves the previous complete version behind. The checkpoint is small JSON
(genomes are seed chains) carrying SHA-256 digests of its own content and of spec.json; large
state (an ES mean, Adam moments, sigmas, normalizer statistics) goes in a safetensors file
``state-<sha256[:16]>.safetensors`` beside it. The tensors file is written first, under its
content's name, then the JSON that names it and its SHA-256; a reader checks the hash before
parsing, and safetensors only ever copies raw bytes (nothing is unpickled). An edited, truncated
or missing file is refused with one line. The history's finished rows are appended to
``history.jsonl``, and the checkpoint names the prefix it covers, so the checkpoint's size does
not grow with the number of generations.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from evoboard.errors import CheckpointError, WriteFailed
from evoboard.suite.atomic import write_atomic, writing
from evoboard.suite.board.leaderboard import write_csv


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, lambda f: json.dump(data, f, indent=1))


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """``tensors`` (moved to the CPU) as one safetensors blob."""
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


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
    def history_log_path(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.json"

    def create(self, config: dict[str, Any]) -> None:
        """Make the folder and its spec.json; on a write fault leave no empty folder behind."""
        with writing(self.path):
            self.path.mkdir(parents=True, exist_ok=False)
        try:
            write_json(self.spec_path, config)
        except WriteFailed:
            with contextlib.suppress(OSError):
                self.path.rmdir()
            raise

    def intact(self) -> str:
        """What a resume would start from, in words, for a write fault's message (reads, never writes)."""
        if not self.spec_path.exists():
            return f"no run folder is left at {self.path}"
        try:
            saved = self.read_checkpoint()
        except CheckpointError as err:
            return f"the checkpoint is not usable ({err})"
        done = 0 if saved is None else saved["generation"]
        last = f"generation {done - 1} is the last complete one" if done else "no generation is complete yet"
        return f"{last} in {self.checkpoint_path}; `evoboard resume {self.path}` once it can be written"

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        write_csv(self.history_path, pd.DataFrame(rows))

    def write_checkpoint(self, data: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> int:
        """Save ``data`` (and ``tensors``, by name) with digests of itself, the tensors and spec.json.

        Returns the bytes written. The tensors file goes first; files of earlier checkpoints go
        once the JSON naming the new one is in place.
        """
        written = 0
        if tensors:
            blob = tensor_bytes(tensors)
            sha = hashlib.sha256(blob).hexdigest()
            path = self.path / f"state-{sha[:16]}.safetensors"
            if not path.exists():
                write_atomic(path, lambda f: f.buffer.write(blob))
            data = {**data, "tensors": {"file": path.name, "sha256": sha}}
            written += len(blob)
        text = json.dumps({"state": data, "sha256": digest(data), "spec_sha256": digest(self.read_spec())}, indent=1)
        write_atomic(self.checkpoint_path, lambda f: f.write(text))
        keep = data.get("tensors", {}).get("file")
        for old in self.path.glob("state-*.safetensors"):
            if old.name != keep:
                with contextlib.suppress(OSError):
                    old.unlink()
        return written + len(text)

    def write_elite(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """``elite.safetensors``: the final elite's dense weights and what they are (``agents/checkpoints.py``)."""
        from evoboard.agents import checkpoints

        path = self.path / "elite.safetensors"
        with writing(path):
            try:
                checkpoints.save(path, tensors, meta)
            except Exception as err:  # safetensors reports a full disk as its own SafetensorError
                if type(err).__name__ != "SafetensorError":
                    raise
                raise WriteFailed(path, str(err).splitlines()[0]) from None

    def read_spec(self) -> dict[str, Any]:
        return read_json(self.spec_path)

    def read_checkpoint(self) -> dict[str, Any] | None:
        """The saved state, or None before the first generation; CheckpointError if tampered."""
        if not self.checkpoint_path.exists():
            return None
        saved = read_json(self.checkpoint_path)
        if not isinstance(saved, dict) or saved.get("sha256") != digest(saved.get("state")):
            raise CheckpointError(f"{self.checkpoint_path} fails its integrity check (edited or corrupted)")
        if saved.get("spec_sha256") != digest(self.read_spec()):
            raise CheckpointError(f"{self.spec_path} was changed after the run started; refusing to resume")
        return saved["state"]

    def read_tensors(self, saved: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint's state names (on the CPU), hash-checked; {} for one without."""
        named = saved.get("tensors")
        if not named:
            return {}
        path = self.path / str(named.get("file"))
        try:
            blob = path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"{path} is missing or unreadable ({err.strerror or err})") from None
        if hashlib.sha256(blob).hexdigest() != named.get("sha256"):
            raise CheckpointError(f"{path} fails its SHA-256 check (truncated, edited or corrupted)")
        from safetensors.torch import load

        try:
            return load(blob)
        except Exception as err:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"{path} is not a safetensors file ({str(err).splitlines()[0]})") from None


class HistoryLog:
    """``history.jsonl``: one JSON line per finished history row, appended and flushed to disk.

    A checkpoint stores ``mark()`` (rows, bytes, SHA-256 of that prefix) instead of the rows;
    ``restore`` reads the prefix back exactly (JSON keeps every float and every absent column)
    and cuts off any line a crash or a failed write left after it.
    """

    def __init__(self, path: Path):
        self.path = path
        self.rows, self.size, self.hasher = 0, 0, hashlib.sha256()

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        blob = "".join(json.dumps(row) + "\n" for row in rows).encode()
        with writing(self.path), self.path.open("ab") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        self.rows, self.size = self.rows + len(rows), self.size + len(blob)
        self.hasher.update(blob)

    def mark(self) -> dict[str, Any]:
        return {"rows": self.rows, "bytes": self.size, "sha256": self.hasher.hexdigest()}

    def restore(self, mark: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows ``mark`` covers, checked against its digest; the file is cut back to them."""
        if mark["bytes"] == 0:  # no row finished yet: the file may not exist
            with writing(self.path):
                self.path.unlink(missing_ok=True)
            self.rows, self.size, self.hasher = 0, 0, hashlib.sha256()
            return []
        try:
            with self.path.open("rb") as f:
                blob = f.read(mark["bytes"])
        except OSError as err:
            raise CheckpointError(f"{self.path} is missing or unreadable ({err.strerror or err})") from None
        if len(blob) != mark["bytes"] or hashlib.sha256(blob).hexdigest() != mark["sha256"]:
            raise CheckpointError(f"{self.path} does not hold the rows its checkpoint names (truncated or edited)")
        rows = [json.loads(line) for line in blob.decode().splitlines()]  # the digest vouches for them
        with writing(self.path), self.path.open("r+b") as f:
            f.truncate(mark["bytes"])
        self.rows, self.size, self.hasher = len(rows), len(blob), hashlib.sha256(blob)
        return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not readable JSON ({err})") from None
