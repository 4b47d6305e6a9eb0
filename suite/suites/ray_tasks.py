"""``evoboard bench SUITE --ray [ADDRESS]``: each run of a suite as one Ray task, on any node of a cluster.

The spec goes out (with the files of an interrupted attempt to continue); the run happens in a
scratch folder on the node that took it, exactly as it runs alone; its row and its whole run folder
come back, and the driver writes the folder under ``<out>/runs/`` and appends the row, so the
output folder looks as if the suite had run here. A task whose worker or node dies is retried by
Ray on another (``RETRIES`` times), from its start: its checkpoints were on the lost node. Every
node needs evoboard installed, as the driver has it. This is not ``--backend ray``, which spreads
one run's members over actors generation by generation; here each run stays whole on one node.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

try:
    import ray
    import ray.exceptions as rex
except ImportError as err:
    raise ImportError('--ray needs ray: pip install -e ".[ray]"', name="ray") from err

from evoboard.errors import UsageError
from evoboard.suite.backends.ray_actors import connect
from evoboard.suite.suites.jobs import Job, Result, execute, one_line, prepared

RETRIES = 3
"""Times Ray re-runs a task whose worker process or node died (an error inside the run is not retried)."""


def pack(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path (run folders are small: seed chains, not weights)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def unpack(files: dict[str, bytes], folder: Path) -> None:
    for name, blob in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)


def run_task(job: Job, files: dict[str, bytes] | None) -> tuple[dict[str, Any], dict[str, bytes], str]:
    """On a node: run ``job`` in a scratch folder (continuing ``files``' run when given); its row, folder, node."""
    scratch = Path(tempfile.mkdtemp(prefix="evoboard-ray-"))
    try:
        if files is not None and job.resume is not None:
            folder = scratch / "runs" / job.resume.name
            unpack(files, folder)
            job = replace(job, resume=folder)
        row = execute(job, scratch)
        return row, pack(scratch / "runs" / str(row["run_id"])), ray.get_runtime_context().get_node_id()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def place(out: Path, run_id: str, files: dict[str, bytes]) -> Path:
    """Write a run folder that came back into ``out/runs/<run_id>`` in one rename (replacing the attempt it
    continued)."""
    runs = out / "runs"
    part, target, old = runs / f".{run_id}.part", runs / run_id, runs / f".{run_id}.old"
    shutil.rmtree(part, ignore_errors=True)
    unpack(files, part)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    part.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


class RayTasks:
    """Runs jobs as Ray tasks of one CPU each on the cluster at ``address`` (None: a local instance of
    ``workers`` CPUs, stopped at the end)."""

    def __init__(self, address: str | None, workers: int, out: Path):
        self.address, self.workers, self.out = address, workers, out

    def results(self, jobs: list[Job]) -> Iterator[Result]:
        try:
            opened = connect(self.address, self.workers)
        except ValueError as err:
            raise UsageError(str(err)) from None
        task = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(run_task)
        refs: dict[Any, Job] = {}
        try:
            for job in map(prepared, jobs):
                files = None if job.resume is None else pack(job.resume)
                refs[task.remote(job, files)] = job
            while refs:
                (ref,), _ = ray.wait(list(refs), num_returns=1)
                job = refs.pop(ref)
                try:
                    row, files, node = ray.get(ref)
                except rex.RayTaskError as err:  # the run itself raised: one line, not retried
                    yield Result(job, error=one_line(err.cause) if err.cause is not None else str(err).splitlines()[0])
                    continue
                except rex.RayError as err:  # its worker or node died RETRIES + 1 times
                    yield Result(job, error=f"lost after {RETRIES} retries: {str(err).strip().splitlines()[0]}")
                    continue
                place(self.out, str(row["run_id"]), files)
                yield Result(job, row=row, where=f"node {node[:8]}")
        finally:
            for ref in refs:  # Ctrl-C or an error here: nothing keeps running for a driver that is gone
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if opened:
                ray.shutdown()
