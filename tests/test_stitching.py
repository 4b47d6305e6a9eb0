"""Stitching (S2): identity between copies, the all-off genotype is parent A, costs, and the Pareto GA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evoboard.agents import checkpoints
from evoboard.agents.stitching import (
    Genotype,
    MLPNetwork,
    StitchedPair,
    dominates,
    fit_stitch,
    pareto_front,
    pareto_ga,
)
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.studies.stitch import accuracy, digits_data, stitch_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Two small adam-trained digits MLPs (different seeds and widths), read back from their checkpoints."""
    out, nets = tmp_path_factory.mktemp("stitch"), {}
    for name, seed, hidden in (("A", 0, "32,32"), ("B", 1, "16,16")):
        spec = RunSpec("digits", algorithm="adam", population=8, generations=4, seed=seed, device="cpu",
                       settings={"hidden": hidden})  # fmt: skip
        run = Run(resolve(spec), out)
        row = run.run()
        loaded = checkpoints.load(Path(run.run_dir.path) / "elite.safetensors")
        nets[name] = (MLPNetwork.from_tensors(loaded.tensors, "tanh"), row["final_score"])
    return nets


def test_stitch_between_copies_is_the_identity_and_scores_like_the_original(trained):
    a, _ = trained["A"]
    data = digits_data()
    acts = a.activations(data["fit"])
    w, b = fit_stitch(acts[1], acts[1])
    torch.testing.assert_close(w, torch.eye(32, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(b, torch.zeros(32, dtype=torch.float64), atol=1e-3, rtol=0)
    pair = StitchedPair(a, a, data["fit"])
    x, y = data["test"]
    for output in (0, 1, 2):
        g = Genotype((True,) * pair.genes, output)  # every stitch on: A and B swap at every point
        torch.testing.assert_close(
            torch.softmax(pair.logits(g, x), -1), torch.softmax(a.forward(x), -1), atol=1e-4, rtol=0
        )
        assert accuracy(pair.logits(g, x), y) == accuracy(a.forward(x), y)


def test_all_off_genotype_reproduces_parent_a_exactly(trained):
    (a, score_a), (b, _) = trained["A"], trained["B"]
    data = digits_data()
    pair = StitchedPair(a, b, data["fit"])
    x_val, _ = data["val"]
    assert torch.equal(pair.logits(Genotype((False,) * pair.genes, 0), x_val), a.forward(x_val))
    assert torch.equal(pair.logits(Genotype((False,) * pair.genes, 1), x_val), b.forward(x_val))
    x_all = torch.cat([data["val"][0], data["test"][0]])
    y_all = torch.cat([data["val"][1], data["test"][1]])
    # the task scores the same held-out images with the policy's float32 forward; at most one image may flip
    assert abs(accuracy(pair.logits(Genotype((False,) * pair.genes, 0), x_all), y_all) - score_a) <= 1 / len(y_all)


def test_costs_count_only_what_the_output_depends_on(trained):
    (a, _), (b, _) = trained["A"], trained["B"]
    pair = StitchedPair(a, b, digits_data()["fit"])
    cost_a = 64 * 32 + 32 * 32 + 32 * 10
    cost_b = 64 * 16 + 16 * 16 + 16 * 10
    off = (False,) * pair.genes
    assert (pair.macs(Genotype(off, 0)), pair.macs(Genotype(off, 1)), pair.macs(Genotype(off, 2))) == (
        cost_a,
        cost_b,
        cost_a + cost_b,
    )
    # stitch B->A at point 2 on, output A: B's first two layers, the 16->32 stitch, A's last layer
    switches = tuple(s == (2, "B", "A") for s in pair.stitches)
    assert pair.macs(Genotype(switches, 0)) == 64 * 16 + 16 * 16 + 16 * 32 + 32 * 10
    assert pair.canonical(Genotype(switches, 1)) == Genotype(off, 1)  # output B ignores stitches into A


def test_pareto_ga_is_seeded_and_its_front_is_non_dominated(trained):
    (a, _), (b, _) = trained["A"], trained["B"]
    data = digits_data()
    pair = StitchedPair(a, b, data["fit"])
    first = stitch_table(pair, data, population=8, generations=3, seed=4)
    again = stitch_table(pair, data, population=8, generations=3, seed=4)
    assert first.equals(again)
    points = {r.genotype: (r.val_accuracy, r.macs) for r in first.itertuples()}
    front = set(pareto_front(points))
    assert front == set(first[first["on_front"]]["genotype"]) and front
    assert not any(dominates(points[j], points[k]) for k in front for j in points)
    assert {"0000:A", "0000:B"} <= set(first["genotype"])  # both parents (2 points x 2 ways = 4 switches)
    seen = pareto_ga(2, lambda g: (float(sum(g.switches)), g.output), population=4, generations=2, seed=0)
    assert all(len(g.switches) == 2 for g, _, _ in seen.values())
