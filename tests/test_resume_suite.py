"""A suite re-run in its folder: skip the finished, resume the cut, count each (config, seed) once.

The kill tests run ``evoboard bench`` as a user does, in a subprocess, and kill it mid-suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main
from tests.conftest import REPO, run_cli
from tests.test_jobs import SLOW_SUITE, sorted_rows, suite_file

RUN = ["run", "--task", "CartPole-v1", "--population", "4", "--generations", "2", "--set", "max_steps=20"]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def mid_run(out: Path, latest: int | None = None) -> bool:
    """Some run has checkpointed a generation (at most ``latest``) but has not finished, and the suite is not done."""
    for path in [*out.glob("runs/*/checkpoint.json"), *out.glob("evoboard-ray-*/runs/*/checkpoint.json")]:
        try:
            state = json.loads(path.read_text())["state"]
        except (OSError, ValueError, KeyError):
            continue
        if 2 <= state["generation"] <= (latest or state["generation"]) and not state.get("finished"):
            return True
    return False


def start_bench(file: str, out: Path, jobs: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "evoboard", "bench", file, "--seeds", "2", "--out", str(out), "--jobs", jobs]
    # As from a terminal: a background job of a shell (nohup ... &) starts with Ctrl-C ignored; so would the bench.
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pd.DataFrame:
    """SLOW_SUITE at 2 seeds, never interrupted."""
    tmp = tmp_path_factory.mktemp("whole")
    assert main(["bench", suite_file(tmp, SLOW_SUITE), "--seeds", "2", "--jobs", "1", "--out", str(tmp / "o")]) == 0
    return sorted_rows(tmp / "o")


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_kill_9_mid_suite_then_the_same_command_gives_the_same_leaderboard(jobs, uninterrupted, tmp_path):
    file, out = suite_file(tmp_path, SLOW_SUITE), tmp_path / "o"
    bench = start_bench(file, out, jobs)
    wait_for(lambda: mid_run(out))
    workers = children(bench.pid)
    os.kill(bench.pid, signal.SIGKILL)  # the driver only, as `kill -9 PID` does: its workers must not live on
    bench.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)
    before = len(leaderboard.read(out))
    assert before < 4

    done = run_cli("bench", file, "--seeds", "2", "--out", str(out), "--jobs", jobs, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "(1 resumed)" in done.stdout or "(2 resumed)" in done.stdout
    assert "resuming" in done.stdout and "generations" in done.stdout
    pd.testing.assert_frame_equal(sorted_rows(out), uninterrupted)  # no duplicate row, the same numbers
    assert len(list((out / "runs").iterdir())) == 4  # the cut runs continued in their folders

    again = run_cli("bench", file, "--seeds", "2", "--out", str(out), "--jobs", jobs)
    assert "4 already in the leaderboard; 0 to run" in again.stdout
    assert len(leaderboard.read(out)) == 4


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_the_same_command_finishes(uninterrupted, tmp_path):
    file, out = suite_file(tmp_path, SLOW_SUITE), tmp_path / "o"
    bench = start_bench(file, out, "2")
    wait_for(lambda: mid_run(out))
    workers = children(bench.pid)
    bench.send_signal(signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group; the driver handles it
    for pid in workers:
        os.kill(pid, signal.SIGINT)
    _, err = bench.communicate(timeout=60)
    assert bench.returncode == 130
    assert err.strip().splitlines()[-1] == "evoboard: interrupted; resume with run the same command again"
    assert "Traceback" not in err
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)
    done = run_cli("bench", file, "--seeds", "2", "--out", str(out), "--jobs", "2", timeout=240)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(sorted_rows(out), uninterrupted)


def test_a_row_left_in_its_folder_by_a_killed_driver_is_appended_not_rerun(tmp_path, capsys):
    """Killed between a run's end and its append: the re-run finds the row in row.json."""
    file, out = suite_file(tmp_path), tmp_path / "o"
    assert main(["bench", file, "--jobs", "1", "--out", str(out)]) == 0
    full = leaderboard.read(out)
    leaderboard.write_csv(leaderboard.path_in(out), full.iloc[:1])  # as if the second append never happened
    capsys.readouterr()
    assert main(["bench", file, "--jobs", "1", "--out", str(out)]) == 0
    assert "2 already in the leaderboard, 1 rows recovered from their run folders; 0 to run" in capsys.readouterr().out
    pd.testing.assert_frame_equal(leaderboard.read(out), full)


