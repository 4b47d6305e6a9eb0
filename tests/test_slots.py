"""The backfill scheduler: a freed slot takes the next pending job in slot order; idle slots never step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from evoboard.envs.base import EpisodeOptions
from evoboard.envs.episodes import EpisodeBook
from evoboard.envs.slots import Slots, run_jobs


def test_freed_slots_take_pending_jobs_in_slot_order_then_go_idle():
    book = EpisodeBook(3, [7, 8], EpisodeOptions(), max_steps=10)  # 6 jobs
    slots = Slots(book, 4)
    assert slots.active == [0, 1, 2, 3] and slots.jobs.tolist() == [0, 1, 2, 3]
    assert slots.member.tolist() == [0, 1, 2, 0]
    assert slots.release(np.array([False, True, False, True])) == ([1, 3], [4, 5])
    assert slots.active == [0, 1, 2, 3] and slots.jobs.tolist() == [0, 4, 2, 5]
    assert slots.release(np.array([True, False, True, False])) == ([], [])  # nothing pending: idle
    assert slots.active == [1, 3] and slots.rows.tolist() == [1, 3] and slots.member.tolist() == [1, 2]


def test_run_jobs_steps_each_job_exactly_its_length_and_resets_with_its_seed():
    members, seeds, length = 5, [10, 20], {0: 3, 1: 1, 2: 4, 3: 2, 4: 2}  # steps per member's episode
    book = EpisodeBook(members, seeds, EpisodeOptions(), max_steps=100)
    obs = np.zeros((3, 1), dtype=np.float32)
    slot_job, resets = [-1] * 3, []

    def reset(slots, episode_seeds):
        for slot, seed in zip(slots, episode_seeds, strict=True):
            slot_job[slot] = len(resets)  # jobs start in order, so the n-th reset starts job n
            resets.append(seed)

    def step(active, jobs, actions, valid):
        assert [slot_job[s] for s in active] == jobs.tolist()
        done = book.steps[jobs] + 1 >= np.array([length[j % members] for j in jobs.tolist()])
        return np.ones(len(active)), done

    timings = run_jobs(book, 3, lambda m, o: np.zeros(len(m), dtype=np.int64), gym.spaces.Discrete(2), obs, reset, step)
    ev = book.result(1)
    assert ev.steps.tolist() == [[3, 3], [1, 1], [4, 4], [2, 2], [2, 2]]
    assert ev.frames == ev.member_forwards == 24  # no step is taken for a finished or idle slot
    assert resets == [10] * 5 + [20] * 5  # job j resets with seeds[j // members]
    assert set(timings) == {"policy", "env", "reset"}


def test_lanes_overlap_the_policy_with_steps_in_flight_and_give_the_same_book():
    """Two lanes: lane 1's actions are picked while lane 0's step is in flight; every job steps as with one lane."""
    members, seeds, length = 5, [10, 20], {0: 3, 1: 1, 2: 4, 3: 2, 4: 6}
    events: list[str] = []

    def run(lanes: int):
        book = EpisodeBook(members, seeds, EpisodeOptions(), max_steps=100)
        obs = np.zeros((4, 1), dtype=np.float32)

        def act(m, o):
            events.append(f"act {m.tolist()}")
            return np.zeros(len(m), dtype=np.int64)

        def step(active, jobs, actions, valid):
            events.append(f"send {active}")
            done = book.steps[jobs] + 1 >= np.array([length[j % members] for j in jobs.tolist()])
            rewards = np.array([float(j % members) for j in jobs.tolist()])

            def wait():
                events.append(f"wait {active}")
                return rewards, done

            return wait

        run_jobs(book, 4, act, gym.spaces.Discrete(2), obs, lambda slots, s: None, step, lanes)
        return book.result(1)

    one = run(1)
    events.clear()
    two = run(2)
    assert events[:4] == ["act [0, 2]", "send [0, 2]", "act [1, 3]", "send [1, 3]"]  # lane 1 picked mid-flight
    assert events[4] == "wait [0, 2]"
    for field in ("returns", "steps", "cut"):
        np.testing.assert_array_equal(getattr(two, field), getattr(one, field))
    assert two.frames == one.frames == 2 * sum(length.values())
    assert two.returns.tolist() == [[0, 0], [1, 1], [8, 8], [6, 6], [24, 24]]  # reward j % members per step
