"""Every registered encoding gets the same checks: sizes, replay, batched forward, determinism, a run.

The checks are parametrized over ``ENCODINGS.names()``, so a new encoding (or an installed
plugin) is held to them without editing this file. Forms are compared with a per-member
reference built from materialised dense weights and torch.nn.functional.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from evoboard.agents.encodings import ENCODINGS, make
from evoboard.agents.encodings.lowrank import FactorizedConv2d, FactorizedEmbedding, FactorizedLinear, LowRankOptions
from evoboard.agents.encodings.lowrank_perturb import LowRankPerturbOptions
from evoboard.agents.encodings.perturbed_layers import PerturbedConv2d, PerturbedEmbedding, PerturbedLinear
from evoboard.agents.encodings.sparse import SparseOptions
from evoboard.agents.layers import DenseConv2d, DenseEmbedding, DenseLinear, DenseNorm, LayerSpec
from evoboard.agents.registry import Registry
from evoboard.errors import UsageError
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec

NAMES = ENCODINGS.names()
LAYERS = (
    LayerSpec("emb", "embedding", 11, 8),
    LayerSpec("conv", "conv2d", 3, 6, kernel=3, stride=2),
    LayerSpec("fc0", "linear", 20, 16),
    LayerSpec("norm", "norm", 16, 16),
    LayerSpec("fc1", "linear", 16, 5),
)
# Small settings so that every layer above is factorized / perturbed / sparsely mutated,
# and the shared-base forms of lowrank-perturb are used even for these tiny weights.
OPTIONS = {
    "lowrank": {"rank": 2, "conv_rank": 3, "embedding_rank": 2},
    "lowrank-perturb": {"perturb_rank": 2, "shared_min": 0},
    "sparse": {"density": 0.25},
}


# The run check exercises lowrank-perturb's shared-base forms on CartPole's small layers too.
RUN_SETTINGS = {"lowrank-perturb": {"shared_min": 0}}


class Net:
    """The only parts of a policy an encoding reads: its layers (and, for small_dense, widths to narrow)."""

    def __init__(self, layers: tuple[LayerSpec, ...] = LAYERS):
        self.layers = layers

    def widths(self) -> tuple[int, ...]:
        return (1,)

    def narrowed(self, widths: tuple[int, ...]) -> Net:
        return self  # unrelated layer shapes: small_dense on them is the dense network

    def describe(self) -> str:
        return "net"


def encoding(name: str, layers: tuple[LayerSpec, ...] = LAYERS, **overrides):
    cls = ENCODINGS.get(name)
    return make(name, Net(layers), cls.Options(**{**OPTIONS.get(name, {}), **overrides}))


def population(enc, parents: int = 2, children: int = 7):
    """Two generations: 4 init members, then an elite plus children of the first ``parents``."""
    first = [(s,) for s in (11, 22, 33, 44)]
    enc.decode(first)
    kids = [(*first[i % parents], 1000 + i) for i in range(children)]
    genomes = [first[0], *kids]
    return genomes, enc.decode(genomes)


def dense_of(form):
    """Each member's dense weights: Dense* forms as they are, others through ``materialize``."""
    dense = form.materialize() if hasattr(form, "materialize") else form
    assert isinstance(dense, DenseLinear | DenseConv2d | DenseEmbedding | DenseNorm), type(dense)
    return dense


def expected_dims(name: str, layers: tuple[LayerSpec, ...]) -> int | None:
    """search_dims from layer shapes alone; None for an encoding this file does not know."""
    full = sum(math.prod(t.shape) for layer in layers if layer.kind != "norm" for t in layer.tensors())
    if name in ("dense", "lowrank-perturb", "sparse", "small_dense"):
        return full  # LayerNorms frozen by default
    if name == "lowrank":
        ranks = {"linear": 2, "conv2d": 3, "embedding": 2}
        total = 0
        for layer in layers:
            if layer.kind == "norm":
                continue  # LayerNorm is not searched
            rows, cols = layer.matrix_shape
            total += ranks[layer.kind] * (rows + cols) + sum(math.prod(t.shape) for t in layer.tensors()[1:])
        return total
    return None


