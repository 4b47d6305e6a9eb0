"""Tasks: determinism for every registered id, exact frame counts, backfill, early termination."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, make_policy
from evoboard.agents.encodings import make as make_encoding
from evoboard.suite.settings import option_names
from evoboard.suite.speed import counting
from evoboard.suite.speed.counting import CountingCartPole

# One representative per family with many ids (Atari ships 100+ ROMs; its own tests cover them).
TASK_IDS = [t for t in envs.names() if not t.startswith("ALE/")] + [t for t in envs.names() if t.startswith("ALE/")][:1]


def small_task(task_id: str, **settings):
    """The task with its standard settings overridden by those of ``settings`` it has."""
    entry = envs.resolve(task_id)
    cls = entry.load()
    known = {k: v for k, v in settings.items() if k in option_names(cls.Options)}
    return envs.make(task_id, cls.Options(**{**entry.defaults, **known}))


@pytest.fixture
def local_corpus(tmp_path):
    """A local text file, so the file and download-backed text tasks run offline."""
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    return str(path)


def actor_for(task, members: int, seed: int = 0):
    policy = make_policy(task.default_policy, task.observation_space, task.action_space)
    params = make_encoding("dense", policy).decode([(seed + m,) for m in range(members)])
    return PopulationActor(policy, params, torch.device("cpu")), policy, params


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_same_seeds_give_same_evaluation(task_id, local_corpus):
    corpus = {"corpus_path": local_corpus} if task_id in ("charlm/file", "charlm/shakespeare") else {}
    task = small_task(task_id, max_steps=25, context=8, batch_windows=4, **corpus)
    try:
        first = task.evaluate(actor_for(task, 3)[0], 3, [11, 12])
        again = task.evaluate(actor_for(task, 3)[0], 3, [11, 12])
    finally:
        task.close()
    assert first.fitness.shape == (3,) and first.returns.shape == (3, 2)
    np.testing.assert_array_equal(first.returns, again.returns)
    np.testing.assert_array_equal(first.steps, again.steps)
    assert first.frames == again.frames == int(first.steps.sum()) * task.frames_per_step
    assert first.member_forwards == again.member_forwards > 0


def reference_episode(task_id: str, policy, params, member: int, seed: int, max_steps: int):
    """One member's episode on a plain gymnasium env, one forward per step."""
    env = gym.make(task_id, max_episode_steps=max_steps)
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    one = params.select(torch.tensor([member]))
    while not done:
        action = policy.act(one, torch.as_tensor(obs[None], dtype=torch.float32))[0].numpy()
        obs, reward, terminated, truncated, _ = env.step(int(action) if action.ndim == 0 else action)
        total, steps, done = total + reward, steps + 1, terminated or truncated
    env.close()
    return total, steps


@pytest.mark.parametrize("task_id", ["CartPole-v1", "Pendulum-v1"])
def test_batched_evaluation_equals_one_env_per_member(task_id):
    task = small_task(task_id, max_steps=120)
    actor, policy, params = actor_for(task, 4, seed=3)
    ev = task.evaluate(actor, 4, [5, 6])
    task.close()
    for member in range(4):
        for episode, seed in enumerate([5, 6]):
            ret, steps = reference_episode(task_id, policy, params, member, seed, 120)
            assert ev.steps[member, episode] == steps
            assert ev.returns[member, episode] == pytest.approx(ret, abs=1e-9)
    assert ev.frames == ev.steps.sum() == ev.member_forwards  # reset steps are never counted
    assert ev.frames_saved == 0 and not ev.cut.any()


def test_backfilling_few_envs_gives_the_same_results():
    wide = small_task("CartPole-v1", max_steps=200)
    narrow = small_task("CartPole-v1", max_steps=200, max_envs=3)
    a = wide.evaluate(actor_for(wide, 8)[0], 8, [1, 2])
    b = narrow.evaluate(actor_for(narrow, 8)[0], 8, [1, 2])
    assert len(narrow._envs) == 3
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.steps, b.steps)
    assert a.frames == b.frames and a.member_forwards == b.member_forwards


def test_patience_cuts_episodes_without_positive_reward():
    # Pendulum's reward is never positive, so every episode ends after exactly `patience` steps.
    task = small_task("Pendulum-v1", patience=10)
    ev = task.evaluate(actor_for(task, 4)[0], 4, [0])
    assert (ev.steps == 10).all() and ev.cut.all()
    assert ev.frames == 40
    assert ev.frames_saved == 4 * (200 - 10)


def test_below_elite_rule_saves_frames_and_keeps_uncut_fitness():
    free = small_task("Pendulum-v1")
    ruled = small_task("Pendulum-v1", elite_margin=30.0)
    members, seeds = 12, [4]
    base = free.evaluate(actor_for(free, members)[0], members, seeds)
    best = int(np.argmax(base.fitness))
    # The elite's running return: replay the best member's episode with tracing on.
    traced = ruled.evaluate(actor_for(ruled, members)[0], members, seeds)
    assert traced.best_trace is not None and len(traced.best_trace) == base.steps[best, 0]
    assert traced.best_trace[-1] == pytest.approx(base.returns[best, 0])
    cut = ruled.evaluate(actor_for(ruled, members)[0], members, seeds, elite_trace=traced.best_trace)
    assert cut.cut.any(), "some members should fall behind the elite"
    assert not cut.cut[best].any()
    assert cut.frames < base.frames and cut.frames_saved > 0
    assert cut.frames + cut.frames_saved == base.frames  # every cut episode had its full budget left
    kept = ~cut.cut[:, 0]
    np.testing.assert_array_equal(cut.fitness[kept], base.fitness[kept])
    assert (cut.returns[~kept, 0] < traced.best_trace[cut.steps[~kept, 0] - 1] - 30.0).all()


def test_mujoco_leaves_no_log_file_behind(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    task = small_task("HalfCheetah-v5", max_steps=5)
    task.evaluate(actor_for(task, 2)[0], 2, [0])
    task.close()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert "settotalmass" not in capfd.readouterr().err


@pytest.mark.parametrize(("members", "max_envs"), [(16, 256), (16, 5), (64, 20)])
def test_no_env_step_is_taken_for_a_finished_episode(members, max_envs):
    """Episodes end at very different times; every step taken must be a counted frame of a running job
    (P=64 with backfilling is the issue's case)."""
    task = small_task(counting.register(), max_envs=max_envs)
    actor = actor_for(task, members)[0]
    CountingCartPole.steps_taken = 0
    ev = task.evaluate(actor, members, [3, 4])
    task.close()
    assert ev.steps.min() < ev.steps.max() / 2  # the check means something only if lengths differ
    assert CountingCartPole.steps_taken == ev.frames == ev.steps.sum() == ev.member_forwards
