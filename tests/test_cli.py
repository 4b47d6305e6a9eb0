"""The CLI contract: list, run, leaderboard; bad input exits 2 with one line and writes nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from suite.cli import main
from suite.leaderboard import COLUMNS
from tests.conftest import run_cli

RUN = ["run", "--task", "CartPole-v1", "--population", "4", "--generations", "1", "--set", "max_steps=20"]

BAD_INPUT = {
    "unknown task": (["--task", "NoSuchTask-v0"], "unknown task 'NoSuchTask-v0'"),
    "unknown encoding": (["--encoding", "lowrnak"], "unknown encoding 'lowrnak'; valid: "),
    "unknown algorithm": (["--algorithm", "cma"], "unknown algorithm 'cma'; valid: "),
    "population 1": (["--population", "1"], "population must be >= 2"),
    "generations 0": (["--generations", "0"], "generations must be >= 1"),
    "sigma 0": (["--set", "sigma=0"], "sigma must be > 0"),
    "negative sigma": (["--set", "sigma=-0.1"], "sigma must be > 0"),
    "malformed set": (["--set", "sigma"], "--set takes KEY=VALUE"),
    "unknown set key": (["--set", "sigmaa=0.1"], "did you mean 'sigma'"),
    "wrong type": (["--set", "episodes=two"], "setting 'episodes' must be int"),
    "not an int": (["--population", "many"], "invalid int value"),
    "bad device": (["--device", "tpu"], "invalid choice"),
    "unknown policy": (["--policy", "resnet"], "unknown policy 'resnet'"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_run_input_exits_2_with_one_line_and_writes_nothing(case, out_dir, capsys):
    extra, message = BAD_INPUT[case]
    code = main([*RUN, "--out", str(out_dir), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("evoboard: error: ") and message in err
    assert not out_dir.exists()


def test_bad_input_in_a_real_process_prints_no_traceback(out_dir):
    done = run_cli(*RUN, "--out", str(out_dir), "--set", "sigma=0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip().splitlines() == [
        "evoboard: error: sigma must be > 0, got 0.0"
    ]
    assert not out_dir.exists()


def test_unwritable_output_folder_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([*RUN, "--out", str(blocker / "results")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_unknown_bench_suite_lists_valid_ones(out_dir, capsys):
    assert main(["bench", "nosuch", "--out", str(out_dir)]) == 2
    assert "valid: " in capsys.readouterr().err and not out_dir.exists()


LISTED = [("tasks", "HalfCheetah-v5"), ("encodings", "dense"), ("algorithms", "ga"), ("suites", "smoke"),
          ("policies", "mlp")]  # fmt: skip


@pytest.mark.parametrize("what, expected", LISTED)
def test_list(what, expected, capsys):
    assert main(["list", what]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.slow
def test_run_appends_one_full_row_and_a_run_folder(out_dir):
    done = run_cli(*RUN, "--out", str(out_dir), "--generations", "2")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out_dir / "leaderboard.csv")
    assert list(table.columns) == COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert row["task"] == "CartPole-v1" and row["population"] == 4 and row["score_kind"] == "return"
    assert (
        row["frames"] > 0 and row["frames_per_s"] > 0 and row["search_dims"] == 4 * 64 + 64 * 64 + 64 * 2 + 64 + 64 + 2
    )
    assert row["genome_bytes"] in (4, 8)  # crowned elite: one or two links of 4 bytes
    assert f"{row['frames_per_s']:,.0f} frames/s" in done.stdout
    folder = out_dir / "runs" / row["run_id"]
    assert {p.name for p in folder.iterdir()} >= {"spec.json", "history.csv", "checkpoint.json"}
    assert len(pd.read_csv(folder / "history.csv")) == 2


def test_leaderboard_formats(out_dir, capsys):
    assert main([*RUN, "--out", str(out_dir)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--out", str(out_dir), "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| rank | task |") and "| CartPole-v1 |" in lines[2]
    assert main(["leaderboard", "--out", str(out_dir), "--format", "csv", "--task", "Pendulum-v1"]) == 0
    assert capsys.readouterr().out.strip() == ",".join(COLUMNS + ["rank"])