def reference(layer: LayerSpec, form, x: torch.Tensor) -> torch.Tensor:
    """The layer for each member separately, from materialised dense weights and F.*."""
    dense = dense_of(form)
    outs = []
    for i in range(len(dense)):
        if layer.kind == "linear":
            outs.append(F.linear(x[i], dense.weight[i], dense.bias[i]))
        elif layer.kind == "conv2d":
            outs.append(F.conv2d(x[i], dense.weight[i], dense.bias[i], stride=layer.stride))
        elif layer.kind == "embedding":
            outs.append(F.embedding(x[i], dense.weight[i]))
        else:
            outs.append(F.layer_norm(x[i], (layer.out_features,), dense.weight[i], dense.bias[i], dense.eps))
    return torch.stack(outs)


def layer_input(layer: LayerSpec, p: int, generator: torch.Generator) -> torch.Tensor:
    if layer.kind == "linear":
        return torch.randn(p, 3, layer.in_features, generator=generator)
    if layer.kind == "conv2d":
        return torch.randn(p, 2, layer.in_features, 7, 7, generator=generator)
    if layer.kind == "embedding":
        return torch.randint(0, layer.in_features, (p, 2, 5), generator=generator)
    return torch.randn(p, 3, layer.out_features, generator=generator)


def forward(layer: LayerSpec, form, x: torch.Tensor) -> torch.Tensor:
    method = {"linear": "linear", "conv2d": "conv2d", "embedding": "embedding", "norm": "layer_norm"}[layer.kind]
    return getattr(form, method)(x)


def weights(params) -> dict[str, torch.Tensor]:
    """Every member's materialised tensors, flattened per layer and role: each (P, n)."""
    out = {}
    for name, form in params.items():
        dense = dense_of(form)
        for role in ("weight", "bias"):
            if hasattr(dense, role):
                out[f"{name}.{role}"] = getattr(dense, role).reshape(len(dense), -1)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_search_dims_from_layer_shapes(name):
    enc = encoding(name)
    want = expected_dims(name, LAYERS)
    if want is not None:
        assert enc.search_dims == want
    genomes, _ = population(enc)
    assert enc.vector(genomes[-1]).shape == (enc.search_dims,)


@pytest.mark.parametrize("name", NAMES)
def test_replay_from_seeds_equals_cached_batched_decode(name):
    enc = encoding(name)
    genomes, params = population(enc)
    # A grandchild too, so replay goes through two mutations.
    grandchild = (*genomes[1], 5555)
    enc.decode([*genomes, grandchild])
    for genome in (genomes[0], genomes[3], grandchild):
        fresh = encoding(name)
        assert torch.equal(fresh.vector(genome), enc.vector(genome))
        alone, batched = weights(fresh.decode([genome])), weights(enc.decode(genomes + [grandchild]))
        i = (genomes + [grandchild]).index(genome)
        for key in alone:
            assert torch.equal(alone[key][0], batched[key][i]), key


