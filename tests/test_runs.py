"""Whole runs: CartPole is solved, same seed gives the same row, a killed run resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from evoboard.suite.board import leaderboard
from evoboard.suite.rundir import RunDir
from evoboard.suite.runner import Run, run_spec
from evoboard.suite.spec import RunSpec, resolve
from tests.conftest import NON_REPEATABLE, REPO, history


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in NON_REPEATABLE}


def test_same_seed_gives_same_row_and_history(out_dir):
    spec = RunSpec("CartPole-v1", population=8, generations=3, seed=4, settings={"max_steps": 200})
    a, b = run_spec(spec, out_dir), run_spec(spec, out_dir)
    assert comparable(a) == comparable(b)
    pd.testing.assert_frame_equal(history(out_dir, a["run_id"]), history(out_dir, b["run_id"]))
    c = run_spec(RunSpec(**{**vars(spec), "seed": 5}), out_dir)
    assert comparable(c) != comparable(a)


@pytest.mark.slow
def test_ga_beats_random_search_at_the_same_budget(out_dir):
    """The floor every RL claim is measured against: on Pendulum-v1 (P=32, 10 generations, seed 0) the GA's
    held-out score beats random search's (-1079 vs -1107 measured). CartPole-v1 cannot show this: random
    search also reaches 500 at that budget."""
    spec = RunSpec("Pendulum-v1", population=32, generations=10, seed=0)
    row = run_spec(spec, out_dir)
    floor = run_spec(RunSpec(**{**vars(spec), "algorithm": "random"}), out_dir)
    assert row["final_score"] > floor["final_score"]


def test_early_termination_is_recorded_in_history_and_row(out_dir):
    # The crowned elite's own trace (a fresh re-evaluation episode) is no lucky maximum over the population, so at
    # this tiny budget only margin 0 at seed 1 cuts (seed 0 with margin 50 cut against the old, optimistic trace).
    spec = RunSpec("Pendulum-v1", population=8, generations=3, seed=1, settings={"elite_margin": 0.0})
    row = run_spec(spec, out_dir)
    hist = pd.read_csv(out_dir / "runs" / row["run_id"] / "history.csv")
    assert hist["frames_saved"].iloc[0] == 0  # no elite yet in the first generation
    assert row["frames_saved"] == hist["frames_saved"].sum() > 0
    assert (hist["cut_episodes"].iloc[1:] > 0).any()


def test_resume_after_sigkill_gives_the_same_row_and_history(out_dir):
    args = ["--task", "CartPole-v1", "--population", "12", "--generations", "12", "--seed", "2", "--out", str(out_dir)]
    whole = subprocess.run([sys.executable, "-m", "evoboard", "run", *args], cwd=REPO, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    reference = leaderboard.read(out_dir).iloc[0].to_dict()

    killed_dir = out_dir / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "evoboard", "run", *args[:-1], str(killed_dir)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    checkpoint = None
    while time.monotonic() < deadline and checkpoint is None:
        found = list((killed_dir / "runs").glob("*/checkpoint.json")) if (killed_dir / "runs").exists() else []
        if found and json.loads(found[0].read_text())["state"]["generation"] >= 3:
            checkpoint = found[0]
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint is not None and proc.returncode == -signal.SIGKILL
    generation = json.loads(checkpoint.read_text())["state"]["generation"]
    assert 3 <= generation < 12, "the kill must land mid-run"
    assert not (killed_dir / "leaderboard.csv").exists()

    resumed = subprocess.run([sys.executable, "-m", "evoboard", "resume", str(checkpoint.parent)], cwd=REPO,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    row = leaderboard.read(killed_dir).iloc[0].to_dict()
    assert comparable(row) == comparable(reference)
    pd.testing.assert_frame_equal(history(killed_dir, row["run_id"]), history(out_dir, reference["run_id"]))
    again = subprocess.run([sys.executable, "-m", "evoboard", "resume", str(checkpoint.parent)], cwd=REPO,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 2 and "already finished" in again.stderr


def test_resume_of_a_folder_that_is_not_a_run_is_a_usage_error(tmp_path):
    from evoboard.errors import UsageError

    with pytest.raises(UsageError, match="not a run folder"):
        Run.resume(tmp_path)


def test_nothing_is_written_before_the_first_generation(out_dir):
    Run(resolve(RunSpec("CartPole-v1", population=4, generations=1)), out_dir)
    assert not out_dir.exists()


def test_a_checkpoint_from_before_the_state_kept_the_best_so_far_resumes_to_the_same_row(out_dir):
    spec = RunSpec("CartPole-v1", population=6, generations=3, seed=3, settings={"max_steps": 60})
    reference = run_spec(spec, out_dir / "whole")
    run = Run(resolve(spec), out_dir / "old")
    run.run_dir = RunDir(out_dir / "old" / "runs" / "r")
    run.run_dir.create(run.resolved.saved_spec())
    run.step()
    run.step()
    old, _ = run.checkpoint()
    del old["algorithm"]["best_so_far"]  # the format before: the run's best only at the top level
    run.run_dir.write_checkpoint(old)
    run.backend.close()
    run.task.close()
    resumed = Run.resume(run.run_dir.path)
    assert resumed.generation == 2 and resumed.state.best_so_far == old["best_fitness"] > 0
    assert comparable(resumed.run()) == comparable(reference)
