"""The opt-in snapshot driver (``resets=snapshot``): each episode a function of its seed, the vector env's frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from evoboard.envs.atari import AtariOptions, VectorSlots
from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main

ale_py = pytest.importorskip("ale_py")
from evoboard.envs.ale_snapshot import AreaResize, SnapshotSlots, area_taps  # noqa: E402  (needs ale_py)
from evoboard.envs.ale_workers import SnapshotWorkers, process_count  # noqa: E402
from tests.atari_common import RIGHTFIRE, make, pixel_policy  # noqa: E402


def recording(act, frames: list):
    """``act`` that also keeps a copy of every batch of observations it sees."""

    def run(members, obs):
        frames.append(obs.copy())
        return act(members, obs)

    return run


def episode(slots: SnapshotSlots, slot: int, seed: int, actions: np.ndarray) -> tuple[np.ndarray, float]:
    """One episode of ``seed`` in ``slot`` under a fixed action sequence: its observations (T+1, ...) and return."""
    obs = np.zeros((slot + 1, *slots.observation_space.shape), dtype=np.uint8)
    reward, ended = np.zeros(1), np.zeros(1, dtype=bool)
    slots.reset([slot], [seed], obs)
    seen, total = [obs[slot].copy()], 0.0
    for a in actions:
        slots.step([slot], np.array([a]), obs, reward, ended)
        seen.append(obs[slot].copy())
        total += reward[0]
        if ended[0]:
            break
    return np.stack(seen), total


def test_a_bad_resets_value_is_one_line():
    with pytest.raises(ValueError, match=r"^resets must be one of reload, snapshot, got 'fast'$"):
        AtariOptions(resets="fast")
    with pytest.raises(ValueError, match="screen_size must be <= 160"):
        AtariOptions(resets="snapshot", screen_size=200)


def test_a_bad_resets_value_on_the_command_line_exits_2(out_dir, capsys):
    argv = ["run", "--task", "ALE/Pong-v5", "--population", "2", "--out", str(out_dir), "--set", "resets=fast"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "evoboard: error: resets must be one of reload, snapshot, got 'fast'\n"
    assert not out_dir.exists()


def test_the_default_driver_is_still_the_vector_env():
    assert AtariOptions().resets == "reload"
    task = make("Pong", max_steps=5)
    try:
        assert isinstance(task._driver, VectorSlots)
        assert type(task._driver.slots[0]).__name__ == "AtariVectorEnv"
    finally:
        task.close()


@pytest.mark.parametrize("settings", [{}, {"full_action_space": True}])
def test_spaces_match_the_vector_env(settings):
    vector, snapshot = make("Breakout", **settings), make("Breakout", resets="snapshot", env_processes=1, **settings)
    try:
        assert isinstance(snapshot._driver, SnapshotSlots)
        assert snapshot.observation_space == vector.observation_space  # Box(0, 255, (4, 84, 84), uint8)
        assert snapshot.observation_space.shape == (4, 84, 84) and snapshot.observation_space.dtype == np.uint8
        assert snapshot.action_space == vector.action_space
    finally:
        vector.close()
        snapshot.close()
    assert snapshot.action_space == gym.spaces.Discrete(18 if settings else 4)


@pytest.mark.parametrize("fire_reset", [True, False])
def test_without_randomness_the_frames_and_returns_are_the_vector_envs(fire_reset):
    """Sticky actions 0 and no no-ops leave nothing to draw: both drivers must then see the same frames."""
    frames: dict[str, list] = {"reload": [], "snapshot": []}
    results = {}
    for resets in frames:
        task = make(
            "SpaceInvaders", max_steps=120, sticky_actions=0.0, noop_max=0, fire_reset=fire_reset, resets=resets
        )
        try:
            task.evaluate(lambda m, o: np.full(len(m), RIGHTFIRE), 3, [1])  # the slots played before
            results[resets] = task.evaluate(recording(pixel_policy(6), frames[resets]), 3, [0])
        finally:
            task.close()
    assert len(frames["snapshot"]) == len(frames["reload"]) == 120  # 3 slots: one lane
    for ours, theirs in zip(frames["snapshot"], frames["reload"], strict=True):
        assert ours.dtype == theirs.dtype == np.uint8
        np.testing.assert_array_equal(ours, theirs)  # frameskip, max-pool, area resize, stack, FIRE reset
    np.testing.assert_array_equal(results["snapshot"].returns, results["reload"].returns)
    assert results["snapshot"].returns.max() > 0  # the members scored: rewards were compared, not only zeros


def test_same_seeds_give_same_returns():
    act = pixel_policy(6)
    first, second = (
        make("SpaceInvaders", max_steps=60, resets="snapshot"),
        make("SpaceInvaders", max_steps=60, resets="snapshot"),
    )
    try:
        a = first.evaluate(act, 3, [1, 2])
        b = first.evaluate(act, 3, [1, 2])  # the same slots again
        c = second.evaluate(act, 3, [1, 2])  # fresh slots
    finally:
        first.close()
        second.close()
    for other in (b, c):
        np.testing.assert_array_equal(a.returns, other.returns)
        np.testing.assert_array_equal(a.steps, other.steps)


def test_an_episode_depends_on_its_seed_alone_not_its_slot_population_or_order():
    act = lambda m, o: np.where(m % 2 == 1, RIGHTFIRE, pixel_policy(6)(m, o))  # noqa: E731
    task = make("SpaceInvaders", max_steps=80, resets="snapshot", max_envs=6)
    few = make("SpaceInvaders", max_steps=80, resets="snapshot", max_envs=2)  # jobs queue for 2 slots
    try:
        wide = task.evaluate(act, 3, [7, 8])  # 6 jobs side by side
        reordered = few.evaluate(act, 3, [8, 7])  # the seeds swapped, slots reused
        alone = task.evaluate(act, 2, [8])  # a smaller population, other slots
    finally:
        task.close()
        few.close()
    np.testing.assert_array_equal(reordered.returns[:, ::-1], wide.returns)
    np.testing.assert_array_equal(alone.returns[:, 0], wide.returns[:2, 1])
    assert len(np.unique(wide.returns)) > 1  # the episodes differ, so equal returns say something


def test_a_restore_after_other_episodes_starts_like_a_fresh_slot():
    options = AtariOptions(resets="snapshot")  # sticky actions 0.25 and up to 30 no-ops: the seed decides both
    actions = np.random.default_rng(0).integers(0, 6, 100)
    left = np.full(40, 3)  # LEFT: the other episodes end holding it, so a leaked last action would show
    fresh = SnapshotSlots("pong", options, 27_000)
    used = SnapshotSlots("pong", options, 27_000)
    try:
        for seed in (7, 10):  # seed 10's first frame repeats the previous action (its first draw is < 0.25)
            reference, ref_return = episode(fresh, 0, seed, actions)
            for other, slot in ((3, 0), (4, 1), (5, 0)):
                episode(used, slot, other, left)
            for slot in (0, 1):
                seen, total = episode(used, slot, seed, actions)
                np.testing.assert_array_equal(seen, reference)
                assert total == ref_return
            assert not np.array_equal(reference[1], reference[-1])  # the screen moved
    finally:
        fresh.close()
        used.close()


def test_sticky_actions_are_drawn_from_the_episode_seed():
    actions = np.random.default_rng(1).integers(0, 6, 120)
    runs = {}
    for sticky in (0.0, 0.25):
        slots = SnapshotSlots("pong", AtariOptions(resets="snapshot", sticky_actions=sticky, noop_max=0), 27_000)
        try:
            for seed in (1, 2):
                runs[sticky, seed] = episode(slots, 0, seed, actions)[0]
            runs[sticky, "again"] = episode(slots, 0, 1, actions)[0]
        finally:
            slots.close()
    np.testing.assert_array_equal(runs[0.0, 1], runs[0.0, 2])  # no draw at all: the seed cannot matter
    assert not np.array_equal(runs[0.25, 1], runs[0.0, 1])  # a repeated action moved the paddle elsewhere
    assert not np.array_equal(runs[0.25, 1], runs[0.25, 2])  # each seed its own draws
    np.testing.assert_array_equal(runs[0.25, 1], runs[0.25, "again"])


def test_the_area_resize_is_a_weighted_mean_rounded_to_nearest():
    for src, dst in ((210, 84), (160, 84), (160, 80)):
        index, weight = area_taps(src, dst)
        np.testing.assert_allclose(weight.sum(axis=1), 1.0, rtol=1e-6)  # each output pixel is a mean
        assert index.min() >= 0 and index.max() == src - 1
    frames = np.random.default_rng(0).integers(0, 256, (3, 210, 160), dtype=np.uint8)
    resize = AreaResize(210, 160, 84)
    rows, cols = (np.zeros((84, n)) for n in (210, 160))
    for dense, (index, weight) in ((rows, resize.rows), (cols, resize.cols)):
        np.add.at(dense, (np.arange(84)[:, None], index), weight)
    exact = rows @ frames.astype(np.float64) @ cols.T  # (3, 84, 84) in float64
    out = resize(frames)
    assert out.shape == (3, 84, 84) and out.dtype == np.uint8
    assert np.abs(out - exact).max() <= 0.5 + 1e-3
    np.testing.assert_array_equal(resize(np.full((1, 210, 160), 77, np.uint8)), np.full((1, 84, 84), 77))


@pytest.mark.slow
def test_a_snapshot_run_records_its_driver(out_dir):
    argv = ["run", "--task", "ALE/Pong-v5", "--population", "2", "--generations", "1", "--out", str(out_dir)]
    settings = ["resets=snapshot", "max_frames=200", "eval_episodes=1", "elite_candidates=1", "elite_episodes=1",
                "cnn_hidden=16"]  # fmt: skip
    assert main([*argv, *[a for kv in settings for a in ("--set", kv)]]) == 0
    row = leaderboard.read(out_dir).iloc[0]
    assert '"resets": "snapshot"' in row["config"]
    assert row["frames"] == 4 * (2 * 50 + 1 * 50 + 1 * 50)  # generation, elite re-evaluation, final score


def by_member(frames: list) -> dict[int, list]:
    """Each member's observations in the order it saw them, from ``recording``-style (members, obs) batches."""
    seen: dict[int, list] = {}
    for members, obs in frames:
        for m, o in zip(members.tolist(), obs, strict=True):
            seen.setdefault(m, []).append(o)
    return seen