@pytest.mark.parametrize("name", NAMES)
def test_batched_forward_matches_per_member_reference(name):
    enc = encoding(name)
    _, params = population(enc)
    generator = torch.Generator().manual_seed(0)
    for layer in LAYERS:
        x = layer_input(layer, params.population, generator)
        got = forward(layer, params[layer.name], x)
        torch.testing.assert_close(got, reference(layer, params[layer.name], x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_select_equals_slicing(name):
    enc = encoding(name)
    _, params = population(enc)
    members = torch.tensor([5, 0, 0, 2])
    sub = params.select(members)
    assert sub.population == 4
    full, part = weights(params), weights(sub)
    for key in full:
        assert torch.equal(part[key], full[key][members]), key
    generator = torch.Generator().manual_seed(1)
    for layer in LAYERS:
        x = layer_input(layer, params.population, generator)
        torch.testing.assert_close(
            forward(layer, sub[layer.name], x[members]),
            forward(layer, params[layer.name], x)[members],
            atol=1e-6,
            rtol=0,
        )


@pytest.mark.parametrize("name", NAMES)
def test_same_seeds_same_tensors(name):
    first, second = weights(population(encoding(name))[1]), weights(population(encoding(name))[1])
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    other = weights(encoding(name).decode([(12,), (23,)]))
    assert any(not torch.equal(other[k][0], first[k][0]) for k in first)


def test_dense_mutation_changes_every_parameter():
    enc = encoding("dense")
    child = enc.vector((3, 4))
    assert bool((child != enc.vector((3,))).all())


def test_sparse_children_differ_in_exactly_k_entries_per_layer():
    enc = encoding("sparse")
    parent = enc.vector((7,))
    for seed in (1, 2, 3):
        changed = enc.vector((7, seed)) != parent
        assert int(changed.sum()) == enc.mutated_per_child
        for s in enc.segments:
            assert int(changed[s.start : s.start + s.size].sum()) == max(1, round(0.25 * s.size))
    assert abs(enc.mutated_per_child / enc.search_dims - 0.25) < 0.01


def test_sparse_per_layer_density_and_disjoint_siblings():
    enc = encoding("sparse", density=0.1, layer_density=("fc0:0.5",), disjoint=True)
    fc0 = next(s for s in enc.segments if s.layer == "fc0")
    assert fc0.chosen == round(0.5 * fc0.size) and fc0.parts == 2
    parts = min(s.parts for s in enc.segments)
    masks = [set(enc.mask(seed).tolist()) for seed in range(100, 100 + parts)]  # consecutive sibling seeds
    others = [s for s in enc.segments if s.size % s.chosen == 0]  # no wrapping last part
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            overlap = masks[i] & masks[j]
            assert not any(s.start <= k < s.start + s.size for k in overlap for s in others)
    parent = enc.vector((9,))
    for seed in (100, 101):
        changed = torch.nonzero(enc.vector((9, seed)) != parent).flatten().tolist()
        assert set(changed) == set(enc.mask(seed).tolist())  # the child mutates exactly its part


def test_sparse_options_reject_bad_density():
    for bad in ({"density": 0.0}, {"density": 1.5}, {"layer_density": ("fc0:2",)}, {"layer_density": ("fc0",)}):
        with pytest.raises(ValueError):
            SparseOptions(**bad)
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        encoding("sparse", layer_density=("nope:0.1",))


def test_lowrank_mutates_only_factors_and_biases():
    enc = encoding("lowrank")
    parent, child = enc.vector((5,)), enc.vector((5, 6))
    roles = {(b.layer, b.role) for b in enc.blocks}
    assert ("norm", "weight") not in roles and ("fc0", "weight") not in roles
    assert {r for _, r in roles} == {"U", "V", "bias"}
    for block in enc.blocks:
        assert bool((child[block.start : block.stop] != parent[block.start : block.stop]).all())
        # relative rates: sigma / sqrt(2) * factor std on U and V (both move: U V^T steps as dense's W),
        # sigma * the layer's weight std on biases
        layer = next(layer for layer in LAYERS if layer.name == block.layer)
        want = 0.1 / math.sqrt(2) * block.std if block.role in ("U", "V") else 0.1 / math.sqrt(layer.fan_in)
        delta = (child - parent)[block.start : block.stop]
        assert torch.allclose(enc._mutation_scale[block.start : block.stop], torch.tensor(want))
        if block.size > 50:
            assert 0.6 * want < float(delta.std()) < 1.4 * want


@pytest.mark.parametrize(("gain", "want"), [(math.sqrt(2), math.sqrt(2 / 256)), (1.0, 1 / math.sqrt(256))])
def test_lowrank_init_is_jevo_kaiming_or_the_dense_weight_variance(gain, want):
    layer = LayerSpec("big", "linear", 256, 128)
    enc = encoding("lowrank", (layer,), rank=8, factor_gain=gain)
    w = dense_of(enc.decode([(1,), (2,)])["big"]).weight
    assert isinstance(enc.decode([(1,)])["big"], FactorizedLinear)
    assert abs(float(w.std()) / want - 1) < 0.1
    u, v = (next(b for b in enc.blocks if b.role == role) for role in ("U", "V"))
    assert u.std == v.std and (u.std * v.std) ** 2 * 8 == pytest.approx(want**2)  # an even split of the product


def test_lowrank_rank_and_layer_errors():
    with pytest.raises(ValueError, match="exceeds"):
        encoding("lowrank", factorize=("fc1",), rank=6)  # fc1 is 16 x 5
    with pytest.raises(ValueError, match="unknown layer 'fc9'"):
        encoding("lowrank", factorize=("fc9",))
    with pytest.raises(ValueError, match="every layer"):
        encoding("lowrank", rank=99, conv_rank=99, embedding_rank=99)
    with pytest.raises(ValueError):
        LowRankOptions(rank=0)
    # Default choice: layers whose factors would not be smaller stay dense.
    enc = encoding("lowrank", (LayerSpec("a", "linear", 4, 64), LayerSpec("b", "linear", 64, 64)), rank=4)
    assert set(enc.ranks) == {"b"}


def test_lowrank_perturb_child_delta_has_rank_r():
    enc = encoding("lowrank-perturb", evolve_norms=True)
    parent, child = weights(enc.decode([(5,)])), weights(enc.decode([(5, 6)]))
    for layer in LAYERS:
        key = f"{layer.name}.weight"
        delta = (child[key] - parent[key])[0]
        if layer.kind == "norm":
            assert bool((delta != 0).all())  # dense Gaussian on norms and biases
            continue
        rows, cols = layer.matrix_shape
        # (parent + delta) - parent carries float32 rounding: count singular values above 1e-4 of the largest
        rank = int(torch.linalg.matrix_rank(delta.reshape(rows, cols), rtol=1e-4))
        assert rank == min(2, rows, cols)
        if layer.kind != "embedding":
            assert bool((child[f"{layer.name}.bias"] != parent[f"{layer.name}.bias"]).all())


def test_lowrank_perturb_folds_only_the_children_used_again_in_one_batch(monkeypatch):
    import evoboard.agents.encodings.lowrank_perturb as module

    enc = encoding("lowrank-perturb")
    genomes, _ = population(enc)  # an elite and 7 children: shared-base forms
    folded = []
    real_mutate = module.LowRankPerturbEncoding.mutate

    def mutate(self, parents, seeds):
        folded.append(list(seeds))
        return real_mutate(self, parents, seeds)

    monkeypatch.setattr(module.LowRankPerturbEncoding, "mutate", mutate)
    parents = [genomes[1], genomes[2]]
    grandchildren = [parents[0], *[(*parents[i % 2], 5000 + i) for i in range(7)]]
    params = enc.decode(grandchildren)
    assert folded == [[parents[0][-1], parents[1][-1]]]  # the two parents in one batch; no grandchild folded
    assert isinstance(params["fc0"], PerturbedLinear)
    fresh, block = encoding("lowrank-perturb"), next(b for b in enc.blocks if (b.layer, b.role) == ("fc0", "weight"))
    for genome, dense in zip(grandchildren, weights(params)["fc0.weight"], strict=True):
        assert torch.equal(fresh.vector(genome)[block.start : block.stop], dense), genome


def test_lowrank_perturb_shares_bases_among_siblings():
    enc = encoding("lowrank-perturb")
    genomes, params = population(enc)
    form = params["fc0"]
    assert isinstance(form, PerturbedLinear)
    assert form.base.shape[0] == 2  # the elite is the first parent itself: two distinct bases
    assert form.group.tolist() == [0, 0, 1, 0, 1, 0, 1, 0]
    assert float(form.A[0].abs().sum()) == 0.0  # the elite carries no new mutation
    assert isinstance(params["conv"], PerturbedConv2d) and isinstance(params["emb"], PerturbedEmbedding)
    with pytest.raises(ValueError):
        LowRankPerturbOptions(perturb_rank=0)
    with pytest.raises(ValueError, match="every layer"):
        encoding("lowrank-perturb", perturb_rank=100)


class LargestAllocation(TorchDispatchMode):
    """Records the largest tensor any op returns while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("name", ["lowrank", "lowrank-perturb"])
def test_low_rank_forwards_never_form_per_member_weights(name):
    layers = (
        LayerSpec("fc", "linear", 48, 40),
        LayerSpec("conv", "conv2d", 4, 32, kernel=3),
        LayerSpec("emb", "embedding", 64, 24),
    )
    enc = encoding(name, layers)
    _, params = population(enc, parents=1)
    assert type(params["fc"]) in (FactorizedLinear, PerturbedLinear)
    assert type(params["conv"]) in (FactorizedConv2d, PerturbedConv2d)
    assert type(params["emb"]) in (FactorizedEmbedding, PerturbedEmbedding)
    p = params.population
    inputs = {
        "fc": torch.randn(p, 2, 48),
        "conv": torch.randn(p, 1, 4, 5, 5),  # activations (P, 1, 32, 3, 3) stay below P*32*36
        "emb": torch.randint(0, 64, (p, 1, 3)),
    }
    for layer in layers:
        probe = LargestAllocation()
        with probe:
            forward(layer, params[layer.name], inputs[layer.name])
        assert probe.largest < p * math.prod(layer.weight_shape), layer.name


@pytest.mark.parametrize("name", NAMES)
def test_ga_runs_cartpole_end_to_end(name, tmp_path):
    spec = RunSpec(
        task="CartPole-v1",
        encoding=name,
        algorithm="ga",
        population=8,
        generations=2,
        seed=0,
        device="cpu",
        settings={"max_steps": 50, "eval_episodes": 1, **RUN_SETTINGS.get(name, {})},
    )
    row = run_spec(spec, tmp_path)
    assert row["encoding"] == name
    assert row["search_dims"] > 0
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert board["encoding"].tolist() == [name]
    assert 0 < row["best_fitness"] <= 50


def test_bad_encoding_settings_exit_before_writing(tmp_path):
    for name, settings in (
        ("lowrank", {"rank": 100}),
        ("lowrank", {"factorize": "fc7"}),
        ("sparse", {"density": 0}),
        ("sparse", {"layer_density": "fc7:0.1"}),
        ("lowrank-perturb", {"perturb_rank": 500}),
    ):
        spec = RunSpec(task="CartPole-v1", encoding=name, population=4, generations=1, device="cpu", settings=settings)
        with pytest.raises(UsageError):
            run_spec(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


EXAMPLE_PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "toy_encoding"


def install_example_plugin(target: Path) -> None:
    """pip-install a copy of the example plugin package (no dependencies, no network) into ``target``."""
    source = target.parent / "toy_encoding_src"
    shutil.copytree(EXAMPLE_PLUGIN, source)  # the build leaves files beside the sources: keep the repo clean
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_example_plugin_installs_is_listed_and_runs(tmp_path, monkeypatch):
    tmp_path = tmp_path / "site"
    install_example_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("encoding", "evoboard.encodings")
    assert "toy-uniform" in registry.names()
    assert registry.get("toy-uniform").__name__ == "UniformEncoding"

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "evoboard"]
    listed = subprocess.run([*cli, "list", "encodings"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "toy-uniform" in listed.stdout
    out = tmp_path / "results"
    run = [*cli, "run", "--task", "CartPole-v1", "--encoding", "toy-uniform", "--population", "4"]
    run += [
        "--generations",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--set",
        "max_steps=20",
        "--set",
        "toy_width=0.1",
    ]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["encoding"].tolist() == ["toy-uniform"]
    assert '"toy_width": 0.1' in board["config"][0]
