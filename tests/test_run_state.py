"""Run state on disk: tensors in hash-checked safetensors beside checkpoint.json, exact resumes, honest wall time."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from evoboard.envs.normalizer import ObsNormalizer
from evoboard.errors import UsageError
from evoboard.suite.replay import replay
from evoboard.suite.rundir import RunDir
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve
from tests.conftest import history
from tests.test_runs import comparable

CHEETAH = {"max_steps": 15, "obs_norm": "true", "eval_episodes": 1, "hidden": "8"}
SPECS = {
    "ga": RunSpec("CartPole-v1", population=6, generations=4, seed=1, settings={"max_steps": 40}),
    "openai-es": RunSpec("CartPole-v1", algorithm="openai-es", population=7, generations=4, seed=2),
    "snes": RunSpec("CartPole-v1", algorithm="snes", encoding="lowrank", population=6, generations=4, seed=3),
    "es-obs-norm": RunSpec(
        "HalfCheetah-v5", algorithm="openai-es", population=4, generations=4, seed=4, settings=CHEETAH
    ),  # fmt: skip
}


def started(spec: RunSpec, out, steps: int = 2) -> Run:
    """A run of ``spec`` in ``out`` stopped after ``steps`` generations, its task and backend closed."""
    run = Run(resolve(spec), out)
    run.run_dir = RunDir(out / "runs" / "r")
    run.run_dir.create(run.resolved.saved_spec())
    for _ in range(steps):
        run.step()
    run.backend.close()
    run.task.close()
    return run


def whole(spec: RunSpec, out) -> tuple[dict, pd.DataFrame]:
    row = Run(resolve(spec), out).run()
    return row, history(out, row["run_id"])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_resume_is_exact_with_tensors_beside_the_json(name, out_dir):
    spec = SPECS[name]
    reference, ref_history = whole(spec, out_dir / "whole")
    again, _ = whole(spec, out_dir / "again")
    assert comparable(again) == comparable(reference)  # reproducible
    run = started(spec, out_dir / "cut")
    tensors = list(run.run_dir.path.glob("state-*.safetensors"))
    assert len(tensors) == (0 if name == "ga" else 1)  # the GA's state is seed chains: JSON only
    resumed = Run.resume(run.run_dir.path)
    if run.normalizer is not None:
        assert torch.equal(resumed.normalizer.state()["sum"], run.normalizer.state()["sum"])
        assert float(run.normalizer.state()["count"]) > 1  # two generations' observations folded in
    row = resumed.run()
    assert comparable(row) == comparable(reference)
    pd.testing.assert_frame_equal(history(out_dir / "cut", "r"), ref_history)


def test_obs_norm_elite_replays_exactly(out_dir):
    row, _ = whole(SPECS["es-obs-norm"], out_dir)
    played = replay(out_dir / "runs" / row["run_id"])
    assert played.score == played.saved_score == row["final_score"]


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-7]), "fails its SHA-256 check"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])), "fails its SHA-256 check"),
        (lambda p: p.unlink(), "is missing or unreadable"),
    ],
    ids=["truncated", "flipped byte", "deleted"],
)
def test_a_tampered_state_file_is_refused_in_one_line(tamper, message, out_dir):
    run = started(SPECS["openai-es"], out_dir)
    tamper(next(run.run_dir.path.glob("state-*.safetensors")))
    with pytest.raises(UsageError, match=message) as err:
        Run.resume(run.run_dir.path)
    assert "\n" not in str(err.value)


def test_an_old_all_json_checkpoint_still_resumes(out_dir):
    spec = SPECS["snes"]
    reference, _ = whole(spec, out_dir / "whole")
    run = started(spec, out_dir / "old")
    data, _ = run.checkpoint()
    data["algorithm"] = run.state.to_json()  # the format before: mean and sigma as JSON lists
    run.run_dir.write_checkpoint(data)
    for path in run.run_dir.path.glob("state-*.safetensors"):
        path.unlink()
    assert comparable(Run.resume(run.run_dir.path).run()) == comparable(reference)


def test_es_checkpoint_json_is_small_and_wall_time_counts_everything(out_dir):
    wide = {"hidden": "64,64"}  # 4,674 parameters: 56 kB of float32 state
    spec = RunSpec("CartPole-v1", algorithm="openai-es", population=6, generations=3, seed=5, settings=wide)
    t0 = time.perf_counter()
    run = Run(resolve(spec), out_dir)
    row = run.run()
    elapsed = time.perf_counter() - t0
    folder = run.run_dir.path
    tensors = next(folder.glob("state-*.safetensors"))
    assert (folder / "checkpoint.json").stat().st_size < 20_000 < tensors.stat().st_size
    hist = pd.read_csv(folder / "history.csv")
    parts = hist[["t_ask", "t_decode", "t_evaluate", "t_tell", "t_elite", "t_checkpoint"]].sum(axis=1)
    assert (hist["t_checkpoint"] > 0).all() and (hist["wall_s"] >= parts).all()
    assert hist["wall_s"].sum() < row["wall_s"] <= elapsed  # the row: build to row, scoring included


def test_normalizer_is_frozen_within_a_generation_and_round_trips():
    norm = ObsNormalizer((2,))
    seen = []
    act = norm.wrap(lambda members, obs: seen.append(obs.copy()) or np.zeros(len(obs)))
    obs = np.array([[10.0, -1.0], [2.0, 3.0]], dtype=np.float32)
    act(np.arange(2), obs)
    act(np.arange(2), obs)
    np.testing.assert_array_equal(seen[0], seen[1])  # the same within a generation
    np.testing.assert_array_equal(seen[0], [[5.0, -1.0], [2.0, 3.0]])  # first generation: clip(o, -5, 5)
    norm.update()
    np.testing.assert_allclose(norm.mean, (obs.sum(0) * 2) / (4 + 1e-2), rtol=1e-6)
    other = ObsNormalizer((2,))
    saved = json.loads(json.dumps({k: v.tolist() for k, v in norm.state().items()}))  # as elite metadata keeps it
    other.load_state({k: torch.tensor(v, dtype=torch.float64) for k, v in saved.items()})
    np.testing.assert_array_equal(other(obs), norm(obs))


def test_checkpoint_json_stays_the_same_size_as_generations_pass(out_dir):
    spec = SPECS["openai-es"]
    run = started(dataclasses.replace(spec, generations=8), out_dir, steps=2)
    early = (run.run_dir.path / "checkpoint.json").stat().st_size
    rows_early = (run.run_dir.path / "history.jsonl").stat().st_size
    run = Run.resume(run.run_dir.path)
    for _ in range(5):
        run.step()
    run.backend.close()
    run.task.close()
    late = (run.run_dir.path / "checkpoint.json").stat().st_size
    grown = (run.run_dir.path / "history.jsonl").stat().st_size - rows_early
    assert grown > 5 * 200  # five more finished rows went to history.jsonl ...
    assert abs(late - early) < 100  # ... and none of them into the checkpoint


def test_a_history_line_written_after_the_last_checkpoint_is_cut_on_resume(out_dir):
    spec = SPECS["snes"]
    _, ref_history = whole(spec, out_dir / "whole")
    run = started(spec, out_dir / "cut")
    with (run.run_dir.path / "history.jsonl").open("a") as f:
        f.write('{"generation": 2, "best_fit')  # a crash mid-append, before the checkpoint that would name it
    Run.resume(run.run_dir.path).run()
    pd.testing.assert_frame_equal(history(out_dir / "cut", "r"), ref_history)
    lines = (run.run_dir.path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["generation"] for line in lines] == list(range(spec.generations))


def test_an_edited_history_log_is_refused_in_one_line(out_dir):
    run = started(SPECS["ga"], out_dir, steps=3)
    path = run.run_dir.path / "history.jsonl"
    path.write_text(path.read_text().replace('"generation": 0', '"generation": 9'))
    with pytest.raises(UsageError, match="does not hold the rows its checkpoint names") as err:
        Run.resume(run.run_dir.path)
    assert "\n" not in str(err.value)
