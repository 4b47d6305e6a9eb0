"""Runs and suites as TOML files: the same keys as the flags, the same rows, the built-ins read the same way."""

from __future__ import annotations

import pytest

from evoboard.suite.cli import main
from evoboard.suite.suites import SUITES, load_suite
from evoboard.suite.suites.files import builtin_files
from tests.conftest import rows

FLAGS = ["--task", "CartPole-v1", "--population", "4", "--generations", "2", "--seed", "1"]
SETS = ["--set", "max_steps=20", "--set", "sigma=0.05", "--set", "hidden=16,16"]
RUN_TOML = (
    'task = "CartPole-v1"\npopulation = 4\ngenerations = 2\nseed = 1\nmax_steps = 20\nsigma = 0.05\nhidden = [16, 16]\n'
)


def test_a_config_file_gives_the_row_the_same_flags_give(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(RUN_TOML)
    assert main(["run", *FLAGS, *SETS, "--out", str(tmp_path / "flags")]) == 0
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "file")]) == 0
    by_flags, by_file = rows(tmp_path / "flags"), rows(tmp_path / "file")
    assert len(by_file) == 1 and by_file.iloc[0]["population"] == 4
    assert by_file.equals(by_flags)


def test_flags_and_sets_override_the_file(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(RUN_TOML + 'out = "ignored"\n')
    out = tmp_path / "results"
    assert main(["run", "--config", str(config), "--population", "6", "--set", "sigma=0.1", "--out", str(out)]) == 0
    row = rows(out).iloc[0]
    assert row["population"] == 6 and '"sigma": 0.1' in row["config"] and '"max_steps": 20' in row["config"]
    assert not (tmp_path / "ignored").exists()


BAD_FILES = {
    "misspelt flag key": (
        'task = "CartPole-v1"\npopulaton = 4\n',
        "unknown key 'populaton' (did you mean 'population'?)",
    ),
    "misspelt setting": ('task = "CartPole-v1"\nsigmaa = 0.1\n', "unknown key 'sigmaa' (did you mean 'sigma'?)"),
    "a setting of another encoding": ('task = "CartPole-v1"\nrank = 2\n', "unknown key 'rank'"),
    "no task": ("population = 4\n", "names no task"),
    "not TOML": ("task = \n", "is not valid TOML"),
    "wrong type": ('task = "CartPole-v1"\npopulation = "many"\n', "setting 'population' must be int"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_config_file_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    text, message = BAD_FILES[case]
    config = tmp_path / "run.toml"
    config.write_text(text)
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]


USER_SUITE = """
description = "dense vs a lowrank baseline on CartPole"
[defaults]
population = 4
generations = 1
max_steps = 20
[[runs]]
task = "CartPole-v1"
[[baselines]]
encoding = "lowrank"
"""


def test_a_user_suite_file_runs_and_its_rows_aggregate(tmp_path, capsys):
    suite = tmp_path / "my_suite.toml"
    suite.write_text(USER_SUITE)
    out = tmp_path / "results"
    assert main(["bench", str(suite), "--seeds", "2", "--out", str(out)]) == 0
    assert sorted(rows(out)["encoding"]) == ["dense", "dense", "lowrank", "lowrank"]
    capsys.readouterr()
    assert main(["leaderboard", "--out", str(out), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(",2," in line for line in lines[1:])  # n = 2 seeds per variant


def test_a_suite_file_with_an_unknown_key_exits_2_and_writes_nothing(tmp_path, capsys):
    suite = tmp_path / "my_suite.toml"
    suite.write_text(USER_SUITE.replace("max_steps", "max_stesp"))
    assert main(["bench", str(suite), "--out", str(tmp_path / "results")]) == 2
    assert "did you mean 'max_steps'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.stem)
def test_every_built_in_list_suite_is_a_shipped_file_that_suite_show_prints(path, tmp_path, capsys):
    assert SUITES[path.stem].specs == load_suite(path).specs and SUITES[path.stem].specs
    assert main(["suite", "show", path.stem]) == 0
    copy = tmp_path / "copy.toml"
    copy.write_text(capsys.readouterr().out)
    assert load_suite(copy).specs == SUITES[path.stem].specs


def test_reference_suites_keep_their_runs():
    specs = SUITES["encodings-control"].specs
    assert [(s.task, s.encoding) for s in specs[:2]] == [("HalfCheetah-v5", "dense"), ("HalfCheetah-v5", "lowrank")]
    assert len(specs) == 8 and {s.population for s in specs} == {32}
    assert [s.algorithm for s in SUITES["encodings-charlm"].specs][-1] == "adam"
    assert {s.settings.get("elite_margin") for s in SUITES["early-termination"].specs} == {None, 100.0, 5.0}


def test_suite_show_of_a_procedure_exits_2(capsys):
    assert main(["suite", "show", "lottery"]) == 2
    assert "is a procedure" in capsys.readouterr().err


def test_a_baseline_without_a_task_runs_at_each_task_s_own_budget(tmp_path):
    suite = tmp_path / "floors.toml"
    suite.write_text(
        """
[defaults]
population = 4
[[runs]]
task = "CartPole-v1"
max_steps = 30
grid = { encoding = ["dense", "lowrank"] }
[[runs]]
task = "Pendulum-v1"
generations = 3
grid = { patience = [5, 9] }
[[baselines]]
algorithm = "random"
[[baselines]]
algorithm = "random"
population = 6
"""
    )
    floors = [s for s in load_suite(suite).specs if s.algorithm == "random"]
    by_task = {(s.task, s.population): s for s in floors}
    assert by_task["CartPole-v1", 4].settings.get("max_steps") == 30  # every CartPole run has it
    assert by_task["Pendulum-v1", 4].generations == 3
    assert by_task["Pendulum-v1", 4].settings.get("patience") is None  # the runs disagree: not taken
    assert by_task["CartPole-v1", 6].settings.get("max_steps") == 30  # its own population, the task's steps
