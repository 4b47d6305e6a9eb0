"""What a suite re-run in the same folder still has to do: skip what is finished, resume what was cut.

A run is finished for this purpose when the leaderboard holds a row with its (config, seed)
(``leaderboard.run_key``: the resolved spec without how it was executed) made by this evoboard
version at this commit. A run folder whose checkpoint is not marked finished is an interrupted
attempt: the job continues it (``evoboard resume``'s logic) instead of starting over. A folder
whose run finished but whose row never reached the leaderboard (its driver was killed between
the two) gives its row back from ``row.json``. ``--rerun`` starts every run afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoboard import __version__
from evoboard.errors import CheckpointError
from evoboard.suite.board import leaderboard
from evoboard.suite.provenance import git_sha
from evoboard.suite.rundir import RunDir
from evoboard.suite.spec import ResolvedSpec
from evoboard.suite.suites.jobs import Job, read_row


@dataclass
class Plan:
    """The jobs still to run, and what was decided about the rest (one line each)."""

    jobs: list[Job] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Runs whose row is already there (label -> run_id)."""
    recovered: list[dict[str, Any]] = field(default_factory=list)
    """Rows of finished runs found in their folders but missing from the leaderboard (appended by the caller)."""
    notes: list[str] = field(default_factory=list)

    @property
    def resumed(self) -> int:
        return sum(job.resume is not None for job in self.jobs)


def folder_key(folder: RunDir) -> str | None:
    """The run key of a run folder's spec.json (its config plus how it was executed), None if unreadable."""
    try:
        saved = folder.read_spec()
        config = {k: v for k, v in saved.items() if k not in ("backend", "backend_settings")}
        return leaderboard.run_key(config)
    except (CheckpointError, TypeError, ValueError, AttributeError):
        return None


def scan(out: Path) -> tuple[dict[str, tuple[int, RunDir]], list[RunDir]]:
    """Interrupted folders by run key (the one furthest along per key, with its generations done) and finished
    folders (checkpoint marked finished)."""
    interrupted: dict[str, tuple[int, RunDir]] = {}
    finished: list[RunDir] = []
    runs = out / "runs"
    for path in sorted(runs.iterdir()) if runs.is_dir() else []:
        folder = RunDir(path)
        if path.name.startswith(".") or not folder.spec_path.exists():
            continue
        try:
            saved = folder.read_checkpoint()
        except CheckpointError:
            continue  # not resumable as it is: a fresh run replaces it
        if saved and saved.get("finished"):
            finished.append(folder)
            continue
        key = folder_key(folder)
        done = 0 if saved is None else int(saved["generation"])
        if key is not None and (key not in interrupted or done > interrupted[key][0]):
            interrupted[key] = (done, folder)
    return interrupted, finished


def plan(resolved: list[ResolvedSpec], out: Path, rerun: bool = False) -> Plan:
    """The jobs of ``resolved`` still to run in ``out``: skip the finished, resume the interrupted, run the rest."""
    result = Plan()
    if rerun:
        result.jobs = [Job(r.spec) for r in resolved]
        return result
    table = leaderboard.read(out)
    interrupted, finished = scan(out)
    known = set(table["run_id"].astype(str))
    for folder in finished:  # a finished run whose driver died before appending its row
        row = read_row(folder.path)
        if row is not None and str(row["run_id"]) not in known:
            result.recovered.append(row)
            known.add(str(row["run_id"]))
    here = [*table.to_dict("records"), *result.recovered]
    sha = git_sha()
    done = {}
    for row in here:
        if str(row["evoboard_version"]) == __version__ and str(row["git_sha"]) == sha:
            try:
                done[leaderboard.run_key(row["config"])] = str(row["run_id"])
            except (TypeError, ValueError, AttributeError):
                continue
    planned: set[str] = set()
    for spec in resolved:
        key = leaderboard.run_key(spec.config())
        job = Job(spec.spec)
        if key in done:
            result.skipped.append(f"{job.label} -> {done[key]}")
        elif key in planned:
            result.notes.append(f"{job.label} is listed twice in the suite: run once")
        elif key in interrupted:
            generations, folder = interrupted[key]
            result.jobs.append(Job(spec.spec, folder.path))
            done_so_far = (
                f"after {generations} generations" if generations else "(cut before its first checkpoint: anew)"
            )
            result.notes.append(f"{job.label}: resuming {folder.path.name} {done_so_far}")
        else:
            result.jobs.append(job)
        planned.add(key)
    return result
