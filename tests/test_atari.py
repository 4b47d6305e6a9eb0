"""Atari tasks on the real ALE with tiny budgets: ids, counts, backfill, early termination, CNN, scores."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evoboard import envs
from evoboard.agents import PopulationActor, make_policy
from evoboard.agents.cnn import NatureCNN
from evoboard.agents.encodings import make as make_encoding
from evoboard.agents.layers import PopulationParams, dense_form
from evoboard.envs.atari import TWO_PLAYER_ONLY, AtariOptions, game_name
from evoboard.envs.atari_scores import PROTOCOL_FRAMES, REFERENCE_SCORES, human_normalized, normalization_blocker
from evoboard.envs.base import Evaluation
from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec
from evoboard.suite.suites import SUITES
from evoboard.suite.suites.atari import ATARI5, GARBUS4

ale_py = pytest.importorskip("ale_py")
from tests.atari_common import RIGHTFIRE, make, pixel_policy  # noqa: E402


def test_every_shipped_rom_has_a_task_id():
    gym.register_envs(ale_py)
    ale_ids = {i for i in gym.registry if i.startswith("ALE/") and i.endswith("-v5")}
    roms = ale_py.roms.get_all_rom_ids()
    ours = {f"ALE/{game_name(rom)}-v5" for rom in roms if rom not in TWO_PLAYER_ONLY}
    assert ours == ale_ids  # the same ids ale-py itself registers with gymnasium
    assert len(ours) == len(roms) - len(TWO_PLAYER_ONLY) >= 100
    for task_id in ours:
        assert envs.resolve(task_id).entry_point == "evoboard.envs.atari:AtariTask"


def test_reference_scores_cover_the_57_games_and_the_suites():
    assert len(REFERENCE_SCORES) == 57 and set(REFERENCE_SCORES) <= set(ale_py.roms.get_all_rom_ids())
    for game in ATARI5 + GARBUS4 + ("Pong", "Breakout"):
        rom = envs.atari.task_ids()[f"ALE/{game}-v5"]
        assert rom in REFERENCE_SCORES
    assert [s.task for s in SUITES["atari5"].specs] == [f"ALE/{g}-v5" for g in ATARI5]
    assert [s.task for s in SUITES["garbus4"].specs] == [f"ALE/{g}-v5" for g in GARBUS4]
    assert {s.task for s in SUITES["atari-smoke"].specs} == {"ALE/Pong-v5", "ALE/Breakout-v5"}


def test_human_normalized_score_on_known_values():
    assert human_normalized("pong", -20.7) == pytest.approx(0.0, abs=1e-12)
    assert human_normalized("pong", 14.6) == pytest.approx(1.0)
    assert human_normalized("alien", (227.8 + 7127.7) / 2) == pytest.approx(0.5)
    assert human_normalized("breakout", 59.3) == pytest.approx(2.0)  # 1.7 + 2 * (30.5 - 1.7)
    assert human_normalized("double_dunk", -18.6 - 2.2) == pytest.approx(-1.0)


def test_task_score_is_human_normalized_or_raw_without_references():
    pong, short = make("Pong"), make("Pong", max_steps=10)
    adventure = make("Adventure")
    try:
        assert pong.score_kind == "human_normalized" and pong.raw_score_reason is None
        assert pong.score(np.array([14.6, -20.7])) == pytest.approx(0.5)
        assert short.score_kind == "return" and short.score(np.array([14.6, -20.7])) == pytest.approx(-3.05)
        assert adventure.score_kind == "return" and adventure.score(np.array([1.0, 2.0])) == 1.5
        assert adventure.raw_score_reason == "no reference scores"
    finally:
        for task in (pong, short, adventure):
            task.close()


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the defaults: Machado et al. 2018
        {"full_action_space": True},
        {"sticky_actions": 0.0},  # DQN no-op starts
        {"max_frames": PROTOCOL_FRAMES},
        {"frameskip": 3, "max_steps": PROTOCOL_FRAMES // 3},
        {"elite_margin": 5.0},  # the final score passes no elite trace: held-out episodes are never cut by it
        {"episodes": 3, "max_envs": 2},
    ],
)
def test_settings_of_the_protocol_are_normalized(settings):
    assert normalization_blocker(AtariOptions(**settings)) is None


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"max_frames": 2000}, "capped at 2,000 frames"),
        ({"max_steps": 10}, "capped at 40 frames"),
        ({"max_steps": 30_000}, "capped at 120,000 frames"),  # longer games than the references
        ({"frameskip": 5}, "capped at 135,000 frames"),
        ({"reward_clipping": True}, "clipped"),
        ({"episodic_life": True}, "first life lost"),
        ({"patience": 100}, "patience"),
        ({"sticky_actions": 0.1}, "neither protocol"),
        ({"sticky_actions": 0.0, "noop_max": 0}, "neither protocol"),
    ],
)
def test_settings_off_the_protocol_give_raw_returns(settings, reason):
    assert reason in normalization_blocker(AtariOptions(**settings))


def test_a_cut_held_out_episode_is_never_normalized(monkeypatch):
    task = make("Pong")
    try:
        cut = Evaluation(np.zeros(1), np.zeros((1, 2)), np.ones((1, 2), int), np.array([[False, True]]), 8, 4, 2)
        monkeypatch.setattr(task, "evaluate", lambda act, members, seeds: cut)
        with pytest.raises(RuntimeError, match="cut"):
            task.final_score(None, [0, 1])
        cut.cut[:] = False
        assert task.final_score(None, [0, 1])[0] == pytest.approx(20.7 / 35.3)
    finally:
        task.close()


def test_settings_follow_machado_and_reach_the_emulator():
    options = AtariOptions()
    assert (options.sticky_actions, options.frameskip, options.frame_stack, options.screen_size) == (0.25, 4, 4, 84)
    assert options.max_steps == 27_000 and not options.reward_clipping and not options.episodic_life
    assert AtariOptions(max_frames=2000).step_budget == 500
    task = make("Breakout", max_frames=200, full_action_space=True)
    try:
        assert task.max_steps == 50 and task.frames_per_step == 4
        assert task.action_space == gym.spaces.Discrete(18)
        assert task.observation_space.shape == (4, 84, 84) and task.observation_space.dtype == np.uint8
        assert task.default_policy == "nature_cnn"
    finally:
        task.close()
    with pytest.raises(ValueError, match="sticky_actions"):
        AtariOptions(sticky_actions=1.5)


@pytest.mark.parametrize("game", ATARI5)
def test_atari5_games_reset_and_step_through_the_task(game):
    task = make(game, max_steps=20)
    try:
        ev = task.evaluate(pixel_policy(task.action_space.n), 2, [5])
    finally:
        task.close()
    assert ev.steps.tolist() == [[20], [20]]
    assert ev.frames == 2 * 20 * 4 and ev.member_forwards == 40
    assert np.all(np.isfinite(ev.returns))


def test_same_seeds_give_same_returns_and_frames():
    act = pixel_policy(6)
    first, second = make("SpaceInvaders", max_steps=40), make("SpaceInvaders", max_steps=40)
    try:
        a = first.evaluate(act, 3, [1, 2])
        b = first.evaluate(act, 3, [1, 2])  # the same pool again
        c = second.evaluate(act, 3, [1, 2])  # a fresh pool
    finally:
        first.close()
        second.close()
    for other in (b, c):
        np.testing.assert_array_equal(a.returns, other.returns)
        np.testing.assert_array_equal(a.steps, other.steps)
        assert a.frames == other.frames
    assert a.returns.shape == (3, 2)


def test_frames_are_steps_taken_times_four_and_resets_are_not_counted():
    rows = []

    def counting(members, obs):
        rows.append(len(members))
        return np.full(len(members), RIGHTFIRE)

    task = make("SpaceInvaders", max_steps=30)
    try:
        ev = task.evaluate(counting, 3, [0, 1])
    finally:
        task.close()
    assert ev.steps.tolist() == [[30, 30]] * 3  # the budget, not one more (no reset step)
    assert sum(rows) == ev.steps.sum() == ev.member_forwards == 180  # one act row per env step taken
    assert ev.frames == 4 * 180 and ev.frames_saved == 0


def test_backfill_gives_the_same_returns_as_one_env_per_job():
    act = pixel_policy(6)
    results = []
    for max_envs in (2, 6):  # 3 members x 2 episodes = 6 jobs
        task = make("SpaceInvaders", max_steps=40, max_envs=max_envs)
        try:
            results.append(task.evaluate(act, 3, [7, 8]))
            assert len(task._driver.slots) == max_envs
        finally:
            task.close()
    np.testing.assert_array_equal(results[0].returns, results[1].returns)
    np.testing.assert_array_equal(results[0].steps, results[1].steps)
    assert results[0].frames == results[1].frames == 6 * 40 * 4


def test_a_pool_that_grows_while_resetting_gives_the_frames_of_a_fresh_one():
    seen: dict[str, list] = {"grown": [], "fresh": []}

    def recording(key: str):
        act = pixel_policy(6)

        def run(members, obs):
            seen[key].append((members.copy(), obs.copy()))
            return act(members, obs)

        return run

    grown, fresh = make("SpaceInvaders", max_steps=30), make("SpaceInvaders", max_steps=30)
    try:
        small = grown.evaluate(pixel_policy(6), 2, [3])
        assert len(grown._driver.slots) == 2
        big = grown.evaluate(recording("grown"), 5, [3])  # three slots made while the first two reset
        assert len(grown._driver.slots) == 5
        reference = fresh.evaluate(recording("fresh"), 5, [3])
    finally:
        grown.close()
        fresh.close()
    assert len(seen["grown"]) == len(seen["fresh"]) == 30  # 5 slots: one lane (LANE_SLOTS)
    for (m, o), (m_ref, o_ref) in zip(seen["grown"], seen["fresh"], strict=True):
        np.testing.assert_array_equal(m, m_ref)
        np.testing.assert_array_equal(o, o_ref)  # every frame, from the first reset on
    np.testing.assert_array_equal(big.returns, reference.returns)
    np.testing.assert_array_equal(big.returns[:2], small.returns)


def test_raw_rewards_reach_fitness():
    task = make("SpaceInvaders", max_steps=60)
    try:
        assert task.options.reward_clipping is False
        ev = task.evaluate(lambda m, o: np.where(m == 1, RIGHTFIRE, 0), 2, [0])
    finally:
        task.close()
    assert ev.fitness[1] >= 5  # one invader is worth 5 points; clipped it would be 1
    assert ev.fitness[0] == 0  # NOOP never fires


def test_patience_cuts_only_idle_members_and_never_changes_an_uncut_return():
    act = lambda m, o: np.where(m % 2 == 1, RIGHTFIRE, 0)  # noqa: E731  (odd members score, even idle)
    free, patient = make("SpaceInvaders", max_steps=60), make("SpaceInvaders", max_steps=60, patience=40)
    try:
        full = free.evaluate(act, 4, [0])
        cut = patient.evaluate(act, 4, [0])
    finally:
        free.close()
        patient.close()
    assert cut.cut[:, 0].tolist() == [True, False, True, False]
    assert cut.steps[0, 0] == 40 and cut.steps[1, 0] == 60
    np.testing.assert_array_equal(cut.returns[~cut.cut], full.returns[~cut.cut])
    assert cut.frames_saved == 2 * (60 - 40) * 4 and cut.frames == full.frames - cut.frames_saved


def reference_cnn(policy: NatureCNN, params: PopulationParams, obs: torch.Tensor, member: int) -> torch.Tensor:
    """One member's Nature CNN with torch.nn.functional, one layer at a time: obs (C, H, W) -> (actions,)."""
    x = obs.unsqueeze(0).float() / 255.0
    for layer in policy.layers[:3]:
        p = params[layer.name]
        x = torch.relu(F.conv2d(x, p.weight[member], p.bias[member], stride=layer.stride))
    x = torch.relu(F.linear(x.flatten(1), params["fc"].weight[member], params["fc"].bias[member]))
    return F.linear(x, params["out"].weight[member], params["out"].bias[member])[0]


