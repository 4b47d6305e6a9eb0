"""Watching and tracking a run: replay repeats the elite's held-out score; TensorBoard holds its history."""

from __future__ import annotations

import pandas as pd
import PIL.Image
import PIL.ImageSequence
import pytest

from evoboard.suite.board import leaderboard
from evoboard.suite.cli import main

RUN = ["run", "--task", "CartPole-v1", "--population", "6", "--generations", "2", "--seed", "2",
       "--set", "max_steps=40", "--set", "eval_episodes=3"]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny CartPole run logged to TensorBoard: its output folder and run folder."""
    out = tmp_path_factory.mktemp("replay") / "results"
    assert main([*RUN, "--out", str(out), "--log", "tensorboard"]) == 0
    return out, next((out / "runs").iterdir())


def test_replay_repeats_the_elites_held_out_return_and_writes_a_gif(finished, tmp_path, capsys):
    iio = pytest.importorskip("imageio.v3")
    out, run_dir = finished
    final_score = leaderboard.read(out).iloc[0]["final_score"]
    gif = tmp_path / "elite.gif"
    capsys.readouterr()
    assert main(["replay", str(run_dir), "--gif", str(gif)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("returns over 3 held-out episodes: ")
    assert printed[1] == f"return {final_score:.6g} (the run's final_score: {final_score:.6g})"

    from evoboard.suite.replay import replay

    result = replay(run_dir)
    assert result.score == final_score == result.saved_score  # exactly, not approximately
    written = int(result.returns[0]) + 1  # CartPole: +1 a step, after the reset frame
    assert printed[2] == f"{gif}: {written} frames of the first held-out episode"
    frames = iio.imread(gif, index=None)  # (N, H, W, 3); repeated frames merge into longer ones
    assert 2 <= frames.shape[0] <= written and frames.shape[1:3] == (200, 300)
    assert (frames[0] != frames[-1]).any()
    with PIL.Image.open(gif) as image:  # every written frame is shown for 1/25 s
        shown_ms = sum(frame.info["duration"] for frame in PIL.ImageSequence.Iterator(image))
    assert shown_ms == written * 40


def test_replay_of_fewer_episodes_plays_the_first_held_out_ones(finished, capsys):
    from evoboard.suite.replay import replay

    _, run_dir = finished
    assert list(replay(run_dir, episodes=1).returns) == list(replay(run_dir).returns[:1])


@pytest.mark.parametrize(
    "argv, message",
    [(["{out}"], "is not a run folder"), (["{run}", "--episodes", "0"], "--episodes must be >= 1")],
)
def test_bad_replay_exits_2(argv, message, finished, capsys):
    out, run_dir = finished
    assert main(["replay", *[a.format(out=out, run=run_dir) for a in argv]]) == 2
    assert message in capsys.readouterr().err


def test_the_tensorboard_log_holds_every_generation_of_the_history(finished):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _, run_dir = finished
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    history = pd.read_csv(run_dir / "history.csv")
    best = events.Scalars("history/best_fitness")
    assert [e.step for e in best] == [0, 1]
    assert [e.value for e in best] == pytest.approx(history["best_fitness"].tolist())
    assert "history/frames_per_s" in events.Tags()["scalars"]


def test_log_with_an_unknown_tracker_is_refused(tmp_path, capsys):
    assert main([*RUN, "--out", str(tmp_path / "r"), "--log", "wandb"]) == 2
    assert "invalid choice" in capsys.readouterr().err
