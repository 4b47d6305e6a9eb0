"""A suite's runs on N worker processes: the same rows whatever N, a crashed worker costs one run, lines of progress."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main
from evoboard.suite.progress import RunLines, duration
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.suites.driver import run_suite
from evoboard.suite.suites.jobs import Job, one_line
from evoboard.suite.suites.pool import ProcessPool
from tests.conftest import NON_REPEATABLE

SUITE = """
[defaults]
population = 8
generations = 3
max_steps = 50
[[runs]]
task = "CartPole-v1"
grid = { encoding = ["dense", "lowrank"] }
"""
SLOW_SUITE = SUITE.replace("population = 8", "population = 16").replace("generations = 3", "generations = 12")
SLOW_SUITE = SLOW_SUITE.replace("max_steps = 50", "max_steps = 200")


def suite_file(tmp_path: Path, text: str = SUITE) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return str(path)


def sorted_rows(out: Path) -> pd.DataFrame:
    """The leaderboard without ids and timings, in a fixed order (workers finish in any order)."""
    table = leaderboard.read(out).drop(columns=NON_REPEATABLE)
    return table.sort_values(["config"]).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_two_workers_give_one_worker_s_rows_bit_for_bit(method, tmp_path, capsys, monkeypatch):
    from evoboard.suite.suites import pool

    monkeypatch.setattr(pool, "start_method", lambda: method)  # fork: Linux without CUDA here; spawn elsewhere
    file = suite_file(tmp_path)
    assert main(["bench", file, "--seeds", "2", "--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    assert main(["bench", file, "--seeds", "2", "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    one, two = sorted_rows(tmp_path / "one"), sorted_rows(tmp_path / "two")
    assert len(one) == 4
    pd.testing.assert_frame_equal(one, two)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[suite ")]
    assert len(lines) == 8 and lines[3].startswith("[suite 4/4]") and "elapsed" in lines[0] and "left)" in lines[0]
    for out in ("one", "two"):  # each run's folder holds the row its worker handed back
        folders = sorted((tmp_path / out / "runs").iterdir())
        assert len(folders) == 4 and all((f / "row.json").is_file() for f in folders)


@pytest.mark.slow
def test_a_killed_worker_costs_its_run_only_and_the_same_command_resumes_it(tmp_path):
    """A worker SIGKILLed mid-run (as the OOM killer would): one line for its run, the others finish; the
    same command then resumes that run from its checkpoint, in its folder."""
    out = tmp_path / "out"
    specs = [RunSpec("CartPole-v1", encoding=e, population=16, generations=12, seed=s,
                     settings={"max_steps": 200}) for e in ("dense", "lowrank") for s in (0, 1)]  # fmt: skip
    resolved = [resolve(spec) for spec in specs]

    def kill_one_worker() -> None:  # once a run has a checkpoint, kill the worker running it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(out.glob("runs/*/checkpoint.json")):
            time.sleep(0.02)
        os.kill(mp.active_children()[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    _, failed = run_suite("s", resolved, out, ProcessPool(2, out))
    killer.join()
    assert len(failed) == 1 and "worker process died (exit code -9)" in failed[0][1]
    assert len(leaderboard.read(out)) == 3
    assert len(list((out / "runs").iterdir())) == 4  # the killed run's folder stays, unfinished

    table, failed = run_suite("s", resolved, out, ProcessPool(2, out))
    assert not failed and len(table) == 4 and len(leaderboard.read(out)) == 4
    assert len(list((out / "runs").iterdir())) == 4  # resumed in its folder, not restarted in a new one
    reference = tmp_path / "reference"
    run_suite("s", resolved, reference, ProcessPool(1, reference))
    pd.testing.assert_frame_equal(sorted_rows(out), sorted_rows(reference))


def test_a_failing_run_is_one_line_and_the_others_still_run(tmp_path, capsys, monkeypatch):
    """A run that raises (here: its checkpoint cannot be written) is reported in one line; the suite goes on,
    then exits 1 naming it."""
    from evoboard.suite.suites import jobs

    real = jobs.execute

    def flaky(job: Job, out: Path, bar: bool = False) -> dict:
        if job.spec.encoding == "lowrank":
            raise RuntimeError("disk on fire\nsecond line")
        return real(job, out, bar)

    monkeypatch.setattr(jobs, "execute", flaky)
    assert main(["bench", suite_file(tmp_path), "--jobs", "1", "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert "FAILED CartPole-v1 lowrank/ga s0: RuntimeError: disk on fire (at test_jobs.py:" in captured.out
    assert captured.err.strip().count("\n") == 0 and "1 run(s) failed" in captured.err
    assert leaderboard.read(tmp_path / "o")["encoding"].tolist() == ["dense"]


def test_one_line_keeps_evoboard_messages_and_locates_others():
    from evoboard.errors import UsageError

    assert one_line(UsageError("population must be >= 2")) == "population must be >= 2"
    try:
        {}["x"]
    except KeyError as err:
        assert one_line(err).startswith("KeyError: 'x' (at test_jobs.py:")


def test_run_lines_say_elapsed_and_expected_time(capsys):
    lines = RunLines(4, "s")
    lines.started -= 30  # as if the first run took 30 s
    lines.finished("first")
    lines.failed("second")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[s 1/4] first (elapsed 30s, ~1m30s left)"
    assert out[1] == "[s 2/4] FAILED second (elapsed 30s, ~30s left)"
    assert (duration(59.6), duration(75), duration(4000)) == ("1m00s", "1m15s", "1h06m")


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_impossible_jobs_exit_2(jobs, tmp_path, capsys):
    assert main(["bench", suite_file(tmp_path), "--jobs", jobs, "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"evoboard: error: --jobs must be >= 1, got {jobs}"
    assert not (tmp_path / "o").exists()


def test_the_throughput_bench_prints_a_line_per_measurement(monkeypatch, tmp_path, capsys):
    """Its measurements stubbed (the real ones take minutes): a line after each, nine on the CPU."""
    from evoboard.suite.speed import throughput

    monkeypatch.setattr(throughput, "control_rows", lambda task, population, repeats: [{"task": task}])
    monkeypatch.setattr(throughput, "both_cores_row", lambda task, population, repeats: {"task": task})
    monkeypatch.setattr(throughput, "atari_rows", lambda *args, **kwargs: [{"task": "ALE/Pong-v5", **kwargs}])
    monkeypatch.setattr(throughput, "publish", lambda *args, **kwargs: None)
    monkeypatch.setattr(throughput, "markdown", lambda table: "")
    throughput.run(tmp_path, device="cpu")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("]")[0] for line in lines] == [f"[throughput {i}/9" for i in range(1, 10)]
    assert lines[0].startswith("[throughput 1/9] HalfCheetah-v5 P=64") and "left)" in lines[0]
    assert lines[-1].startswith("[throughput 9/9] Pong P=32, 1 torch thread, every encoding, resets=snapshot")


def test_a_procedure_s_runs_come_back_in_order_and_a_second_call_skips_them(tmp_path, capsys):
    from evoboard.suite.suites.driver import run_all, using_workers

    specs = [RunSpec("CartPole-v1", encoding=e, population=4, generations=2, seed=s, settings={"max_steps": 20})
             for s in (1, 0) for e in ("lowrank", "dense")]  # fmt: skip
    with using_workers(1):
        rows = run_all(specs, tmp_path, "proc")
        again = run_all(specs, tmp_path, "proc")
    assert [(r["encoding"], r["seed"]) for r in rows] == [("lowrank", 1), ("dense", 1), ("lowrank", 0), ("dense", 0)]
    assert [r["run_id"] for r in again] == [r["run_id"] for r in rows]
    out = capsys.readouterr().out
    assert "[proc 4/4]" in out and "proc: 4 runs, 4 already in the leaderboard; 0 to run" in out
