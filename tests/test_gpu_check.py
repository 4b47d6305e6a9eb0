"""The GPU check's CPU dry run, and the honest-numbers settings it reports (TF32, device name, synced clock)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from evoboard.suite.devices import clock, device_name, peak_memory_mib, tf32_state
from evoboard.suite.runner import Run, run_spec
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.speed import gpu_check
from evoboard.suite.speed.gpu_check import CASES, DRY, Case, run_check
from evoboard.suite.suites.registry import SUITES


@pytest.fixture
def restore_tf32():
    saved = tf32_state()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved["matmul"], saved["cudnn"]


def test_tf32_is_off_by_default_recorded_and_settable(tmp_path, restore_tf32):
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's own default for convolutions
    run = Run(resolve(RunSpec("CartPole-v1", population=2, generations=1, device="cpu")), tmp_path)
    assert tf32_state() == {"matmul": False, "cudnn": False}
    assert json.loads(run.resolved.config_json())["settings"]["runner"]["tf32"] is False
    run.task.close()
    settings = {"tf32": "true"}
    run = Run(resolve(RunSpec("CartPole-v1", population=2, generations=1, device="cpu", settings=settings)), tmp_path)
    assert tf32_state() == {"matmul": True, "cudnn": True}
    assert json.loads(run.resolved.config_json())["settings"]["runner"]["tf32"] is True
    run.task.close()


def test_the_row_names_the_device_and_cpu_needs_no_sync(tmp_path):
    spec = RunSpec("CartPole-v1", population=2, generations=1, device="cpu", settings={"max_steps": 5})
    row = run_spec(spec, tmp_path)
    assert row["device"] == device_name("cpu") == "cpu"
    assert peak_memory_mib("cpu") is None
    t0 = clock("cpu")
    assert clock(torch.device("cpu")) >= t0


def test_the_check_covers_every_algorithm_kind_on_every_family():
    kinds = {"ga", "random", "openai-es", "snes", "rso", "adam", "unigram"}
    assert {c.algorithm for c in CASES} == kinds
    families = {c.family for c in CASES}
    assert families == {"control", "mujoco", "atari", "charlm", "digits"}
    for family in families:  # an ask/tell search and an evolution strategy on every family
        assert {"ga"} <= {c.algorithm for c in CASES if c.family == family}
        assert {"openai-es", "snes"} & {c.algorithm for c in CASES if c.family == family}
    assert "gpu-check" in SUITES and SUITES["gpu-check"].procedure is not None


def test_a_small_dry_run_writes_the_report(tmp_path):
    cases = (Case("control", "CartPole-v1", "ga", "lowrank"), Case("digits", "digits", "snes"),
             Case("digits", "digits", "rso"), Case("charlm", "charlm/pydoc", "unigram"))  # fmt: skip
    sizes = dataclasses.replace(DRY, profiles=(("charlm", "ga", 4),))
    result = run_check(tmp_path, "cpu", sizes, cases)
    assert result["mode"].startswith("CPU dry run")
    assert [r["status"] for r in result["smoke"]] == ["ok"] * 4
    agreement = {r["algorithm"]: r for r in result["agreement"]}
    assert agreement["unigram"]["status"].startswith("n/a")
    for name in ("ga", "snes", "rso"):  # cpu against cpu: every tensor identical, every fitness equal
        row = agreement[name]
        assert row["status"] == "ok" and row["tensors_identical"] == row["tensors"] > 0 and row["members_off"] == 0
    (profile,) = result["profile"]
    assert profile["status"] == "ok" and profile["population"] == 4 and profile["t_decode"] > 0
    text = (tmp_path / "gpu.md").read_text()
    assert "## Smoke" in text and "## Agreement with the CPU" in text and "## Profile" in text
    assert json.loads((tmp_path / "gpu.json").read_text())["device"] == "cpu"


def test_a_check_over_its_budget_skips_what_is_left(tmp_path):
    sizes = dataclasses.replace(DRY, profiles=(("charlm", "ga", 4),))
    result = run_check(tmp_path, "cpu", sizes, CASES[:1], budget_s=0.0)
    assert result["smoke"][0]["status"] == "skipped: time budget" and not result["agreement"]
    assert result["profile"][0]["status"] == "skipped: time budget"


@pytest.mark.slow
def test_the_whole_dry_run_passes(tmp_path):
    """Every case of the check, CPU against CPU: what the GPU machine will run, at tiny sizes (~1 min here)."""
    result = run_check(tmp_path, "cpu")
    assert all(r["status"] == "ok" for r in result["smoke"]), [r for r in result["smoke"] if r["status"] != "ok"]
    assert all(r["status"] == "ok" or r["status"].startswith("n/a") for r in result["agreement"])
    assert len(result["agreement"]) == len(gpu_check.CASES)
    assert all(r["status"] == "ok" for r in result["profile"])
