"""One convention per knob across encodings (issue #19): sigma, LayerNorm, the output layer, the small dense control."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from evoboard import envs
from evoboard.agents.cnn import NatureCNN
from evoboard.agents.encodings import ENCODINGS, make
from evoboard.agents.encodings.lowrank import FactorizedLinear
from evoboard.agents.layers import DenseLinear, DenseNorm, LayerSpec
from evoboard.agents.policies import MLPPolicy, make_policy

BUILTIN = ("dense", "sparse", "lowrank", "lowrank-perturb", "small_dense")
BIG = (LayerSpec("fc0", "linear", 64, 48), LayerSpec("norm", "norm", 48, 48), LayerSpec("fc1", "linear", 48, 40))
SMALL = {"lowrank": {"rank": 4}, "lowrank-perturb": {"perturb_rank": 2}, "sparse": {"density": 0.3}}


class Net:
    def __init__(self, layers=BIG):
        self.layers = layers

    def widths(self):
        return (1,)

    def narrowed(self, widths):
        return self


def encoding(name, layers=BIG, **overrides):
    cls = ENCODINGS.get(name)
    return make(name, Net(layers), cls.Options(**{**SMALL.get(name, {}), **overrides}))


def cheetah_mlp() -> MLPPolicy:
    box = gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)
    return MLPPolicy.for_spaces(box, gym.spaces.Box(-1.0, 1.0, (6,), np.float32))


def relative_steps(enc, parent_seed=3, child_seeds=range(40, 48)) -> dict[str, list[torch.Tensor]]:
    """(child - parent) / block scale, by role, over the entries each child changed."""
    parent = enc.vector((parent_seed,))
    out: dict[str, list[torch.Tensor]] = {}
    for seed in child_seeds:
        delta = enc.vector((parent_seed, seed)) - parent
        for block in enc.blocks:
            d = delta[block.start : block.stop]
            out.setdefault(block.role, []).append(d[d != 0] / block.scale)
    return out


# A changed entry's step over sigma x its tensor's scale, so that the effective weights move as dense's do
# (tests/test_mutation_scale.py measures that): both factors of U V^T move, each by 1/sqrt(2); a sparse
# layer's k of n changed entries each by 1/sqrt(k/n) (SMALL's density 0.3), so its step norm is dense's.
ENTRY_STEP = {("lowrank", "U"): 2**-0.5, ("lowrank", "V"): 2**-0.5, ("sparse", "weight"): 0.3**-0.5,
              ("sparse", "bias"): 0.3**-0.5}  # fmt: skip


@pytest.mark.parametrize("name", BUILTIN)
def test_sigma_sets_each_changed_entry_by_the_shared_convention(name):
    steps = relative_steps(encoding(name, sigma=0.05))
    roles = {"lowrank": ("U", "V", "bias")}.get(name, ("weight", "bias"))
    for role in roles:
        values = torch.cat(steps[role])
        assert len(values) > 200, role
        assert float(values.std()) == pytest.approx(0.05 * ENTRY_STEP.get((name, role), 1), rel=0.1), role


@pytest.mark.parametrize(("name", "alias"), [("sparse", "sparse_sigma"), ("lowrank-perturb", "perturb_sigma"),
                                             ("lowrank", "factor_sigma")])  # fmt: skip
def test_older_sigma_names_set_the_same_relative_step(name, alias):
    steps = relative_steps(encoding(name, **{alias: 0.2}))
    role = "U" if name == "lowrank" else "weight"
    assert float(torch.cat(steps[role]).std()) == pytest.approx(0.2, rel=0.1)


@pytest.mark.parametrize("name", ENCODINGS.names())
@pytest.mark.parametrize("evolve", [False, True])
def test_layernorm_is_frozen_or_evolved_alike_by_every_encoding(name, evolve):
    cls = ENCODINGS.get(name)
    if "evolve_norms" not in cls.Options.__dataclass_fields__:
        pytest.skip(f"{name} has its own options without the shared settings")
    enc = encoding(name, evolve_norms=evolve)
    assert any(b.layer == "norm" for b in enc.blocks) == evolve
    norm = enc.decode([(5,), (5, 6)])["norm"]
    assert isinstance(norm, DenseNorm)
    frozen = bool((norm.weight == 1).all() and (norm.bias == 0).all())
    assert frozen != evolve


def test_lowrank_keeps_the_rl_output_layer_dense_unless_asked():
    policy = cheetah_mlp()
    assert [layer.output for layer in policy.layers] == [False, False, True]
    assert "fc2" not in make("lowrank", policy).ranks
    params = make("lowrank", policy).decode([(1,)])
    assert isinstance(params["fc2"], DenseLinear) and isinstance(params["fc1"], FactorizedLinear)
    options = ENCODINGS.get("lowrank").Options(factorize_output=True)
    assert "fc2" in make("lowrank", policy, options).ranks
    cnn = NatureCNN((4, 84, 84), gym.spaces.Discrete(6))
    assert [layer.name for layer in cnn.layers if layer.output] == ["out"]
    assert "out" not in make("lowrank", cnn).ranks and "fc" in make("lowrank", cnn).ranks


def test_lowrank_embedding_rank_is_32_by_default():
    enc = make("lowrank", Net((LayerSpec("wte", "embedding", 100, 64),)))
    assert enc.ranks == {"wte": 32}


def test_small_dense_matches_lowrank_search_dims_on_halfcheetah_mlp():
    policy = cheetah_mlp()
    small, low = make("small_dense", policy), make("lowrank", policy)
    assert small.search_dims == pytest.approx(low.search_dims, rel=0.03)  # 1332 vs 1354, widths (26, 26)
    assert small.policy.options.hidden == (26, 26) and small.target_dims == low.search_dims
    actions = policy.act(small.decode([(1,), (2,)]), torch.zeros(2, 17))  # the full policy runs the narrow params
    assert actions.shape == (2, 6)


def test_small_dense_matches_lowrank_search_dims_on_the_char_transformer():
    task = envs.make("charlm/pydoc")
    policy = make_policy("char_transformer", task.observation_space, task.action_space)
    small, low = make("small_dense", policy), make("lowrank", policy)
    # Widths come in steps of n_head (4): 28 -> 27040 numbers, 24 -> 20888; lowrank searches 25576 (its head,
    # the output layer, stays dense like every encoding's).
    assert small.search_dims == pytest.approx(low.search_dims, rel=0.07)
    assert small.policy.options.n_embd == 28
    tokens = torch.zeros(2, 1, 8, dtype=torch.long)
    assert policy.forward(small.decode([(1,), (2,)]), tokens).shape == (2, 1, 8, policy.vocab)


def test_sparse_refuses_an_es_direction():
    with pytest.raises(TypeError, match="not Gaussian"):
        encoding("sparse").direction(1)


@pytest.mark.parametrize("name", ["dense", "lowrank", "lowrank-perturb", "small_dense"])
def test_es_directions_stay_unit_variance_in_search_space(name):
    eps = encoding(name, sigma=0.05).direction(7)
    assert float(eps.std()) == pytest.approx(1.0, rel=0.1)
