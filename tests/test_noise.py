"""The shared noise table: a seed's noise is its slice, the same bits in any process, batch or position."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from evoboard.agents.encodings import make
from evoboard.agents.encodings.noise import (
    TABLE_SHA256,
    TABLE_SIZE,
    build_table,
    digest,
    noise,
    noise_rows,
    offsets,
    table,
    windows,
)
from evoboard.agents.encodings.sparse import top_k_entries


def test_a_seeds_noise_is_its_slice_of_the_table():
    tab = table("cpu")
    for seed in (0, 1, 7, 2**31 - 1):
        start = int(offsets([seed])[0])
        assert 0 <= start < TABLE_SIZE
        assert torch.equal(noise(seed, 1000), tab[start : start + 1000])
    rows = noise_rows([5, 6, 5], 300, "cpu")
    assert torch.equal(rows[0], noise(5, 300)) and torch.equal(rows[1], noise(6, 300))
    assert torch.equal(rows[0], rows[2])  # a seed, not its position, names the noise
    assert not torch.equal(rows[0], rows[1])


def test_a_slice_past_the_end_wraps_to_the_start():
    tab = table("cpu")[:TABLE_SIZE]
    start = torch.tensor([TABLE_SIZE - 3])
    assert torch.equal(windows(start, 10, torch.device("cpu"))[0], torch.cat([tab[-3:], tab[:7]]))


def test_offsets_are_a_hash_of_the_seed_spread_over_the_table():
    seeds = np.arange(1000, 3000)  # consecutive seeds: offsets far apart, not neighbours
    starts = offsets(seeds)
    assert len(set(starts.tolist())) == len(seeds)
    assert np.abs(np.diff(starts)).min() > 10
    assert starts.tolist() == [int(offsets([s])[0]) for s in seeds]


def test_the_table_is_standard_normal_and_pinned():
    tab = table("cpu")[:TABLE_SIZE]
    assert digest(tab) == TABLE_SHA256
    assert abs(float(tab.mean())) < 1e-3 and abs(float(tab.std()) - 1) < 1e-3


@pytest.mark.slow
def test_this_torch_draws_the_pinned_table():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert digest(build_table()) == TABLE_SHA256


def test_top_k_breaks_ties_by_position_whatever_the_order():
    keys = torch.tensor(
        [[0.5, 2.0, 1.0, 1.0, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]]
    )
    picked = top_k_entries(keys, 3).sort(dim=1).values
    assert picked.tolist() == [[1, 2, 5], [0, 1, 2], [0, 1, 2]]  # ties at the 3rd key: the earlier entries
    negative = torch.tensor([[-1.0, -2.0, -1.0, -0.5]])
    assert top_k_entries(negative, 2).sort(dim=1).values.tolist() == [[0, 3]]


@pytest.mark.parametrize("n,k", [(100_000, 1), (100_000, 1000), (50_000, 2500), (20_000, 5000)])
def test_the_top_k_of_candidates_is_the_full_top_k(n, k):
    """The shortcut (candidates above a normal quantile) gives topk's set on normal keys, on keys with a
    tie at the k-th largest, and on keys no threshold suits (every row falls back)."""
    keys = torch.randn(6, n, generator=torch.Generator().manual_seed(n + k))
    keys[1, :2] = keys[1].topk(k).values[-1]  # a tie at the k-th largest key
    keys[2] = keys[2].abs() * -1e-3  # all below any threshold: the fallback

    def full(rows: torch.Tensor) -> list[list[int]]:
        return rows.sort(dim=1).values.tolist()

    picked = top_k_entries(keys, k)
    reference = [sorted(row.topk(k).indices.tolist()) for row in keys]
    assert full(picked)[0] == reference[0] and full(picked)[3:] == reference[3:]
    assert full(picked)[2] == reference[2] and len(set(full(picked)[1])) == k  # the tie row: a k-set, ...
    tied = keys[1] >= keys[1].topk(k).values[-1]
    assert set(full(picked)[1]) <= set(torch.nonzero(tied).flatten().tolist())  # ... of the k largest keys


DECODE = r"""
import hashlib, json, sys
import torch
from evoboard import envs
from evoboard.agents import make_policy
from evoboard.agents.encodings import ENCODINGS, make

