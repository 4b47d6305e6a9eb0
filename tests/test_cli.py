"""The CLI contract: list, run, leaderboard; bad input exits 2 with one line and writes nothing."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from evoboard.suite.board.leaderboard import COLUMNS
from evoboard.suite.cli import build_parser, main
from tests.conftest import run_cli

RUN = ["run", "--task", "CartPole-v1", "--population", "4", "--generations", "1", "--set", "max_steps=20"]

RUN_CASES = {
    "unknown task": (["--task", "NoSuchTask-v0"], "unknown task 'NoSuchTask-v0'"),
    "unknown encoding": (["--encoding", "lowrnak"], "unknown encoding 'lowrnak' (did you mean 'lowrank'?); valid: "),
    "unknown algorithm": (["--algorithm", "cma"], "unknown algorithm 'cma'; valid: "),
    "unknown policy": (["--policy", "resnet"], "unknown policy 'resnet'"),
    "population 1": (["--population", "1"], "population must be >= 2"),
    "population 0": (["--population", "0"], "population must be >= 2"),
    "population not an int": (["--population", "many"], "invalid int value"),
    "generations 0": (["--generations", "0"], "generations must be >= 1"),
    "negative generations": (["--generations", "-3"], "generations must be >= 1"),
    "negative seed": (["--seed", "-1"], "seed must be >= 0"),
    "bad device": (["--device", "tpu"], "invalid choice"),
    "unknown backend": (["--backend", "dask"], "unknown backend 'dask'; valid: local, processes, ray"),
    "sigma 0": (["--set", "sigma=0"], "sigma must be > 0"),
    "negative sigma": (["--set", "sigma=-0.1"], "sigma must be > 0"),
    "sigma nan": (["--set", "sigma=nan"], "sigma must be > 0"),
    "sigma inf": (["--set", "sigma=inf"], "sigma must be > 0 and finite"),
    "sigma not a number": (["--set", "sigma=big"], "setting 'sigma' must be float"),
    "malformed set": (["--set", "sigma"], "--set takes KEY=VALUE"),
    "empty set key": (["--set", "=3"], "--set takes KEY=VALUE"),
    "unknown set key": (["--set", "sigmaa=0.1"], "did you mean 'sigma'"),
    "episodes not an int": (["--set", "episodes=two"], "setting 'episodes' must be int"),
    "episodes 0": (["--set", "episodes=0"], "episodes must be >= 1"),
    "max_steps 0": (["--set", "max_steps=0"], "max_steps must be >= 1"),
    "fractional max_steps": (["--set", "max_steps=2.5"], "setting 'max_steps' must be int"),
    "patience 0": (["--set", "patience=0"], "patience must be >= 1"),
    "negative elite_margin": (["--set", "elite_margin=-1"], "elite_margin must be >= 0"),
    "max_envs 0": (["--set", "max_envs=0"], "max_envs must be >= 1"),
    "hidden width 0": (["--set", "hidden=64,0"], "hidden widths must be >= 1"),
    "hidden not ints": (["--set", "hidden=a,b"], "setting 'hidden' must be int"),
    "unknown activation": (["--set", "activation=gelu"], "activation must be one of"),
    "truncation 0": (["--set", "truncation=0"], "truncation must be >= 1"),
    "truncation above population": (["--set", "truncation=9"], "truncation (9) must be <= population (4)"),
    "negative elites": (["--set", "elites=-1"], "elites must be >= 0"),
    "elites = population": (["--set", "elites=4"], "elites (4) must be < population (4)"),
    "negative elite_candidates": (["--set", "elite_candidates=-1"], "elite_candidates must be >= 0"),
    "elite_episodes 0": (["--set", "elite_episodes=0"], "elite_episodes must be >= 1"),
    "threads 0": (["--set", "threads=0"], "threads must be >= 1"),
    "eval_episodes 0": (["--set", "eval_episodes=0"], "eval_episodes must be >= 1"),
}
OTHER_CASES = {
    "no command": ([], "the following arguments are required"),
    "unknown command": (["train"], "invalid choice"),
    "unknown list": (["list", "robots"], "invalid choice"),
    "unknown suite": (["bench", "nosuch", "--out", "{out}"], "unknown suite 'nosuch'"),
    "bench seeds 0": (["bench", "smoke", "--seeds", "0", "--out", "{out}"], "--seeds must be >= 1"),
    **(
        {}
        if torch.cuda.is_available()
        else {"bench on a missing GPU": (["bench", "throughput", "--device", "cuda", "--out", "{out}"], "no CUDA")}
    ),
    "leaderboard format": (["leaderboard", "--out", "{out}", "--format", "xml"], "invalid choice"),
    "leaderboard missing": (["leaderboard", "--out", "{out}/nowhere"], "no leaderboard in"),
    "resume missing folder": (["resume", "{out}/runs/nope"], "is not a run folder"),
    "resume a non-run folder": (["resume", "{out}"], "is not a run folder"),
    "resume a finished run": (["resume", "{run}"], "already finished"),
}
CASES = {**{k: ([*RUN, "--out", "{out}", *a], m) for k, (a, m) in RUN_CASES.items()}, **OTHER_CASES}


@pytest.fixture(scope="module")
def filled_out(tmp_path_factory):
    """An output folder holding one finished run: bad input must leave it exactly as it is."""
    out = tmp_path_factory.mktemp("filled") / "results"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_bad_input_table_is_long_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, filled_out, capsys):
    argv, message = CASES[case]
    run_folder = next((filled_out / "runs").iterdir())
    before = snapshot(filled_out)
    code = main([a.format(out=filled_out, run=run_folder) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("evoboard: error: ") and message in err, err
    assert "Traceback" not in err
    assert snapshot(filled_out) == before


def test_bad_input_in_a_real_process_prints_no_traceback(out_dir):
    done = run_cli(*RUN, "--out", str(out_dir), "--set", "sigma=0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip().splitlines() == [
        "evoboard: error: sigma must be > 0 and finite, got 0.0"
    ]
    assert not out_dir.exists()


def test_unwritable_output_folder_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([*RUN, "--out", str(blocker / "results")]) == 2
    assert "not writable" in capsys.readouterr().err


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
    for seed in ("0", "1"):
        assert main([*RUN, "--out", str(out_dir), "--seed", seed]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--out", str(out_dir), "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| rank | task | encoding | algorithm | n | iqm | ci_low | ci_high |")
    assert lines[2].startswith("| 1 | CartPole-v1 | dense | ga | 2 |")
    assert main(["leaderboard", "--out", str(out_dir), "--format", "markdown", "--runs"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 + 2  # header, rule, one line per run
    assert main(["leaderboard", "--out", str(out_dir), "--format", "csv", "--task", "Pendulum-v1"]) == 0
    assert capsys.readouterr().out.strip().startswith("task,encoding,algorithm,policy,score_kind,n,mean,iqm")


def test_list_settings_for_ga_shows_truncation_with_its_default_and_doc(capsys):
    assert main(["list", "settings", "--algorithm", "ga"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("truncation"))
    assert "int | None = unset" in line and "Parents kept each generation (top T)" in line
    assert "algorithm ga:" in out and "sigma" in out and "eval_episodes" in out


def test_list_settings_of_a_task_shows_its_standard_budget(capsys):
    assert main(["list", "settings", "--task", "HalfCheetah-v5", "--encoding", "lowrank"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:4] == ["max_steps", "int", "|", "None"] and "= 1000" in line for line in out.splitlines())
    assert "encoding lowrank:" in out and "rank" in out


def test_list_settings_of_an_unknown_component_exits_2(capsys):
    assert main(["list", "settings", "--encoding", "lowrnak"]) == 2
    assert "did you mean 'lowrank'" in capsys.readouterr().err


@pytest.mark.parametrize("what", ["encodings", "algorithms", "policies"])
def test_every_component_has_a_plain_description(what, capsys):
    assert main(["list", what]) == 0
    for line in capsys.readouterr().out.splitlines():
        name, _, description = line.partition(" ")
        assert len(description.strip()) > 10 and "`" not in description, line


@pytest.mark.parametrize("command", ["run", "bench", "leaderboard", "resume", "replay", "list", "suite"])
def test_help_gives_every_option_a_meaning_and_run_its_defaults(command, capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    assert all(action.help for action in sub._actions), command
    if command == "run":
        text = " ".join(sub.format_help().split())  # argparse wraps lines
        assert "(default: 32)" in text and "(default: 10)" in text and "default: dense)" in text