def test_the_same_spec_run_twice_counts_once(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main([*RUN, "--out", out]) == 0
    assert main([*RUN, "--out", out, "--device", "cpu"]) == 0  # the device says where, not what: the same run
    table = leaderboard.read(out)
    assert len(table) == 2  # both rows stay in the CSV
    assert leaderboard.aggregate(table)["n"].tolist() == [1]
    capsys.readouterr()
    assert main(["leaderboard", "--out", out, "--runs", "--format", "csv"]) == 0
    shown = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    first, second = table["run_id"].tolist()
    assert shown.set_index("run_id")["duplicate_of"].fillna("").to_dict() == {first: second, second: ""}


def test_a_different_seed_or_setting_is_another_run(tmp_path):
    out = str(tmp_path / "o")
    assert main([*RUN, "--out", out]) == 0
    assert main([*RUN, "--out", out, "--seed", "1"]) == 0
    assert main([*RUN, "--out", out, "--set", "sigma=0.5"]) == 0
    table = leaderboard.read(out)
    assert (leaderboard.duplicates(table) == "").all()
    assert sorted(leaderboard.aggregate(table)["n"]) == [3]


def test_rerun_runs_again_and_the_newest_row_counts(tmp_path, capsys):
    file, out = suite_file(tmp_path), tmp_path / "o"
    assert main(["bench", file, "--jobs", "1", "--out", str(out)]) == 0
    assert main(["bench", file, "--jobs", "1", "--out", str(out), "--rerun"]) == 0
    table = leaderboard.read(out)
    assert len(table) == 4
    assert leaderboard.duplicates(table).tolist() == [*table["run_id"].iloc[2:], "", ""]
    assert leaderboard.aggregate(table)["n"].tolist() == [1, 1]


def test_a_row_from_another_commit_is_not_skipped(tmp_path, capsys):
    file, out = suite_file(tmp_path), tmp_path / "o"
    assert main(["bench", file, "--jobs", "1", "--out", str(out)]) == 0
    table = leaderboard.read(out)
    leaderboard.write_csv(leaderboard.path_in(out), table.assign(git_sha="0123456789ab"))
    capsys.readouterr()
    assert main(["bench", file, "--jobs", "1", "--out", str(out)]) == 0
    assert "2 runs; 2 to run" in capsys.readouterr().out
    assert leaderboard.aggregate(leaderboard.read(out))["n"].tolist() == [1, 1]


BAD_FILES = {
    "undecodable bytes": (
        b'description = "\xff\xfe"\n[[runs]]\ntask = "CartPole-v1"\n',
        "is not UTF-8 text (byte 0xff",
    ),
    "unknown task": (
        b'[[runs]]\ntask = "CartPol-v1"\n',
        "unknown task 'CartPol-v1' (did you mean 'CartPole-v1', 'CartPole-v0'",
    ),
    "not TOML": (b"[[runs]\ntask = 1\n", "is not valid TOML"),
    "unknown key": (b'[[runs]]\ntask = "CartPole-v1"\nsigmaa = 0.1\n', "did you mean 'sigma'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_suite_file_is_one_short_line_and_exit_2(case, tmp_path):
    content, message = BAD_FILES[case]
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    done = run_cli("bench", str(path), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert case == "unknown key" or len(lines[0]) < 300  # close matches, not every task id
    assert not (tmp_path / "o").exists()


def test_a_run_cut_before_its_first_checkpoint_starts_anew_in_place_of_its_folder(tmp_path, capsys):
    """A folder with only spec.json (a run killed at once, or a gradient trainer's, which never checkpoints)."""
    file, out = suite_file(tmp_path), tmp_path / "o"
    assert main(["bench", file, "--jobs", "1", "--out", str(out)]) == 0
    reference = sorted_rows(out)
    first = sorted((out / "runs").iterdir())[0]
    for path in first.iterdir():
        if path.name != "spec.json":
            path.unlink()
    table = leaderboard.read(out)
    leaderboard.write_csv(leaderboard.path_in(out), table[table["run_id"] != first.name])
    capsys.readouterr()
    assert main(["bench", file, "--jobs", "1", "--out", str(out)]) == 0
    assert "(cut before its first checkpoint: anew)" in capsys.readouterr().out
    assert not first.exists() and len(list((out / "runs").iterdir())) == 2
    pd.testing.assert_frame_equal(sorted_rows(out), reference)
