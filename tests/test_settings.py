"""--set parsing: types, did-you-mean, and one owner per key."""

from __future__ import annotations

import pytest

from evoboard import envs
from evoboard.agents.algorithms import ALGORITHMS
from evoboard.agents.cnn import CNNOptions
from evoboard.agents.encodings import ENCODINGS
from evoboard.agents.encodings.dense import DenseOptions
from evoboard.agents.encodings.lowrank import LowRankOptions
from evoboard.agents.encodings.lowrank_perturb import LowRankPerturbOptions
from evoboard.agents.encodings.sparse import SparseOptions
from evoboard.agents.policies import POLICIES, MLPOptions
from evoboard.agents.small_cnn import SmallCNNOptions
from evoboard.agents.transformer import CharTransformerOptions
from evoboard.envs.atari import AtariOptions
from evoboard.envs.base import EpisodeOptions
from evoboard.envs.charlm import CharLMOptions
from evoboard.envs.digits import DigitsOptions
from evoboard.errors import UsageError
from evoboard.options import Checked
from evoboard.suite.settings import option_names, parse_value
from evoboard.suite.spec import RunnerOptions, RunSpec, parse_sets, resolve


@pytest.mark.parametrize(
    "text, annotation, expected",
    [
        ("3", int, 3),
        ("1e3", int, 1000),
        ("0.5", float, 0.5),
        ("2", float, 2.0),
        ("yes", bool, True),
        ("off", bool, False),
        ("none", int | None, None),
        ("7", int | None, 7),
        ("32,32", tuple[int, ...], (32, 32)),
        ("(8 16)", tuple[int, ...], (8, 16)),
        ("relu", str, "relu"),
    ],
)
def test_parse_value_converts_cli_strings(text, annotation, expected):
    assert parse_value("key", text, annotation) == expected


@pytest.mark.parametrize("text, annotation", [("abc", int), ("1.5", int), ("maybe", bool), ("x", float)])
def test_parse_value_rejects_wrong_types(text, annotation):
    with pytest.raises(UsageError, match="key"):
        parse_value("key", text, annotation)


def test_every_set_key_has_exactly_one_owner_kind():
    kinds = {
        "task": {n for t in envs.names() for n in option_names(envs.resolve(t).load().Options)},
        "policy": {n for p in POLICIES.names() for n in option_names(POLICIES.get(p).Options)},
        "encoding": {n for e in ENCODINGS.names() for n in option_names(ENCODINGS.get(e).Options)},
        "algorithm": {n for a in ALGORITHMS.names() for n in option_names(ALGORITHMS.get(a).Options)},
        "runner": set(option_names(RunnerOptions)),
    }
    for a in kinds:
        for b in kinds:
            if a < b:
                assert not kinds[a] & kinds[b], f"{a} and {b} both declare {kinds[a] & kinds[b]}"


def test_resolve_routes_keys_and_fills_defaults():
    resolved = resolve(RunSpec("CartPole-v1", settings={"sigma": "0.1", "hidden": "8,8", "episodes": "2"}))
    assert resolved.encoding.sigma == 0.1 and resolved.policy.hidden == (8, 8) and resolved.task.episodes == 2
    assert resolved.task.max_steps == 500  # the registry's standard budget
    assert resolved.spec.policy == "mlp"  # the task's default policy
    config = resolved.config()
    assert config["settings"]["algorithm"]["elites"] == 1


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UsageError, match=r"unknown --set key 'sigm' \(did you mean 'sigma'\?\)"):
        resolve(RunSpec("CartPole-v1", settings={"sigm": "1"}))


def test_parse_sets_needs_key_and_value():
    assert parse_sets(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_sets(["sigma"])


BOUND_CASES = [
    (EpisodeOptions, {"episodes": 0}, "episodes must be >= 1, got 0"),
    (EpisodeOptions, {"elite_margin": float("inf")}, "elite_margin must be >= 0 and finite, got inf"),
    (AtariOptions, {"max_steps": 0}, "max_steps must be >= 1, got 0"),  # an overridden default keeps its bound
    (AtariOptions, {"sticky_actions": 1.5}, "sticky_actions must be >= 0 and <= 1, got 1.5"),
    (AtariOptions, {"max_frames": 3}, "max_frames must be >= frameskip (4), got 3"),
    (CharLMOptions, {"val_fraction": 1.0}, "val_fraction must be > 0 and < 1, got 1.0"),
    (DigitsOptions, {"batch_size": 0}, "batch_size must be >= 1, got 0"),
    (CNNOptions, {"cnn_hidden": 0}, "cnn_hidden must be >= 1, got 0"),
    (CharTransformerOptions, {"n_head": 3}, "n_head (3) must divide n_embd (64)"),
    (CharTransformerOptions, {"n_head": 0}, "n_head must be >= 1, got 0"),
    (SmallCNNOptions, {"cnn_channels": (8, 0)}, "cnn_channels must be one or more widths >= 1, got (8, 0)"),
    (MLPOptions, {"hidden": (4, 0)}, "hidden widths must be >= 1, got (4, 0)"),
    (DenseOptions, {"sigma": float("nan")}, "sigma must be > 0 and finite, got nan"),
    (LowRankOptions, {"conv_rank": 0}, "conv_rank must be >= 1, got 0"),
    (LowRankPerturbOptions, {"shared_min": -1}, "shared_min must be >= 0, got -1"),
    (SparseOptions, {"density": 1.5}, "density must be > 0 and <= 1, got 1.5"),
    (SparseOptions, {"sparse_sigma": 0.0}, "sparse_sigma must be > 0, got 0.0"),
]


@pytest.mark.parametrize("cls, values, message", BOUND_CASES, ids=lambda c: getattr(c, "__name__", None))
def test_every_options_class_refuses_out_of_bound_values_with_one_line(cls, values, message):
    assert issubclass(cls, Checked)
    with pytest.raises(ValueError) as err:
        cls(**values)
    assert str(err.value) == message
    cls()  # the defaults are inside every bound
