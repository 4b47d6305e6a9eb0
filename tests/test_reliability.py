"""Faults stay inside the member that caused them; tampered files and fuzzed settings are refused."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evoboard import envs
from evoboard.agents import PopulationActor, make_policy
from evoboard.agents.encodings import make as make_encoding
from evoboard.errors import RunFailed, UsageError
from evoboard.suite.board import leaderboard
from evoboard.suite.rundir import RunDir
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, parse_sets, resolve
from tests.conftest import REPO


class FaultyCartPole(CartPoleEnv):
    """CartPole that raises on command: mode "push" when a member pushes right on step 3, "always"."""

    mode: str | None = None

    def reset(self, **kwargs):
        self.steps = 0
        return super().reset(**kwargs)

    def step(self, action):
        self.steps += 1
        if FaultyCartPole.mode == "always" or (FaultyCartPole.mode == "push" and self.steps == 3 and action == 1):
            raise RuntimeError("simulator exploded")
        return super().step(action)


gym.register("evoboard-test/FaultyCartPole-v0", entry_point=FaultyCartPole, max_episode_steps=50)


@pytest.fixture(autouse=True)
def healthy_simulator():
    FaultyCartPole.mode = None
    yield
    FaultyCartPole.mode = None


def population(task, members=8, seed=0):
    policy = make_policy("mlp", task.observation_space, task.action_space)
    return policy, make_encoding("dense", policy).decode([(seed + m,) for m in range(members)])


def test_an_env_that_raises_fails_only_its_member():
    FaultyCartPole.mode = "push"
    task = envs.make("evoboard-test/FaultyCartPole-v0")
    policy, params = population(task)
    ev = task.evaluate(PopulationActor(policy, params, torch.device("cpu")), 8, [0])
    assert ev.failed.any() and not ev.failed.all()
    assert (ev.fitness[ev.failed] == -np.inf).all() and np.isfinite(ev.fitness[~ev.failed]).all()
    assert (ev.steps[ev.failed, 0] == 2).all()  # the raising step is not counted
    assert "RuntimeError: simulator exploded" in ev.failure


def test_non_finite_outputs_fail_only_that_member():
    task = envs.make("Pendulum-v1")
    policy, params = population(task, members=4)
    clean = task.evaluate(PopulationActor(policy, params, torch.device("cpu")), 4, [3])
    params["fc1"].weight[2, 0, 0] = float("nan")
    broken = task.evaluate(PopulationActor(policy, params, torch.device("cpu")), 4, [3])
    assert list(broken.failed) == [False, False, True, False]
    assert broken.fitness[2] == -np.inf and "non-finite" in broken.failure
    np.testing.assert_array_equal(broken.fitness[[0, 1, 3]], clean.fitness[[0, 1, 3]])


def test_a_generation_with_most_members_failing_stops_the_run_with_its_checkpoint(out_dir):
    spec = RunSpec("evoboard-test/FaultyCartPole-v0", population=6, generations=5)

    def switch_on_after_two(row, total):
        if row["generation"] == 1:
            FaultyCartPole.mode = "always"

    run = Run(resolve(spec), out_dir, switch_on_after_two)
    with pytest.raises(RunFailed, match=r"generation 2: 6 of 6 members failed .*simulator exploded"):
        run.run()
    FaultyCartPole.mode = None
    assert run.run_dir.read_checkpoint()["generation"] == 2
    assert not leaderboard.path_in(out_dir).exists()
    # Once the fault is gone the run resumes from its checkpoint and finishes.
    assert Run.resume(run.run_dir.path).run()["generations"] == 5


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda cp: cp.write_text(cp.read_text().replace('"generation": 2', '"generation": 1')), "integrity"),
        (lambda cp: cp.write_text(cp.read_text()[:40]), "not readable JSON"),
        (lambda cp: (cp.parent / "spec.json").write_text(
            (cp.parent / "spec.json").read_text().replace('"seed": 0', '"seed": 1')), "spec.json was changed"),
    ],
    ids=["edited state", "truncated", "edited spec"],
)  # fmt: skip
def test_tampered_run_folders_are_refused(tamper, message, out_dir):
    Run(resolve(RunSpec("CartPole-v1", population=4, generations=2, settings={"max_steps": 20})), out_dir).run()
    folder = next((out_dir / "runs").iterdir())
    checkpoint = folder / "checkpoint.json"
    state = json.loads(checkpoint.read_text())
    state["state"]["finished"] = False  # make it resumable, then re-sign it as the runner would
    RunDir(folder).write_checkpoint(state["state"])
    assert Run.resume(folder) is not None
    tamper(checkpoint)
    with pytest.raises(UsageError, match=message):
        Run.resume(folder)


SET_KEYS = ["sigma", "episodes", "max_steps", "patience", "elite_margin", "hidden", "activation", "truncation",
            "elites", "elite_candidates", "elite_episodes", "threads", "eval_episodes", "max_envs"]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pairs=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(SET_KEYS), st.text(max_size=12)),
            st.one_of(st.text(max_size=12), st.integers(-(10**6), 10**6).map(str), st.floats().map(str)),
        ),
        max_size=4,
    )
)
def test_fuzzed_set_pairs_either_resolve_or_raise_a_usage_error(pairs):
    try:
        resolved = resolve(RunSpec("CartPole-v1", population=4, settings=parse_sets([f"{k}={v}" for k, v in pairs])))
    except UsageError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert resolved.encoding.sigma > 0 and resolved.task.episodes >= 1 and resolved.runner.threads >= 1


@pytest.mark.slow
def test_eight_concurrent_runs_on_one_out_give_eight_intact_rows(out_dir):
    cmd = [sys.executable, "-m", "evoboard", "run", "--task", "CartPole-v1", "--population", "4", "--generations", "1",
           "--set", "max_steps=20", "--out", str(out_dir)]  # fmt: skip
    procs = [subprocess.Popen([*cmd, "--seed", str(s)], cwd=REPO, stderr=subprocess.PIPE) for s in range(8)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    table = leaderboard.read(out_dir)
    assert sorted(table["seed"]) == list(range(8)) and table["run_id"].is_unique
    assert isinstance(pd.read_csv(leaderboard.path_in(out_dir)), pd.DataFrame)
