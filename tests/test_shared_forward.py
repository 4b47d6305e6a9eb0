"""Children as their parent's shared forward plus a correction (sparse, lowrank-perturb), and the bf16 forward."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from evoboard.agents import make_policy
from evoboard.agents.cnn import CNNOptions
from evoboard.agents.encodings import make as make_encoding
from evoboard.agents.encodings.perturbed_layers import PerturbedConv2d, PerturbedLinear
from evoboard.agents.encodings.shared_forward import padded_rows
from evoboard.agents.encodings.sparse_layers import SparseLinear
from evoboard.agents.layers import DenseLinear
from evoboard.suite.settings import build_options

SCREEN = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
SETTINGS = {"sparse": {"density": 0.01}, "lowrank-perturb": {"perturb_rank": 4}, "dense": {}, "lowrank": {"rank": 4}}


def cnn(dtype: str = "float32"):
    return make_policy("nature_cnn", SCREEN, gym.spaces.Discrete(6), CNNOptions(dtype=dtype))


def children(name: str, policy, parents: int = 1, p: int = 32):
    """P children of ``parents`` decoded parents (a GA generation), in interleaved order."""
    cls = make_encoding(name, policy).__class__
    enc = make_encoding(name, policy, build_options(cls.Options, SETTINGS[name]), "cpu")
    enc.decode([(k,) for k in range(parents)])
    return enc.decode([(i % parents, 100 + i) for i in range(p)])


def frames(p: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 255, (p, 1, 4, 84, 84), generator=generator).float() / 255  # (P, N, C, H, W)


def test_padded_rows_are_a_multiple_of_eight_and_at_least_sixteen():
    assert [padded_rows(m) for m in (1, 15, 16, 17, 32, 33)] == [16, 16, 16, 24, 32, 40]


def test_children_of_few_parents_get_shared_forms():
    sparse, perturb = children("sparse", cnn()), children("lowrank-perturb", cnn())
    assert isinstance(sparse["fc"], SparseLinear) and isinstance(sparse["out"], DenseLinear)  # out: 3,072 entries
    assert all(isinstance(perturb[f"conv{i}"], PerturbedConv2d) for i in range(3))  # conv0 too (8,192 entries)
    assert isinstance(perturb["fc"], PerturbedLinear)
    dense = children("sparse", cnn(), parents=32)  # every child its own parent: still shared (see below)
    assert isinstance(dense["fc"], SparseLinear) and dense["fc"].base.shape[0] == 32


def test_a_sparse_members_form_follows_from_its_genome_alone():
    """A backend shard decodes other members and has other cached parents; each member's output must not change."""
    policy, name = cnn(), "sparse"
    settings = build_options(make_encoding(name, policy).Options, SETTINGS[name])
    genomes = [(0,), (1,), *[(i % 2, 100 + i) for i in range(14)]]  # two first links and their children
    local = make_encoding(name, policy, settings)
    local.decode(genomes[:2])
    whole = local.decode(genomes)
    x = frames(len(genomes))
    with torch.inference_mode():
        expected = policy.forward(whole, x)
        shard = make_encoding(name, policy, settings)  # a fresh worker: nothing cached, parents replayed
        part = [3, 0, 9, 15]
        got = policy.forward(shard.decode([genomes[i] for i in part]), x[part])
    assert torch.equal(got, expected[part])


def test_sparse_form_keeps_exactly_the_childrens_changed_entries():
    enc = make_encoding("sparse", cnn(), build_options(make_encoding("sparse", cnn()).Options, {"density": 0.01}))
    parent = enc.to_params(enc.vector((0,))[None])["fc"].weight[0]
    params = enc.decode([(0, 100 + i) for i in range(8)])
    form = params["fc"]
    child = enc.vector((0, 101))
    dense = enc.to_params(child[None])["fc"].weight[0]
    changed = int((dense != parent).sum())
    assert 0 < changed <= form.rows.shape[1] and int((form.delta[1] != 0).sum()) == changed
    torch.testing.assert_close(form.materialize().weight[1], dense, atol=1e-7, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("parents", [1, 3])
@pytest.mark.parametrize("name", ["sparse", "lowrank-perturb"])
def test_shared_forward_equals_each_childs_dense_forward(name, parents):
    policy = cnn()
    params = children(name, policy, parents)
    dense = type(params)({k: v.materialize() for k, v in params.items()})
    x = frames()
    with torch.inference_mode():
        torch.testing.assert_close(policy.forward(params, x), policy.forward(dense, x), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("parents", [1, 3])
@pytest.mark.parametrize("name", ["sparse", "lowrank-perturb"])
def test_a_shared_childs_output_does_not_depend_on_who_shares_its_batch(name, parents, torch_threads):
    """The backends' equal results rest on this: a member's logits are the same bits alone, among a few,
    and in the whole population, though its parent's product runs once for all of its children."""
    policy = cnn()
    params = children(name, policy, parents)
    x = frames()
    with torch.inference_mode():
        whole = policy.forward(params, x)  # (P, N, actions)
        for members in ([5], [0], [31], [2, 9, 30], list(range(0, 32, 2)), list(range(17))):
            index = torch.tensor(members)
            assert torch.equal(policy.forward(params.select(index), x[index]), whole[index]), (name, members)


def test_bfloat16_forward_is_close_to_float32_and_converts_weights_once():
    fp32, bf16 = cnn(), cnn("bfloat16")
    params = children("lowrank-perturb", fp32)
    x = frames(32)
    with torch.inference_mode():
        ref, low = fp32.forward(params, x), bf16.forward(params, x)
    assert low.dtype == torch.float32 and not torch.equal(low, ref)
    assert (low - ref).abs().max() <= 0.05 * ref.abs().max()  # bf16 keeps 8 bits of mantissa
    assert params["fc"].cast(torch.bfloat16) is params["fc"].cast(torch.bfloat16)
    assert params["fc"].cast(torch.bfloat16).base.dtype == torch.bfloat16
    assert bf16.describe() == "nature_cnn(512,bfloat16)" and fp32.describe() == "nature_cnn(512)"


@pytest.mark.parametrize("encoding", ["dense", "lowrank", "lowrank-perturb", "sparse"])
def test_a_population_run_in_bfloat16_can_still_gather_members(encoding):
    """The actor gathers a minority of members from the float32 forms the bf16 forward has cast (and cached)."""
    bf16 = cnn("bfloat16")
    params = children(encoding, bf16)
    x = frames(32)
    few = torch.tensor([3, 17, 30])
    with torch.inference_mode():
        whole = bf16.forward(params, x)  # casts every form, caching the bf16 copy on it
        picked = bf16.forward(params.select(few), x[few])
    assert torch.equal(picked, whole[few])


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16"):
        CNNOptions(dtype="float16")