def test_batched_cnn_equals_a_per_member_reference():
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    policy = make_policy("nature_cnn", space, gym.spaces.Discrete(6), NatureCNN.Options(cnn_hidden=256))
    assert [layer.weight_shape for layer in policy.layers][:3] == [(32, 4, 8, 8), (64, 32, 4, 4), (64, 64, 3, 3)]
    assert policy.flat == 3136 and policy.describe() == "nature_cnn(256)"
    g = torch.Generator().manual_seed(0)
    members = 5
    params = PopulationParams(
        {
            layer.name: dense_form(
                layer, {t.role: torch.randn(members, *t.shape, generator=g) * max(t.std, 0.1) for t in layer.tensors()}
            )
            for layer in policy.layers
        }
    )
    obs = torch.randint(0, 256, (members, 4, 84, 84), generator=g, dtype=torch.uint8)
    with torch.inference_mode():
        batched = policy.forward(params, obs.unsqueeze(1).float() / 255.0)[:, 0]  # (P, actions)
        reference = torch.stack([reference_cnn(policy, params, obs[m], m) for m in range(members)])
        torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-5)
        assert torch.equal(policy.act(params, obs), reference.argmax(-1))
        subset = torch.tensor([3, 1])
        torch.testing.assert_close(policy.forward(params.select(subset), obs[subset].unsqueeze(1) / 255.0)[:, 0],
                                   reference[subset], atol=1e-5, rtol=1e-5)  # fmt: skip


