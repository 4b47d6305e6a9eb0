"""Weight checkpoints: exact round trip, refusal of tampered and non-tensor files, pretrained starts end to end."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from evoboard import envs
from evoboard.agents import checkpoints, encodings, make_policy
from evoboard.errors import CheckpointRefused, UsageError
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve
from tests.conftest import run_cli


def digits_member(seed: int = 3):
    task = envs.make("digits", envs.resolve("digits").load().Options())
    policy = make_policy("classifier_mlp", task.observation_space, task.action_space, None)
    encoding = encodings.make("dense", policy)
    return policy, encoding, encoding.decode([(seed,)])


def test_round_trip_is_exact_and_the_link_is_a_negative_content_hash(tmp_path: Path):
    policy, encoding, params = digits_member()
    tensors = checkpoints.layer_tensors(policy.layers, params)
    saved = checkpoints.save(tmp_path / "w.safetensors", tensors, {"task": "digits", "score": 0.5})
    loaded = checkpoints.load(tmp_path / "w.safetensors")
    assert sorted(loaded.tensors) == ["fc0.bias", "fc0.weight", "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    assert all(torch.equal(loaded.tensors[k], tensors[k]) for k in tensors)
    assert loaded.metadata["score"] == 0.5 and loaded.sha256 == saved.sha256
    assert -(2**31) <= loaded.link < 0 and loaded.link == checkpoints.checkpoint_link(loaded.sha256)
    assert torch.equal(loaded.search_vector(encoding), encoding.vector((3,)))  # dense: the flat weights themselves


def test_tampered_checkpoint_is_refused(tmp_path: Path):
    policy, _, params = digits_member()
    path = tmp_path / "w.safetensors"
    checkpoints.save(path, checkpoints.layer_tensors(policy.layers, params), {"task": "digits"})
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointRefused, match="fails its content hash"):
        checkpoints.load(path)


def test_non_tensor_files_are_refused_without_unpickling(tmp_path: Path):
    class Boom:
        def __reduce__(self):
            return (Path("/").joinpath, ("should-never-run",))

    pickled = tmp_path / "evil.safetensors"
    pickled.write_bytes(pickle.dumps({"fc0.weight": Boom()}))
    with pytest.raises(CheckpointRefused, match="not a safetensors file of tensors"):
        checkpoints.load(pickled)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(CheckpointRefused, match="not a safetensors file"):
        checkpoints.load(text)
    import safetensors.torch

    foreign = tmp_path / "foreign.safetensors"  # real tensors, but not written by evoboard: no digest to check
    safetensors.torch.save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointRefused, match="no evoboard metadata"):
        checkpoints.load(foreign)
    with pytest.raises(CheckpointRefused, match="does not exist"):
        checkpoints.load(tmp_path / "missing.safetensors")


def test_only_weight_space_encodings_accept_a_checkpoint(tmp_path: Path):
    policy, _, params = digits_member()
    loaded = checkpoints.save(tmp_path / "w.safetensors", checkpoints.layer_tensors(policy.layers, params), {})
    with pytest.raises(CheckpointRefused, match="dense, sparse"):
        loaded.search_vector(encodings.make("lowrank", policy))
    assert torch.equal(
        loaded.search_vector(encodings.make("sparse", policy)), loaded.search_vector(encodings.make("dense", policy))
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny adam-trained digits model (8 steps) and its leaderboard row; its run saved elite.safetensors."""
    out = tmp_path_factory.mktemp("adam")
    run = Run(resolve(RunSpec("digits", algorithm="adam", population=4, generations=2, seed=1, device="cpu")), out)
    row = run.run()
    return run.run_dir.path / "elite.safetensors", row


def test_every_finished_run_saves_its_elite(trained):
    path, row = trained
    loaded = checkpoints.load(path)
    assert loaded.metadata["run_id"] == row["run_id"] and loaded.metadata["final_score"] == row["final_score"]
    assert loaded.metadata["algorithm"] == "adam" and loaded.metadata["score_kind"] == "accuracy"


def test_init_run_starts_from_the_checkpoint(trained, tmp_path: Path):
    path, row = trained
    spec = RunSpec("digits", encoding="sparse", population=4, generations=1, seed=0, device="cpu",
                   settings={"init": str(path), "elite_candidates": 0})  # fmt: skip
    run = Run(resolve(spec), tmp_path)
    child_row = run.run()
    assert child_row["final_score"] == row["final_score"]  # generation 0 is the checkpoint itself
    saved = checkpoints.load(run.run_dir.path / "elite.safetensors")
    assert saved.metadata["genome"][0] == checkpoints.load(path).link  # the first link names the checkpoint
    assert saved.metadata["init"] == str(path)


def test_bad_init_is_one_line_exit_2(trained, tmp_path: Path):
    path, _ = trained
    with pytest.raises(UsageError, match="does not exist"):
        resolve(RunSpec("digits", settings={"init": str(tmp_path / "nope.safetensors")}))
    spec = RunSpec("digits", population=4, generations=1, device="cpu", settings={"init": str(path), "hidden": "8"})
    with pytest.raises(UsageError, match="does not match the policy's layers"):
        Run(resolve(spec), tmp_path)
    with pytest.raises(UsageError, match="dense, sparse"):
        Run(resolve(RunSpec("digits", encoding="lowrank", device="cpu", settings={"init": str(path)})), tmp_path)
    result = run_cli(
        "run", "--task", "digits", "--set", f"init={tmp_path / 'nope.safetensors'}", "--out", str(tmp_path)
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "does not exist" in result.stderr
    assert not (tmp_path / "runs").exists()
