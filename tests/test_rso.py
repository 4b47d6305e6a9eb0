"""RSO: accepted updates never raise the minibatch loss, shared lower layers are exact, end-to-end training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, encodings, make_policy
from evoboard.agents.algorithms import DirectTrainer, SearchAlgorithm
from evoboard.agents.algorithms.rso import RSO, RSOOptions, RSOTrainer
from evoboard.agents.policies import MLPOptions
from evoboard.agents.transformer import CharTransformerOptions
from evoboard.envs.charlm import CharLMOptions
from evoboard.envs.digits import DigitsOptions
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec

CPU = torch.device("cpu")


def digits_trainer(population: int = 17, **options) -> tuple:
    task = envs.make("digits", DigitsOptions(batch_size=32))
    policy = make_policy("classifier_mlp", task.observation_space, task.action_space, MLPOptions(hidden=(16,)))
    trainer = RSOTrainer(
        encodings.make("dense", policy), policy, RSOOptions(**options), init_seed=3, population=population
    )
    return task, trainer


def losses_on(task, trainer, vectors: list[torch.Tensor], seed: int) -> np.ndarray:
    """Minibatch losses of whole networks, evaluated together in one plain forward (no sharing)."""
    params = trainer.encoding.to_params(torch.stack(vectors))
    return -task.evaluate(PopulationActor(trainer.policy, params, CPU), len(vectors), [seed]).fitness


def test_accepted_updates_never_raise_the_minibatch_loss():
    task, trainer = digits_trainer(rso_weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    changed = 0
    for i, group in enumerate(trainer.groups[:40]):
        old = trainer.vector.clone()
        deltas = torch.randn(len(group.coords), generator=gen) * 0.3
        before, after, _ = trainer.try_group(task.evaluate, 100 + i, group, deltas)
        check = losses_on(task, trainer, [old, trainer.vector], 100 + i)
        assert after <= before + 1e-9 and check[1] <= check[0] + 1e-5
        assert abs(check[0] - before) < 1e-4
        touched = torch.nonzero(trainer.vector != old).flatten()
        assert set(touched.tolist()) <= set(group.coords.tolist())  # only the group's weights move
        changed += int(len(touched) > 0)
    assert changed > 10  # and it does move


def test_groups_cover_every_dimension_once_from_the_output_layer():
    _, trainer = digits_trainer(population=9)
    coords = torch.cat([g.coords for g in trainer.groups])
    assert sorted(coords.tolist()) == list(range(trainer.encoding.search_dims))
    assert trainer.groups[0].layer == "fc1" and trainer.groups[-1].layer == "fc0"
    assert max(len(g.coords) for g in trainer.groups) == 4  # (9 - 1) // 2 weights per forward


@pytest.mark.parametrize("which", ["classifier_mlp", "small_cnn", "char_transformer"])
def test_shared_lower_layers_give_the_same_losses(which):
    if which == "char_transformer":
        task = envs.make("charlm/pydoc", CharLMOptions(context=8, batch_windows=4, val_windows=8))
        options = CharTransformerOptions(n_layer=1, n_embd=16, n_head=2)
    else:
        task, options = envs.make("digits", DigitsOptions(batch_size=16)), None
    policy = make_policy(which, task.observation_space, task.action_space, options)
    encoding = encodings.make("dense", policy)
    shared = RSOTrainer(encoding, policy, RSOOptions(), init_seed=1, population=7)
    plain = RSOTrainer(encoding, policy, RSOOptions(rso_share_below=False), init_seed=1, population=7)
    for group in (shared.groups[0], shared.groups[len(shared.groups) // 2], shared.groups[-1]):
        z = shared.vector.expand(7, -1).clone()
        z[1:, group.coords[0]] += torch.linspace(-0.3, 0.3, 6)
        a = task.evaluate(shared._actor(z, group.layer), 7, [5]).fitness
        b = task.evaluate(plain._actor(z, group.layer), 7, [5]).fitness
        assert np.allclose(a, b, atol=1e-5)


def test_rso_learns_digits_in_two_cycles(out_dir):
    row = run_spec(RunSpec("digits", algorithm="rso", population=33, generations=2, settings={"hidden": "32"}), out_dir)
    assert row["final_score"] > 0.8 and row["score_kind"] == "accuracy"


def test_rso_trains_a_tiny_char_transformer(out_dir):
    settings = {
        "context": 8,
        "batch_windows": 4,
        "val_windows": 8,
        "n_layer": 1,
        "n_embd": 8,
        "n_head": 2,
        "embedding_rank": 4,
    }
    spec = RunSpec("charlm/pydoc", algorithm="rso", encoding="lowrank", population=65, generations=1, settings=settings)
    row = run_spec(spec, out_dir)
    assert row["score_kind"] == "bits_per_char" and row["final_score"] < 6.5  # uniform over 104 chars: 6.7


def test_rso_sigma_anneals_and_is_a_direct_trainer():
    _, trainer = digits_trainer(rso_cycles=3)
    group = trainer.groups[0]
    first = trainer.sigma(group)
    trainer.cycle = 2
    assert trainer.sigma(group) == pytest.approx(0.1 * first)
    trainer.cycle = 9
    assert trainer.sigma(group) == pytest.approx(0.1 * first)  # stays at the floor
    rso = RSO(5, RSOOptions())
    assert isinstance(rso, DirectTrainer) and not isinstance(rso, SearchAlgorithm) and not hasattr(rso, "ask")