def test_cnn_refuses_spaces_it_cannot_serve():
    with pytest.raises(ValueError, match="Discrete"):
        NatureCNN.for_spaces(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.MultiBinary(2))
    with pytest.raises(ValueError, match="too small"):
        NatureCNN.for_spaces(gym.spaces.Box(0, 255, (4, 20, 20), np.uint8), gym.spaces.Discrete(4))


def test_a_run_with_a_frame_budget_writes_no_human_normalized_score(out_dir):
    argv = ["run", "--task", "ALE/Pong-v5", "--population", "2", "--generations", "1", "--out", str(out_dir)]
    settings = ["max_frames=2000", "eval_episodes=1", "elite_candidates=1", "elite_episodes=1", "cnn_hidden=16"]
    assert main([*argv, *[a for kv in settings for a in ("--set", kv)]]) == 0
    row = leaderboard.read(out_dir).iloc[0]
    assert row["score_kind"] == "return" and -21 <= row["final_score"] <= 21
    assert row["final_score"] == round(row["final_score"])  # Pong points, not (score + 20.7) / 35.3


@pytest.mark.slow
def test_pong_run_writes_a_raw_score_row(out_dir):
    spec = RunSpec(
        "ALE/Pong-v5",
        population=2,
        generations=1,
        seed=0,
        settings={"max_frames": 200, "elite_candidates": 1, "elite_episodes": 1, "eval_episodes": 1, "cnn_hidden": 256},
    )
    row = run_spec(spec, out_dir)
    board = leaderboard.read(out_dir)
    assert len(board) == 1 and board.iloc[0]["score_kind"] == "return"  # 200 frames truncate the games
    assert row["policy"] == "nature_cnn(256)" and row["task"] == "ALE/Pong-v5"
    raw = row["best_fitness"]
    assert -21 <= raw <= 21 and -21 <= row["final_score"] <= 21
    assert row["frames"] == 4 * (2 * 50 + 1 * 50 + 1 * 50)  # generation, elite re-evaluation, final score


def test_a_member_with_non_finite_output_fails_alone():
    task = envs.make("ALE/Pong-v5", AtariOptions(max_steps=20, noop_max=0))
    policy = make_policy("nature_cnn", task.observation_space, task.action_space)
    params = make_encoding("dense", policy).decode([(s,) for s in range(3)])
    params["fc"].weight[1, 0, 0] = float("nan")
    ev = task.evaluate(PopulationActor(policy, params, torch.device("cpu")), 3, [5])
    task.close()
    assert list(ev.failed) == [False, True, False] and ev.fitness[1] == -np.inf
    assert ev.steps[1, 0] == 0 and (ev.steps[[0, 2], 0] == 20).all()