def test_worker_processes_give_the_frames_and_returns_of_one_process():
    """Slots spread over 2 or 3 worker processes, four lanes in flight: each member sees the same frames."""
    act = pixel_policy(6)
    seen, results = {}, {}
    for processes in (1, 2, 3):
        frames: list = []

        def run(members, obs, frames=frames):
            frames.append((members.copy(), obs.copy()))
            return act(members, obs)

        task = make("SpaceInvaders", max_steps=40, resets="snapshot", env_processes=processes, max_envs=16)
        try:
            assert isinstance(task._driver, SnapshotSlots if processes == 1 else SnapshotWorkers)
            task.evaluate(act, 2, [3])  # the slots played before
            results[processes] = task.evaluate(run, 8, [1, 2, 4])  # 24 jobs queue for 16 slots in 4 lanes
        finally:
            task.close()
        seen[processes] = by_member(frames)
    for processes in (2, 3):
        np.testing.assert_array_equal(results[processes].returns, results[1].returns)
        np.testing.assert_array_equal(results[processes].steps, results[1].steps)
        for member, frames in seen[1].items():
            np.testing.assert_array_equal(np.stack(seen[processes][member]), np.stack(frames))
    assert len(np.unique(results[1].returns)) > 1


def test_lanes_give_the_vector_envs_returns_of_one_lane():
    """env_threads windows the vector env's steps (one lane); the default overlaps two lanes: the same episodes."""
    act = pixel_policy(6)
    results = {}
    for threads in (None, 1):
        task = make("SpaceInvaders", max_steps=40, env_threads=threads, max_envs=8)
        try:
            assert task._driver.lanes == (2 if threads is None else 1)
            results[threads] = task.evaluate(act, 5, [1, 2])  # 10 jobs for 8 slots
        finally:
            task.close()
    np.testing.assert_array_equal(results[None].returns, results[1].returns)
    np.testing.assert_array_equal(results[None].steps, results[1].steps)


