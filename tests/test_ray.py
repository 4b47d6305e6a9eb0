"""Ray backend: sharding and merging, and whole runs on a real local Ray instance equal local runs.

The end-to-end tests start a real Ray instance on this machine (2 CPUs, 127.0.0.1 only); each
takes 10-20 s, most of it Ray's start-up and the actors' imports.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pandas as pd
import pytest

from evoboard.errors import UsageError
from evoboard.suite.board import leaderboard
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve
from tests.conftest import REPO, SPEC, history, rows, run_cli

ray = pytest.importorskip("ray", reason='the Ray backend needs pip install -e ".[ray]"')


# -- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ray_actors": "0"}, "ray_actors must be >= 1"),
        ({"ray_cpus_per_actor": "0"}, "ray_cpus_per_actor must be > 0"),
        ({"ray_retries": "-1"}, "ray_retries must be >= 0"),
        ({"ray_gpus_per_actor": "1"}, "needs --device cuda"),
    ],
)
def test_impossible_ray_settings_are_refused_before_ray_starts(settings, message, tmp_path):
    spec = RunSpec(**SPEC, device="cpu", backend="ray", settings=settings)
    with pytest.raises(UsageError, match=message):
        Run(resolve(spec), tmp_path)
    assert not ray.is_initialized() and not tmp_path.joinpath("runs").exists()


def test_missing_ray_is_a_one_line_error_naming_the_extra(tmp_path):
    code = "import sys; sys.modules['ray'] = None; from evoboard.suite.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["run", "--task", "CartPole-v1", "--backend", "ray", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        'evoboard: error: backend ray needs a missing package (ray): pip install -e ".[ray]"'
    ]
    assert not tmp_path.joinpath("runs").exists()


# -- whole runs on a real local Ray instance --------------------------------------------------
@pytest.mark.slow
def test_ray_run_gives_the_local_row_and_history(local_reference, out_dir):
    """``evoboard run --backend ray`` with 2 actors on a local 2-CPU instance, as a user runs it."""
    args = [f"--{k}={v}" for k, v in SPEC.items()]
    done = run_cli("run", *args, "--backend", "ray", "--set", "ray_actors=2", "--out", str(out_dir), timeout=240)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    row, hist = local_reference
    got = rows(out_dir).iloc[0]
    pd.testing.assert_series_equal(got, row, check_names=False)
    pd.testing.assert_frame_equal(history(out_dir, leaderboard.read(out_dir)["run_id"].iloc[0]), hist)


@pytest.mark.slow
def test_an_actor_killed_mid_generation_is_replaced_and_the_result_is_the_same(local_reference, out_dir, caplog):
    run = Run(resolve(RunSpec(**SPEC, backend="ray", settings={"ray_actors": 2})), out_dir)
    backend = run.backend
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")  # a local instance listens on loopback
    killed = []

    def kill_actor_0(evaluation: int, actors: list) -> None:
        if evaluation == 6:  # generation 2's population (0: population, candidates; then + parents), mid-shard
            killed.append(backend.pids[0])
            ray.kill(actors[0], no_restart=True)

    backend.on_submit = kill_actor_0
    with caplog.at_level(logging.WARNING, logger="evoboard.suite.backends.ray_actors"):
        run.run()
    assert not ray.is_initialized()  # the instance this run started is stopped
    assert len(killed) == 1 and len(backend.replacements) == 1
    # Found dead collecting its shard (evaluation 6), or, had it finished that shard before the kill
    # landed, on generation 2's next evaluation (the parents beside their children).
    event = backend.replacements[0]
    assert event.startswith(("evaluation 6: ", "evaluation 7: ")) and f"actor 0 (pid {killed[0]}) died" in event
    assert event in caplog.text
    row, hist = local_reference
    pd.testing.assert_series_equal(rows(out_dir).iloc[0], row, check_names=False)
    pd.testing.assert_frame_equal(history(out_dir, run.run_dir.path.name), hist)

    # What crossed the wire: a few bytes per member, not the policy's weights.
    sizes: dict[int, int] = {}
    for t in backend.traffic:
        sizes[t["evaluation"]] = sizes.get(t["evaluation"], 0) + t["members"]
    whole = {e for e, n in sizes.items() if n >= SPEC["population"]}  # populations (parents, candidates are fewer)
    population = [t for t in backend.traffic if t["evaluation"] in whole]
    members = sum(t["members"] for t in population)
    assert members >= SPEC["population"] * SPEC["generations"]  # the re-run shard is counted too
    genome_bytes = sum(t["genome_bytes"] for t in population) / members
    dense_bytes = 4 * run.encoding.search_dims
    assert genome_bytes < 32 < dense_bytes / 100
