"""Ray backend: sharding and merging, and whole runs on a real local Ray instance equal local runs.

The end-to-end tests start a real Ray instance on this machine (2 CPUs, 127.0.0.1 only); each
takes 10-20 s, most of it Ray's start-up and the actors' imports.
"""

from __future__ import annotations

import logging
import math
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import envs
from agents.algorithms import ALGORITHMS
from agents.encodings import ENCODINGS
from agents.policies import POLICIES
from suite import leaderboard
from suite.backends import build_parts, evaluate_here
from suite.runner import TIMING_COLUMNS, Run, run_spec
from suite.settings import UsageError, option_names
from suite.spec import RunnerOptions, RunSpec, resolve
from tests.conftest import REPO, run_cli

ray = pytest.importorskip("ray", reason='the Ray backend needs pip install -e ".[ray]"')
from suite import ray_backend  # noqa: E402  (after the skip: importing it needs ray)

NON_REPEATABLE = ["run_id", "created_at", "wall_s", "frames_per_s"]
SPEC = {"task": "CartPole-v1", "population": 16, "generations": 4, "seed": 3}


def rows(out_dir) -> pd.DataFrame:
    return leaderboard.read(out_dir).drop(columns=NON_REPEATABLE)


def history(out_dir, run_id: str) -> pd.DataFrame:
    return pd.read_csv(out_dir / "runs" / run_id / "history.csv").drop(columns=TIMING_COLUMNS)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The local backend's leaderboard row and history for SPEC."""
    out = tmp_path_factory.mktemp("local") / "results"
    row = run_spec(RunSpec(**SPEC), out)
    return rows(out).iloc[0], history(out, row["run_id"])


# -- sharding, wire format and merging (no Ray needed) ----------------------------------------
def test_assign_keeps_children_with_their_parents_within_an_even_share():
    a, b = (1,), (2,)
    held = [{a: 0}, {b: 0}]
    genomes = [a, (1, 10), (1, 11), (1, 12), (1, 13), (1, 14), (2, 20), (3, 30)]
    shards = ray_backend.assign(genomes, held, 2)
    assert sorted(i for s in shards for i in s) == list(range(8))
    assert [len(s) for s in shards] == [4, 4]  # an even share each
    assert shards[0] == [0, 1, 2, 3]  # a and its children fill actor 0's share...
    assert shards[1] == [4, 5, 6, 7]  # ...its other children spill together; b's child stays with b
    assert ray_backend.assign(genomes, held, 2) == shards  # deterministic
    fresh = ray_backend.assign([(s,) for s in range(7)], [{}, {}, {}], 3)
    assert max(map(len, fresh)) == math.ceil(7 / 3) and sum(map(len, fresh)) == 7


def test_genomes_cross_the_wire_as_references_to_what_the_actor_holds():
    holdings = ray_backend.Holdings()
    holdings.update([(5,), (6,)])
    holdings.update([(5, 1), (6, 2)])
    genomes = [(5, 1), (5, 1, 7), (6, 8), (9, 9, 9)]  # held, child of held, child of older, unknown
    refs = ray_backend.compact(genomes, holdings.index)
    assert refs == [2, (2, 7), (1, 8), [9, 9, 9]]
    assert ray_backend.expand(refs, holdings.known) == genomes
    long_chain = [(5, *range(2**30, 2**30 + 50), 2**30 + s) for s in range(32)]  # 31-bit seeds, as drawn
    holdings.update([long_chain[0][:-1]])
    compact_bytes = len(pickle.dumps(ray_backend.compact(long_chain, holdings.index)))
    assert compact_bytes < len(pickle.dumps([list(g) for g in long_chain])) / 20  # constant, not lineage-long


def test_shards_merged_in_member_order_equal_one_local_evaluation():
    """Per-member results, counters and the elite trace do not depend on how members are sharded."""
    resolved = resolve(RunSpec("CartPole-v1", population=9, settings={"max_steps": 150, "elite_margin": 20.0}))
    parts = build_parts(resolved, torch.device("cpu"))
    try:
        genomes = [(s,) for s in range(9)]
        whole = evaluate_here(parts, genomes, None, [4, 5])
        shards = [[0, 4, 8], [1, 2, 6], [3, 5, 7]]
        pieces = [evaluate_here(parts, [genomes[i] for i in s], None, [4, 5]) for s in shards]
    finally:
        parts.task.close()
    merged = ray_backend.merge_in_order(pieces, shards)
    for name in ("fitness", "returns", "steps", "cut", "failed"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    assert (merged.frames, merged.member_forwards) == (whole.frames, whole.member_forwards)
    np.testing.assert_array_equal(merged.best_trace, whole.best_trace)


# -- settings ---------------------------------------------------------------------------------
def test_ray_settings_have_one_owner_and_stay_out_of_config():
    ray_keys = set(option_names(ray_backend.RayOptions))
    others = set(option_names(RunnerOptions))
    others |= {
        n for t in envs.names() if not t.startswith("ALE/") for n in option_names(envs.resolve(t).load().Options)
    }
    for registry in (POLICIES, ENCODINGS, ALGORITHMS):
        others |= {n for name in registry.names() for n in option_names(registry.get(name).Options)}
    assert ray_keys and not ray_keys & others
    resolved = resolve(RunSpec(**SPEC, backend="ray", settings={"ray_actors": "2", "ray_address": "auto"}))
    assert resolved.backend.ray_actors == 2
    assert resolved.config() == resolve(RunSpec(**SPEC)).config()  # the backend never changes results
    assert resolved.saved_spec()["backend_settings"]["ray_actors"] == 2  # but resume needs it


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
    code = "import sys; sys.modules['ray'] = None; from suite.cli import main; sys.exit(main(sys.argv[1:]))"
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
        if evaluation == 5:  # generation 2's population, while its shards run
            killed.append(backend.slots[0].pid)
            ray.kill(actors[0], no_restart=True)

    backend.on_submit = kill_actor_0
    with caplog.at_level(logging.WARNING, logger="suite.ray_backend"):
        run.run()
    assert not ray.is_initialized()  # the instance this run started is stopped
    assert len(killed) == 1 and len(backend.replacements) == 1
    # Found dead collecting its shard (evaluation 5), or, had it finished that shard before the kill
    # landed, on generation 2's next evaluation (the elite candidates).
    event = backend.replacements[0]
    assert event.startswith(("evaluation 5: ", "evaluation 6: ")) and f"actor 0 (pid {killed[0]}) died" in event
    assert event in caplog.text
    row, hist = local_reference
    pd.testing.assert_series_equal(rows(out_dir).iloc[0], row, check_names=False)
    pd.testing.assert_frame_equal(history(out_dir, run.run_dir.path.name), hist)

    # What crossed the wire: a few bytes per member, not the policy's weights.
    population = [t for t in backend.traffic if t["evaluation"] % 2 == 1]  # odd evaluations: whole populations
    members = sum(t["members"] for t in population)
    assert members >= SPEC["population"] * SPEC["generations"]  # the re-run shard is counted too
    genome_bytes = sum(t["genome_bytes"] for t in population) / members
    dense_bytes = 4 * run.encoding.search_dims
    assert genome_bytes < 32 < dense_bytes / 100
