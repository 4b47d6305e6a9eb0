"""Every registered encoding (plugins included) does what its class declares it can do.

``uncorrelated_noise`` and ``independent_noise`` (what OpenAI-ES and SNES need of ``direction``)
and ``searches_weights`` (what ``--set init`` and ``--set mask`` need of the search vector) are
class attributes the algorithms, checkpoints and masks read: this file holds each encoding to its
declarations on a real CartPole MLP, and checks that an encoding declaring nothing is refused in one line.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from evoboard.agents import algorithms
from evoboard.agents.checkpoints import Checkpoint
from evoboard.agents.encodings import ENCODINGS, declaring, make
from evoboard.agents.encodings.masked import masked, shrinks
from evoboard.agents.policies import make_policy
from evoboard.errors import CheckpointRefused

NAMES = ENCODINGS.names()
SEEDS = list(range(1, 301))


@pytest.fixture(scope="module")
def policy():
    env = gym.make("CartPole-v1")
    return make_policy("mlp", env.observation_space, env.action_space)


def dense_tensors(params, layer: str, role: str, p: int) -> torch.Tensor:
    """One role of one layer for every member, as dense weights: (P, n)."""
    form = params[layer]
    form = form.materialize() if hasattr(form, "materialize") else form
    return getattr(form, role).reshape(p, -1)


def test_the_built_ins_declare_what_the_papers_allow():
    """The pairings the name lists allowed before the declarations moved onto the encodings."""
    assert set(declaring("uncorrelated_noise")) >= {"dense", "lowrank", "lowrank-perturb", "small_dense"}
    assert set(declaring("independent_noise")) >= {"dense", "lowrank", "small_dense"}
    assert set(declaring("searches_weights")) >= {"dense", "sparse"}
    assert not {"sparse"} & set(declaring("uncorrelated_noise"))
    assert not {"lowrank", "lowrank-perturb", "small_dense"} & set(declaring("searches_weights"))


@pytest.mark.parametrize("name", NAMES)
def test_independent_noise_is_also_uncorrelated(name):
    cls = ENCODINGS.get(name)
    assert not cls.independent_noise or cls.uncorrelated_noise


@pytest.mark.parametrize("name", NAMES)
def test_declared_noise_has_the_moments_its_algorithm_needs(name, policy):
    enc = make(name, policy)
    if not enc.uncorrelated_noise:
        pytest.skip(f"{name} declares no ES noise")
    eps = torch.stack([enc.direction(s).double() for s in SEEDS])  # (n, D)
    n = len(SEEDS)
    assert eps.mean().abs() < 0.02 and (eps.var() - 1).abs() < 0.05  # unit variance, zero mean
    cols = eps[:, torch.randperm(eps.shape[1], generator=torch.Generator().manual_seed(0))[:60]]  # (n, 60)
    corr = torch.corrcoef(cols.T)
    off = corr[~torch.eye(len(corr), dtype=torch.bool)]
    assert off.abs().mean() < 2.5 / n**0.5  # uncorrelated: |r| at the sampling noise of n draws
    if enc.independent_noise:  # a Gaussian marginal (rank-r noise has kurtosis 3 + 6/r)
        assert (eps.pow(4).mean() - 3).abs() < 0.25


@pytest.mark.parametrize("algorithm", ["openai-es", "snes"])
@pytest.mark.parametrize("name", NAMES)
def test_an_es_decodes_mean_plus_noise_or_refuses_in_one_line(name, algorithm, policy):
    enc = make(name, policy)
    algo = algorithms.make(algorithm, 4)
    if not getattr(enc, algo.needs):
        with pytest.raises(ValueError, match=f"algorithm {algorithm} does not support encoding '{name}'.*{algo.needs}"):
            algo.bind(enc)
        return
    algo.bind(enc)
    state = algo.init(0)
    genomes, state = algo.ask(state)
    params = algo.decode(enc, genomes, state)
    sigma = algo.options.es_sigma if algorithm == "openai-es" else state.sigma
    want = enc.to_params(torch.stack([state.mean + sign * sigma * enc.direction(seed) for _, seed, sign in genomes]))
    for layer in policy.layers:
        for role in ("weight", "bias"):
            got, expected = (dense_tensors(p, layer.name, role, len(genomes)) for p in (params, want))
            torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", NAMES)
def test_a_weight_search_vector_is_the_policys_weights(name, policy):
    enc = make(name, policy)
    if not enc.searches_weights:
        with pytest.raises(CheckpointRefused, match="init=PATH needs an encoding whose search vector is the weights"):
            Checkpoint({}, {}, "x").search_vector(enc)
        with pytest.raises(ValueError, match="shrinks the search of encodings that search weights"):
            masked(enc, {})
        return
    tensors = [(layer.name, t.role, tuple(t.shape)) for layer in policy.layers for t in layer.tensors()]
    assert [(b.layer, b.role, b.shape) for b in enc.blocks] == tensors  # every tensor, in layer order
    z = torch.randn(3, enc.search_dims, generator=torch.Generator().manual_seed(0))  # (P, D)
    params = enc.to_params(z)
    for block in enc.blocks:
        torch.testing.assert_close(dense_tensors(params, block.layer, block.role, 3), z[:, block.start : block.stop])
    first = policy.layers[0]
    keep = np.random.default_rng(0).random(first.weight_shape) < 0.5
    search = masked(enc, {first.name: keep})
    assert search.search_dims == enc.search_dims - int((~keep).sum()) and not shrinks(search)
    weight = dense_tensors(search.decode([(5,), (6,)]), first.name, "weight", 2)  # (2, out * in)
    assert (weight[:, ~keep.ravel()] == 0).all() and (weight[:, keep.ravel()] != 0).all()
