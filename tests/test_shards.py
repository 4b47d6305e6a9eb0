"""Multi-worker backends: sharding and merging, and whole runs over local worker processes equal local runs.

The process-backend runs spawn 2 real worker processes (each imports torch and builds its own
CartPole task), a few seconds each.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from evoboard import envs
from evoboard.agents.algorithms import ALGORITHMS
from evoboard.agents.encodings import ENCODINGS
from evoboard.agents.policies import POLICIES
from evoboard.errors import UsageError
from evoboard.suite.backends import BACKENDS, backend_class, shards
from evoboard.suite.backends.base import build_parts
from evoboard.suite.backends.local import evaluate_here
from evoboard.suite.backends.processes import ProcessOptions
from evoboard.suite.board import leaderboard
from evoboard.suite.runner import Run
from evoboard.suite.settings import option_names
from evoboard.suite.spec import RunnerOptions, RunSpec, resolve
from tests.conftest import SPEC, history, rows, run_cli


# -- sharding, wire format and merging --------------------------------------------------------
def test_assign_keeps_children_with_their_parents_within_an_even_share():
    a, b = (1,), (2,)
    held = [{a: 0}, {b: 0}]
    genomes = [a, (1, 10), (1, 11), (1, 12), (1, 13), (1, 14), (2, 20), (3, 30)]
    split = shards.assign(genomes, held, 2)
    assert sorted(i for s in split for i in s) == list(range(8))
    assert [len(s) for s in split] == [4, 4]  # an even share each
    assert split[0] == [0, 1, 2, 3]  # a and its children fill worker 0's share...
    assert split[1] == [4, 5, 6, 7]  # ...its other children spill together; b's child stays with b
    assert shards.assign(genomes, held, 2) == split  # deterministic
    fresh = shards.assign([(s,) for s in range(7)], [{}, {}, {}], 3)
    assert max(map(len, fresh)) == math.ceil(7 / 3) and sum(map(len, fresh)) == 7


def test_genomes_cross_the_wire_as_references_to_what_the_worker_holds():
    holdings = shards.Holdings()
    holdings.update([(5,), (6,)])
    holdings.update([(5, 1), (6, 2)])
    genomes = [(5, 1), (5, 1, 7), (6, 8), (9, 9, 9)]  # held, child of held, child of older, unknown
    refs = shards.compact(genomes, holdings.index)
    assert refs == [2, (2, 7), (1, 8), [9, 9, 9]]
    assert shards.expand(refs, holdings.known) == genomes
    long_chain = [(5, *range(2**30, 2**30 + 50), 2**30 + s) for s in range(32)]  # 31-bit seeds, as drawn
    holdings.update([long_chain[0][:-1]])
    compact_bytes = len(pickle.dumps(shards.compact(long_chain, holdings.index)))
    assert compact_bytes < len(pickle.dumps([list(g) for g in long_chain])) / 20  # constant, not lineage-long


def test_shards_merged_in_member_order_equal_one_local_evaluation():
    """Per-member results, counters and the elite trace do not depend on how members are sharded."""
    resolved = resolve(RunSpec("CartPole-v1", population=9, settings={"max_steps": 150, "elite_margin": 20.0}))
    parts = build_parts(resolved, torch.device("cpu"))
    try:
        genomes = [(s,) for s in range(9)]
        whole, decode_s = evaluate_here(parts, genomes, None, [4, 5])
        split = [[0, 4, 8], [1, 2, 6], [3, 5, 7]]
        pieces = [evaluate_here(parts, [genomes[i] for i in s], None, [4, 5])[0] for s in split]
    finally:
        parts.task.close()
    merged = shards.merge_in_order(pieces, split)
    for name in ("fitness", "returns", "steps", "cut", "failed"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    assert (merged.frames, merged.member_forwards) == (whole.frames, whole.member_forwards)
    np.testing.assert_array_equal(merged.best_trace, whole.best_trace)
    assert decode_s > 0 and "decode" not in whole.timings  # the decode time is a value, not a timing entry


# -- settings ---------------------------------------------------------------------------------
def backend_options(name: str) -> type:
    try:
        return backend_class(name).Options
    except ImportError:
        pytest.skip(f"backend {name} needs an extra that is not installed")


@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "local"])
def test_backend_settings_have_one_owner_and_stay_out_of_config(name):
    keys = set(option_names(backend_options(name)))
    others = set(option_names(RunnerOptions))
    others |= {
        n for t in envs.names() if not t.startswith("ALE/") for n in option_names(envs.resolve(t).load().Options)
    }
    for registry in (POLICIES, ENCODINGS, ALGORITHMS):
        others |= {n for name in registry.names() for n in option_names(registry.get(name).Options)}
    others |= {n for other in BACKENDS if other not in ("local", name) for n in option_names(backend_options(other))}
    assert keys and not keys & others
    key = sorted(keys)[-1]  # processes / ray_retries: a count either way
    resolved = resolve(RunSpec(**SPEC, backend=name, settings={key: "2"}))
    assert getattr(resolved.backend, key) == 2
    assert resolved.config() == resolve(RunSpec(**SPEC)).config()  # the backend never changes results
    assert resolved.saved_spec()["backend_settings"][key] == 2  # but resume needs it


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"processes": "0"}, "processes must be >= 1"), ({"process_retries": "-1"}, "process_retries must be >= 0")],
)
def test_impossible_process_settings_are_refused_before_any_worker_starts(settings, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        Run(resolve(RunSpec(**SPEC, backend="processes", settings=settings)), tmp_path)
    assert not multiprocessing.active_children() and not tmp_path.joinpath("runs").exists()
    assert ProcessOptions().processes is None  # default: every CPU this process may use


# -- whole runs over real worker processes ----------------------------------------------------
def test_process_run_gives_the_local_row_and_history(local_reference, out_dir):
    """``evoboard run --backend processes`` with 2 workers, as a user runs it."""
    args = [f"--{k}={v}" for k, v in SPEC.items()]
    done = run_cli("run", *args, "--backend", "processes", "--set", "processes=2", "--out", str(out_dir))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    row, hist = local_reference
    pd.testing.assert_series_equal(rows(out_dir).iloc[0], row, check_names=False)
    pd.testing.assert_frame_equal(history(out_dir, leaderboard.read(out_dir)["run_id"].iloc[0]), hist)


def test_a_process_killed_mid_generation_is_replaced_and_the_result_is_the_same(local_reference, out_dir, caplog):
    run = Run(resolve(RunSpec(**SPEC, backend="processes", settings={"processes": 2})), out_dir)
    backend = run.backend
    started = list(backend.pids)
    killed = []

    def kill_worker_0(evaluation: int, processes: list) -> None:
        if evaluation == 5:  # generation 2's population, while its shards run
            killed.append(processes[0].pid)
            os.kill(processes[0].pid, signal.SIGKILL)

    backend.on_submit = kill_worker_0
    with caplog.at_level(logging.WARNING, logger="evoboard.suite.backends.processes"):
        run.run()
    assert killed == started[:1] and len(backend.replacements) == 1
    event = backend.replacements[0]
    assert event.startswith(("evaluation 5: ", "evaluation 6: ")) and f"process 0 (pid {killed[0]}) died" in event
    assert event in caplog.text
    row, hist = local_reference
    pd.testing.assert_series_equal(rows(out_dir).iloc[0], row, check_names=False)
    pd.testing.assert_frame_equal(history(out_dir, run.run_dir.path.name), hist)
    assert not multiprocessing.active_children()  # the run stopped its workers, the replacement too

    # What crossed the pipe: a few bytes per member, not the policy's weights.
    population = [t for t in backend.traffic if t["evaluation"] % 2 == 1]  # odd evaluations: whole populations
    genome_bytes = sum(t["genome_bytes"] for t in population) / sum(t["members"] for t in population)
    assert genome_bytes < 32 < 4 * run.encoding.search_dims / 100
