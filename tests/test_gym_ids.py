"""Any gymnasium id is a task: ids a package registers, the ``module:EnvId`` form, adapted spaces, image tasks."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec
from tests.conftest import run_cli

TOY = '''
import gymnasium as gym
import numpy as np


class Toy(gym.Env):
    """Dict observations, MultiDiscrete actions: reward 1 per step for choosing (2, 1)."""

    observation_space = gym.spaces.Dict({"pos": gym.spaces.Discrete(5), "vel": gym.spaces.Box(-1, 1, (2,))})
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        reward = float(action[0] == 2 and action[1] == 1)
        return self.observation_space.sample(), reward, False, False, {}


class Words(Toy):
    observation_space = gym.spaces.Text(8)


def register_envs():
    gym.register("NAME-v0", entry_point="MODULE:Toy", max_episode_steps=5)
    gym.register("NAMEWords-v0", entry_point="MODULE:Words", max_episode_steps=5)
'''


def toy(name: str, module: str) -> str:
    return TOY.replace("NAME", name).replace("MODULE", module)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Two tiny installed packages: ``evotoy`` registers through the ``gymnasium.envs`` entry point,
    ``evoplain`` only on import (as most packages, e.g. flappy-bird-gymnasium, do)."""
    root = tmp_path_factory.mktemp("site")
    (root / "evotoy.py").write_text(toy("EvoToy", "evotoy"))
    (root / "evoplain.py").write_text(toy("EvoPlain", "evoplain") + "\nregister_envs()\n")
    info = root / "evotoy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evotoy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gymnasium.envs]\n__root__ = evotoy:register_envs\n")
    return {"PYTHONPATH": str(root)}


def cli_run(task: str, out, env, *extra: str):
    args = ["run", "--task", task, "--population", "4", "--generations", "1", "--out", str(out), *extra]
    return run_cli(*args, "--set", "eval_episodes=1", env=env)


@pytest.mark.parametrize("task", ["EvoToy-v0", "evoplain:EvoPlain-v0"])
def test_a_packages_id_runs_with_its_own_time_limit(task, packages, tmp_path):
    done = cli_run(task, tmp_path, packages, "--set", "elite_candidates=0")  # frames: the population's alone
    assert done.returncode == 0, done.stderr
    row = leaderboard.read(tmp_path).iloc[0]
    assert row["task"] == task and row["policy"].startswith("mlp")
    history = pd.read_csv(next((tmp_path / "runs").iterdir()) / "history.csv")
    assert history["frames"][0] == 4 * 5  # every member played the registered 5 steps


def test_an_id_registered_on_import_only_points_to_the_module_form(packages, tmp_path):
    done = cli_run("EvoPlain-v0", tmp_path, packages)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "module:EnvId" in done.stderr and "evoboard list tasks" in done.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_an_unadaptable_space_exits_2_naming_it(packages, tmp_path):
    done = cli_run("evotoy:EvoToyWords-v0", tmp_path, packages)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "Text(" in done.stderr and "EvoToyWords-v0" in done.stderr


def test_an_unknown_id_gets_close_matches_not_every_id(capsys, tmp_path):
    assert main(["run", "--task", "FrozenLak-v1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'FrozenLake-v1'" in err and "see `evoboard list tasks`" in err
    assert "Humanoid-v5" not in err  # not the whole list
    assert main(["run", "--task", "nosuchpkg:Foo-v0", "--out", str(tmp_path)]) == 2
    assert "no module 'nosuchpkg' is installed" in capsys.readouterr().err


@pytest.mark.parametrize(("task", "settings"), [("FrozenLake-v1", {}), ("Blackjack-v1", {"max_steps": 10})])
def test_discrete_and_tuple_observations_run_end_to_end(task, settings, tmp_path):
    row = run_spec(RunSpec(task, population=4, generations=2, settings={**settings, "eval_episodes": 2}), tmp_path)
    assert row["policy"].startswith("mlp") and row["frames"] > 0


def test_blackjack_without_a_time_limit_asks_for_one(capsys, tmp_path):
    assert main(["run", "--task", "Blackjack-v1", "--out", str(tmp_path)]) == 2
    assert "has no time limit: set max_steps" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("Box2D") is None or importlib.util.find_spec("pygame") is None,
    reason='CarRacing-v3 needs Box2D and pygame: pip install -e ".[box2d]"',
)
def test_car_racing_runs_the_nature_cnn_on_grey_stacked_frames(tmp_path):
    settings = {"max_steps": 3, "eval_episodes": 1, "cnn_hidden": 16, "pixels_size": 36}
    row = run_spec(RunSpec("CarRacing-v3", population=2, generations=1, settings=settings), tmp_path)
    assert row["policy"] == "nature_cnn(16)" and row["frames"] > 0
    config = json.loads(row["config"])["settings"]["task"]
    assert (config["pixels_grey"], config["pixels_size"], config["pixels_stack"]) == (True, 36, 4)