threads, position, population = (int(a) for a in sys.argv[1:4])
torch.set_num_threads(threads)
task = envs.make("CartPole-v1")
policy = make_policy("mlp", task.observation_space, task.action_space)
settings = {"lowrank-perturb": {"shared_min": 0}, "lowrank": {"rank": 2}}
target = (11, 22, 33)
out = {}
for name in ("dense", "lowrank", "lowrank-perturb", "sparse", "small_dense"):
    cls = ENCODINGS.get(name)
    enc = make(name, policy, cls.Options(**settings.get(name, {})))
    others = [(100 + i, 7 * i + position) for i in range(population - 1)]
    if position == 0:  # a GA's way: the parent decoded with others, then the children of cached parents
        enc.decode([(11,), *[(100 + i,) for i in range(population - 1)]])
        enc.decode([(11, 22), *others])
        params = enc.decode([target, *[(11, 22, 1000 + i) for i in range(population - 1)]])
    else:  # replayed from its seeds alone, at another position in another population
        params = enc.decode([*others[:position], target, *others[position:]])
    digests = []
    for form in params.values():
        dense = form.materialize() if hasattr(form, "materialize") else form
        for role in ("weight", "bias"):
            if hasattr(dense, role):
                row = getattr(dense, role)[position].contiguous()
                digests.append(hashlib.sha256(row.numpy().tobytes()).hexdigest())
    out[name] = digests
print(json.dumps(out))
"""


def decoded(threads: int, position: int, population: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", DECODE, str(threads), str(position), str(population)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.slow
def test_a_genome_decodes_to_the_same_bits_in_any_process_batch_and_position():
    alone = decoded(threads=1, position=0, population=3)
    elsewhere = decoded(threads=2, position=5, population=9)
    assert alone == elsewhere
    assert all(len(d) >= 4 for d in alone.values())


def test_a_batch_decode_equals_each_member_decoded_alone():
    from tests.test_encodings import encoding

    for name in ("dense", "lowrank", "lowrank-perturb", "sparse"):
        enc = encoding(name)
        genomes = [(1,), (2, 3), (4, 5, 6), (1, 7)]
        together = enc.vectors(genomes)
        for genome, row in zip(genomes, together, strict=True):
            assert torch.equal(encoding(name).vector(genome), row), (name, genome)


def test_snes_and_es_members_are_the_mean_plus_scaled_table_noise():
    from evoboard.agents.algorithms import make as make_algorithm
    from tests.test_encodings import encoding

    enc = encoding("dense")
    for name in ("openai-es", "snes"):
        algo = make_algorithm(name, 5)
        algo.bind(enc)
        state = algo.init(0)
        genomes, state = algo.ask(state)
        z = algo.member_vectors(genomes, state)
        scale = state.sigma if name == "snes" else algo.options.es_sigma
        for row, (_, seed, sign) in zip(z, genomes, strict=True):
            expected = state.mean if sign == 0 else state.mean + noise(seed, enc.search_dims) * scale * sign
            assert torch.equal(row, expected), (name, seed, sign)


def test_decoding_a_ga_generation_mutates_once_and_replays_no_parent(monkeypatch):
    from evoboard.agents.algorithms import make as make_algorithm
    from evoboard.agents.encodings.dense import DenseEncoding
    from tests.test_encodings import Net

    calls = []
    real = DenseEncoding.mutate
    monkeypatch.setattr(DenseEncoding, "mutate", lambda self, p, s: calls.append(len(s)) or real(self, p, s))
    enc, ga = make("dense", Net()), make_algorithm("ga", 16)
    state, rng = ga.init(0), np.random.default_rng(0)
    for _ in range(5):  # the runner's order: population, parents beside it, tell, candidates, crown
        genomes, state = ga.ask(state)
        calls.clear()
        enc.decode(genomes)
        enc.decode(ga.references(state) or [genomes[0]])
        state = ga.tell(state, genomes, rng.normal(size=len(genomes)))
        enc.decode(ga.candidates(state))
        state = ga.crown(state, ga.candidates(state), rng.normal(size=len(ga.candidates(state))))
        assert calls in ([], [15])  # generation 0: inits; then one batch of the 15 children, nothing replayed
