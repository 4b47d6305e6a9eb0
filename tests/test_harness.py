"""The speed harness: alternated paired timing, the machine line, publishing; a counting env registered on request."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pandas as pd

from evoboard.suite import publish
from evoboard.suite.speed import counting, harness


def test_alternate_calls_a_then_b_each_repeat_and_keeps_what_they_return():
    calls = []
    a, b = harness.alternate(lambda: calls.append("a") or len(calls), lambda: calls.append("b") or -len(calls), 3)
    assert calls == ["a", "b"] * 3
    assert a == [1, 3, 5] and b == [-2, -4, -6]


def test_paired_medians_are_each_contenders_median_and_ratio_is_b_over_a(monkeypatch):
    """A fake clock: a's calls last 1, 9, 2 s and b's 4, 4, 40 s, so the medians are 2 and 4."""
    durations = iter([1, 4, 9, 4, 2, 40])
    now = [0.0]

    def clock():
        return now[0]

    def work():
        now[0] += next(durations)

    monkeypatch.setattr(time, "perf_counter", clock)
    times = harness.paired_medians(work, work, 3)
    assert times == (2, 4) and times.ratio == 2.0


def test_medians_per_key():
    assert harness.medians([{"x": 1, "y": 10}, {"x": 5, "y": 0}, {"x": 3, "y": 7}]) == {"x": 3, "y": 7}


def test_machine_names_cores_threads_torch_and_device():
    import os

    import torch

    line = publish.machine("cpu", (2, 1, 2))
    assert f"{os.cpu_count()} cores, 1,2 torch threads, torch {torch.__version__}, cpu" in line
    assert ", 1 torch thread, " in publish.machine("cpu", 1)


def test_publish_writes_the_csv_markdown_and_png_it_returns(tmp_path, capsys):
    plt = publish.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    table = pd.DataFrame({"P": [16, 64], "ratio": [1.5, 2.0]})
    markdown = publish.markdown_table(["P", "ratio"], [["16", "1.50x"], ["64", "2.00x"]])
    written = publish.publish(tmp_path / "new", "bench", table, markdown, fig)
    assert [p.name for p in written] == ["bench.csv", "bench.md", "bench.png"]
    assert pd.read_csv(written[0]).equals(table)
    assert written[1].read_text() == markdown == capsys.readouterr().out
    assert markdown.splitlines()[1] == "|---|---|"
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)  # the epilogue closed it
    assert publish.publish(tmp_path, "only", table) == [tmp_path / "only.csv"]


def test_counting_cartpole_registers_only_when_asked():
    code = (
        "import gymnasium as gym; from evoboard.suite.speed import counting as c; "
        "print(c.COUNTING_CARTPOLE in gym.registry)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert done.stdout.strip() == "False"  # importing it registered nothing
    assert counting.register() == counting.COUNTING_CARTPOLE in gym.registry
    assert counting.register() == counting.COUNTING_CARTPOLE  # twice is fine
    env = gym.make(counting.COUNTING_CARTPOLE)
    env.reset(seed=0)
    before = counting.CountingCartPole.steps_taken
    env.step(0)
    env.close()
    assert counting.CountingCartPole.steps_taken == before + 1