def test_worker_processes_are_one_per_core_and_none_inside_a_daemonic_worker(monkeypatch):
    import multiprocessing
    import os

    options = AtariOptions(resets="snapshot")
    assert process_count(options) == len(os.sched_getaffinity(0))
    assert process_count(AtariOptions(resets="snapshot", max_envs=1)) == 1
    assert process_count(AtariOptions(resets="snapshot", env_processes=3)) == 3

    class Daemonic:
        daemon = True

    monkeypatch.setattr(multiprocessing, "current_process", lambda: Daemonic())
    assert process_count(options) == 1
    with pytest.raises(ValueError, match=r"^env_processes=2 needs child processes.*set env_processes=1 there$"):
        process_count(AtariOptions(resets="snapshot", env_processes=2))


def test_a_dead_worker_is_a_one_line_error():
    workers = SnapshotWorkers("pong", AtariOptions(resets="snapshot"), 27_000, 2)
    obs = np.zeros((8, *workers.observation_space.shape), dtype=np.uint8)
    try:
        workers.reset(list(range(8)), list(range(8)), obs)  # slots 0-3 in worker 0, 4-7 in worker 1
        workers.processes[1].kill()
        workers.processes[1].join()
        with pytest.raises(RuntimeError, match=r"^snapshot env worker 1 died \(exit code -9\)$"):
            workers.step(list(range(8)), np.zeros(8), obs, np.zeros(8), np.zeros(8, dtype=bool))
    finally:
        workers.close()


def test_an_error_in_a_worker_is_raised_here_and_the_workers_go_on():
    workers = SnapshotWorkers("pong", AtariOptions(resets="snapshot"), 27_000, 2)
    obs = np.zeros((4, *workers.observation_space.shape), dtype=np.uint8)
    rewards, ended = np.zeros(4), np.zeros(4, dtype=bool)
    try:
        workers.reset([0, 1, 2, 3], [0, 1, 2, 3], obs)
        with pytest.raises(RuntimeError, match=r"^snapshot env worker: IndexError"):
            workers.step([0, 1, 2, 3], np.array([0, 0, 99, 0]), obs, rewards, ended)  # Pong has 6 actions
        before = obs.copy()
        workers.step([0, 1, 2, 3], np.array([0, 1, 2, 3]), obs, rewards, ended)  # the replies stay in order
        assert not np.array_equal(obs[:, :-1], before[:, :-1])  # the stacks moved on
    finally:
        workers.close()
