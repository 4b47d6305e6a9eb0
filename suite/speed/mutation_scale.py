"""``evoboard bench mutation-scale``: how far a child's effective weights move from its parent's, per encoding.

The step convention every encoding honours (``agents/encodings/base``): at equal ``sigma`` a child's
effective weights (W for dense; U V^T for lowrank; W plus its rank-r term for lowrank-perturb; W plus
its changes for sparse) move from its parent's by sigma x that tensor's init std per entry. This
measures it rather than asserting it: for parents of many seeds and one child each, the RMS
per-entry change of every evolved weight matrix over the std of the parent's, divided by the same
figure for ``dense``. A test holds every registered encoding, plugins too, to [0.9, 1.1].
"""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from evoboard.agents.encodings import ENCODINGS, Encoding
from evoboard.agents.encodings import make as make_encoding
from evoboard.agents.policies import MLPPolicy, Policy, make_policy
from evoboard.suite.publish import markdown_table, publish

WEIGHTED = ("linear", "conv2d", "embedding")
SIGMA = 0.1
COLUMNS = ["model", "encoding", "layer", "init_std", "delta_std", "ratio_to_dense"]


def halfcheetah_mlp() -> Policy:
    """The MLP every HalfCheetah-v5 study evolves (17 observations, 6 bounded actions)."""
    box = gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)
    return MLPPolicy.for_spaces(box, gym.spaces.Box(-1.0, 1.0, (6,), np.float32))


def char_transformer() -> Policy:
    """The char-LM transformer of charlm/pydoc (vocabulary 104, context 64)."""
    from evoboard import envs

    task = envs.make("charlm/pydoc")
    return make_policy("char_transformer", task.observation_space, task.action_space)


MODELS = {"halfcheetah_mlp": halfcheetah_mlp, "char_transformer": char_transformer}


def effective_weights(encoding: Encoding, genomes: list[tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Every weighted layer's dense weight per member, (P, *shape), whatever form decode gives it."""
    params = encoding.decode(genomes)
    layers = encoding.policy.layers
    return {layer.name: params[layer.name].materialize().weight for layer in layers if layer.kind in WEIGHTED}


def relative_steps(encoding: Encoding, members: int = 24) -> dict[str, tuple[float, float]]:
    """Per weighted layer: (std of the parents' weights, RMS of child minus parent per entry).

    Parents are genomes (s,) for s < members, each with one child (s, 10_000 + s), decoded in one batch.
    """
    parents = [(s,) for s in range(members)]
    children = [(s, 10_000 + s) for s in range(members)]
    weights = effective_weights(encoding, parents + children)
    out = {}
    for name, w in weights.items():
        before, after = w[:members].double(), w[members:].double()
        out[name] = (float(before.std()), float((after - before).pow(2).mean().sqrt()))
    return out


def measure(model: str, names: list[str] | None = None, sigma: float = SIGMA, members: int = 24) -> pd.DataFrame:
    """One row per (encoding, weighted layer) of ``model``: init std, delta std, and the ratio to dense's
    relative step (delta / init std) on the same layer (small_dense: its narrower copy of that layer)."""
    rows = []
    for name in names or ENCODINGS.names():
        options = ENCODINGS.get(name).Options(sigma=sigma)
        steps = relative_steps(make_encoding(name, MODELS[model](), options), members)
        rows += [{"model": model, "encoding": name, "layer": layer, "init_std": init, "delta_std": delta}
                 for layer, (init, delta) in steps.items()]  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS[:-1])
    relative = table["delta_std"] / table["init_std"]
    dense = relative[table["encoding"] == "dense"].set_axis(table.loc[table["encoding"] == "dense", "layer"])
    table["ratio_to_dense"] = relative / table["layer"].map(dense)
    return table


def run(out: Path) -> pd.DataFrame:
    """Both models, every registered encoding: ``out/mutation_scale.csv`` and ``.md``."""
    tables = []
    for model in MODELS:
        tables.append(measure(model))
        print(f"mutation-scale: {model} done", flush=True)
    table = pd.concat(tables, ignore_index=True)
    note = (f"sigma {SIGMA}; 24 parents (seeds 0-23), one child each; init_std: std of the parents' effective "
            "weights; delta_std: RMS of child minus parent per entry; ratio_to_dense: (delta_std / init_std) "
            "over dense's on the same layer. Command: evoboard bench mutation-scale --out DIR")  # fmt: skip
    cells = [[str(v) if c in COLUMNS[:3] else f"{v:.4g}" for c, v in row.items()] for row in table.to_dict("records")]
    markdown = f"# Equal steps at equal sigma\n\n{note}\n\n{markdown_table(COLUMNS, cells)}\n"
    publish(out, "mutation_scale", table, markdown=markdown)
    return table


if __name__ == "__main__":
    print(run(Path(sys.argv[1] if len(sys.argv) > 1 else "results")).to_string(index=False))
