"""``evoboard bench SUITE --ray ADDRESS`` on a real two-node Ray cluster on this machine, one node killed mid-suite.

Each node is started with ``ray start`` and one CPU of its own, its own temp dirs and free ports. Every
process of the cluster is ended by its id at the end (those whose command line names the cluster's own
temp folder): ``ray stop --force`` would also stop Ray processes this test did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main
from tests.conftest import REPO
from tests.test_jobs import SLOW_SUITE, sorted_rows, suite_file
from tests.test_resume_suite import mid_run

pytest.importorskip("ray", reason='--ray needs pip install -e ".[ray]"')

RAY = [sys.executable, "-m", "ray.scripts.scripts"]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
"""No token file to share between nodes (the cluster lives on this machine only, in temp folders)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_naming(text: str) -> list[int]:
    """Processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_all(text: str) -> None:
    for pid in pids_naming(text):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Cluster:
    """A head and a worker node of one CPU each, every file of theirs under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def node(self, name: str) -> Path:
        return self.root / name

    def start(self, name: str, head: bool) -> None:
        folder = self.node(name)
        (folder / "tmp").mkdir(parents=True)
        where = ["--head", "--port", str(self.port), "--dashboard-port", str(free_port()),
                 "--ray-client-server-port", str(free_port()), "--include-dashboard=false"] if head else [
                 "--address", self.address]  # fmt: skip
        args = [*RAY, "start", *where, "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                "--temp-dir", str(folder / "ray"), "--disable-usage-stats"]  # fmt: skip
        env = {**ENV, "TMPDIR": str(folder / "tmp")}  # the node's tasks keep their scratch run folders here
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]

    def kill(self, name: str) -> int:
        """SIGKILL every process of node ``name`` (its raylet and its workers); how many there were."""
        pids = pids_naming(str(self.node(name)))
        kill_all(str(self.node(name)))
        return len(pids)

    def stop(self) -> None:
        kill_all(str(self.root))


@pytest.fixture
def cluster():
    root = Path(tempfile.mkdtemp(prefix="evrc", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    cluster = Cluster(root)
    try:
        cluster.start("head", head=True)
        cluster.start("node2", head=False)
        yield cluster
    finally:
        cluster.stop()
        time.sleep(0.5)
        assert not pids_naming(str(root)), "a Ray process of the test cluster outlived it"
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.mark.slow
def test_a_node_killed_mid_suite_its_runs_retried_and_the_leaderboard_equals_a_local_one(cluster, tmp_path):
    # 30 generations, and the kill only while a node2 run is at generation 2-8: it lands well before that run
    # could finish (with 12 generations a kill caught at the last checkpoint arrived after the run returned)
    file, out = suite_file(tmp_path, SLOW_SUITE.replace("generations = 12", "generations = 30")), tmp_path / "o"
    args = [
        sys.executable,
        "-m",
        "evoboard",
        "bench",
        file,
        "--seeds",
        "3",
        "--out",
        str(out),
        "--ray",
        cluster.address,
    ]
    bench = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(bench.stdout))
    reader.start()
    try:  # node2 is mid-run once a run in its scratch folder has checkpointed: kill the node then
        deadline = time.monotonic() + 300
        while not mid_run(cluster.node("node2") / "tmp", 8) and bench.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        killed = cluster.kill("node2")
        bench.wait(timeout=400)
    finally:
        if bench.poll() is None:
            bench.kill()
        reader.join()
    err = bench.stderr.read()
    assert bench.returncode == 0, "".join(lines) + err
    assert killed > 0

    # node2 was running a run when it died: its scratch folder stayed behind, and that run's id never reached
    # the leaderboard (Ray ran it again, from its start, on the head)
    cut = [p.name for p in (cluster.node("node2") / "tmp").glob("evoboard-ray-*/runs/*")]
    table = leaderboard.read(out)
    assert cut and not set(cut) & set(table["run_id"]), "".join(lines) + err[-3000:]
    assert len(table) == 6 and len(list((out / "runs").iterdir())) == 6
    assert sum(line.startswith("[suite ") for line in lines) == 6

    local = tmp_path / "local"
    assert main(["bench", file, "--seeds", "3", "--out", str(local), "--jobs", "1"]) == 0
    pd.testing.assert_frame_equal(sorted_rows(out), sorted_rows(local))
