"""Where a run's numbers come from: its episode seeds, its device, its run id and the commit that made it."""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from evoboard.errors import UsageError

if TYPE_CHECKING:
    from evoboard.suite.spec import RunSpec

TRAIN, ELITE, TEST = 0, 1, 2  # episode-seed streams: never share an episode between them


def episode_seeds(seed: int, stream: int, generation: int, count: int) -> list[int]:
    """Env seeds for one evaluation: the same for every member (a fair comparison)."""
    return [int(s) for s in np.random.SeedSequence([seed, stream, generation]).generate_state(count)]


def resolve_device(name: str) -> torch.device:
    """The run's torch device; auto is cuda where torch sees it, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda requested but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def git_sha() -> str:
    """The commit the code runs from (12 hex digits), \"unknown\" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_run_id(spec: RunSpec) -> str:
    """Unique and readable: time, task, encoding, algorithm, seed, a random suffix."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    task = spec.task.replace("/", "-").replace(":", "-")  # module:EnvId ids too
    return f"{stamp}-{task}-{spec.encoding}-{spec.algorithm}-s{spec.seed}-{uuid.uuid4().hex[:6]}"
