"""Every dense form's batched forward equals a per-member reference forward."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evoboard.agents.encodings import make as make_encoding
from evoboard.agents.layers import DenseConv2d, DenseEmbedding, DenseLinear, DenseNorm, LayerSpec, PopulationParams
from evoboard.agents.policies import MLPOptions, MLPPolicy, PopulationActor, make_policy

P = 5


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_dense_linear_equals_per_member_reference():
    weight, bias, x = rand(P, 7, 3, seed=1), rand(P, 7, seed=2), rand(P, 4, 3, seed=3)
    out = DenseLinear(weight, bias).linear(x)
    assert out.shape == (P, 4, 7)
    for m in range(P):
        torch.testing.assert_close(out[m], F.linear(x[m], weight[m], bias[m]), atol=1e-6, rtol=0)


def test_dense_conv2d_equals_per_member_reference():
    weight, bias, x = rand(P, 6, 2, 3, 3, seed=1), rand(P, 6, seed=2), rand(P, 3, 2, 9, 9, seed=3)
    out = DenseConv2d(weight, bias, stride=2).conv2d(x)
    assert out.shape == (P, 3, 6, 4, 4)
    for m in range(P):
        torch.testing.assert_close(out[m], F.conv2d(x[m], weight[m], bias[m], stride=2), atol=1e-5, rtol=1e-6)


def test_dense_embedding_and_norm_equal_reference():
    table = rand(P, 11, 4, seed=1)
    tokens = torch.randint(0, 11, (P, 2, 6), generator=torch.Generator().manual_seed(2))
    out = DenseEmbedding(table).embedding(tokens)
    assert out.shape == (P, 2, 6, 4)
    gain, shift, x = rand(P, 4, seed=3), rand(P, 4, seed=4), rand(P, 2, 6, 4, seed=5)
    normed = DenseNorm(gain, shift).layer_norm(x)
    for m in range(P):
        torch.testing.assert_close(out[m], F.embedding(tokens[m], table[m]), atol=0, rtol=0)
        torch.testing.assert_close(normed[m], F.layer_norm(x[m], (4,), gain[m], shift[m]), atol=1e-6, rtol=0)


def test_select_equals_indexing_members():
    params = PopulationParams({"fc": DenseLinear(rand(P, 3, 2), rand(P, 3))})
    members = torch.tensor([4, 0, 0, 2])
    chosen = params.select(members)
    assert chosen.population == 4
    torch.testing.assert_close(chosen["fc"].weight, params["fc"].weight[members], atol=0, rtol=0)


def test_wrong_form_for_a_layer_says_so():
    with pytest.raises(TypeError, match="DenseLinear has no conv2d forward"):
        DenseLinear(rand(P, 3, 2), rand(P, 3)).conv2d(rand(P, 1, 2, 4, 4))


def test_layer_spec_rejects_unknown_kind():
    with pytest.raises(ValueError, match="layer kind"):
        LayerSpec("x", "attention", 2, 2)


@pytest.mark.parametrize(
    "action_space",
    [gym.spaces.Discrete(3), gym.spaces.Box(-2.0, 2.0, (2,), np.float32), gym.spaces.Box(-np.inf, np.inf, (2,))],
    ids=["discrete", "bounded-box", "unbounded-box"],
)
def test_mlp_policy_batched_equals_per_member_loop(action_space):
    policy = MLPPolicy(6, action_space, MLPOptions(hidden=(8, 8)))
    params = make_encoding("dense", policy).decode([(s,) for s in range(P)])
    obs = rand(P, 6, seed=7)
    actions = policy.act(params, obs)
    for m in range(P):
        x = obs[m]
        for i, layer in enumerate(policy.layers):
            x = F.linear(x, params[layer.name].weight[m], params[layer.name].bias[m])
            if i < len(policy.layers) - 1:
                x = torch.tanh(x)
        if isinstance(action_space, gym.spaces.Discrete):
            assert actions[m].item() == x.argmax().item()
        elif np.isfinite(action_space.high).all():
            torch.testing.assert_close(actions[m], 2.0 * torch.tanh(x), atol=1e-6, rtol=0)
            assert actions[m].abs().max() <= 2.0
        else:
            torch.testing.assert_close(actions[m], x, atol=1e-6, rtol=0)


def test_actor_runs_active_members_without_copying_weights_until_few_remain():
    policy = MLPPolicy(4, gym.spaces.Discrete(2), MLPOptions(hidden=(4,)))
    params = make_encoding("dense", policy).decode([(s,) for s in range(P)])
    actor = PopulationActor(policy, params, torch.device("cpu"))
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(P, 4)).astype(np.float32))
    full = policy.act(params, obs).numpy()  # (P,): the reference
    assert np.array_equal(actor(np.arange(P), obs.numpy()), full)  # everyone: the parameters as they are
    most = np.array([4, 0, 2])  # a majority, each once: scattered into a full batch, no gather
    assert np.array_equal(actor(most, obs.numpy()[most]), full[most]) and actor._plans[most.tobytes()].active is None
    few = np.array([3, 1])  # a minority: gathered once, reused while the set stays the same
    assert np.array_equal(actor(few, obs.numpy()[few]), full[few])
    gathered = actor._plans[few.tobytes()].active
    assert gathered.population == 2 and actor(few, obs.numpy()[few]) is not None
    assert actor._plans[few.tobytes()].active is gathered
    twice = np.array([1, 1, 3])  # one member in two episodes: must gather, not scatter
    assert np.array_equal(actor(twice, obs.numpy()[twice]), full[twice])


@pytest.mark.parametrize("encoding", ["dense", "lowrank", "sparse", "lowrank-perturb"])
def test_a_members_cnn_output_does_not_depend_on_who_shares_its_batch(encoding, torch_threads):
    """Backends shard members differently and the actor gathers the ones still running, so a
    member's logits must be the same bits alone, in a few, and in the whole population (shared
    parent forwards included: they are padded so their kernel does not change with the rows)."""
    screen = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    policy = make_policy("nature_cnn", screen, gym.spaces.Discrete(6))
    params = make_encoding(encoding, policy).decode([(0, 100 + i) for i in range(32)])
    generator = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 255, (32, 1, 4, 84, 84), generator=generator).float()  # (P, N, C, H, W)
    with torch.inference_mode():
        whole = policy.forward(params, obs)  # (P, N, actions)
        for members in ([5], [0], [31], [2, 9, 30], list(range(0, 32, 2))):
            index = torch.tensor(members)
            part = policy.forward(params.select(index), obs[index])
            assert torch.equal(part, whole[index]), (encoding, members)
