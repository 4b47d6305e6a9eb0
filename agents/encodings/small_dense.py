"""The "similar and smaller" dense control: a narrower dense network searching as many numbers as ``lowrank``.

Garbus & Pollack 2025 compare a factorized network with a dense one of similar evolved size,
so that a win for the factorization is not just a win for searching fewer dimensions. In
Jevo.jl the control is a hand-written config with narrower layers
(``experiments/*/03-*-nofa-small-*/0/config.jl``). Here the widths follow one rule: every
hidden width the policy lets change (``Policy.widths``) is scaled by the same factor
s = k / max(widths), each rounded to the nearest integer (at least 1; the char transformer
rounds its width down to a multiple of its heads), and the k in 1..max(widths) whose dense
search dims come closest to those of ``lowrank`` with the same settings wins (ties: the
smaller). Where lowrank searches no fewer numbers than the full dense network, the control
is the full network. Mutation and LayerNorm follow the shared convention (``base``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from evoboard.agents.encodings.dense import DenseEncoding
from evoboard.agents.encodings.lowrank import LowRankEncoding, LowRankOptions


@dataclass
class SmallDenseOptions(LowRankOptions):
    """The lowrank run to match (rank, conv_rank, embedding_rank, factorize, factorize_output), plus sigma.

    The factor settings (factor_gain, factor_sigma, plain_sigma) only describe that run; the
    control mutates like ``dense``.
    """


def dense_dims(policy, evolve_norms: bool) -> int:
    """Numbers the dense encoding searches for ``policy``."""
    layers = [layer for layer in policy.layers if layer.kind != "norm" or evolve_norms]
    return sum(math.prod(t.shape) for layer in layers for t in layer.tensors())


def matched_policy(policy, options: SmallDenseOptions):
    """The narrowed policy whose dense search dims come closest to lowrank's, and lowrank's dims."""
    target = LowRankEncoding(policy, options, torch.device("cpu")).search_dims
    widths = policy.widths()
    if not widths:
        raise ValueError(f"small_dense needs a policy with hidden widths to narrow; {policy.describe()} has none")
    if dense_dims(policy, options.evolve_norms) <= target:
        return policy, target
    top = max(widths)
    best, best_gap = policy, None
    for k in range(1, top + 1):
        narrow = policy.narrowed(tuple(max(1, round(k * w / top)) for w in widths))
        gap = abs(dense_dims(narrow, options.evolve_norms) - target)
        if best_gap is None or gap < best_gap:
            best, best_gap = narrow, gap
    return best, target


class SmallDenseEncoding(DenseEncoding):
    """Dense mutation of a narrower copy of the policy, sized to ``lowrank``'s search dims."""

    name = "small_dense"
    Options = SmallDenseOptions
    searches_weights = False  # the weights of a narrower network, not the policy's

    def __init__(self, policy, options: SmallDenseOptions, device: torch.device):
        narrow, self.target_dims = matched_policy(policy, options)
        self.full_policy = policy
        super().__init__(narrow, options, device)
