"""Mutation encodings by name; plugins join through the ``evoboard.encodings`` entry points."""

from __future__ import annotations

import torch

from evoboard.agents.encodings.base import Encoding, EncodingOptions, Genome, SeedChainEncoding
from evoboard.agents.encodings.dense import DenseEncoding
from evoboard.agents.encodings.lowrank import LowRankEncoding
from evoboard.agents.encodings.lowrank_perturb import LowRankPerturbEncoding
from evoboard.agents.encodings.small_dense import SmallDenseEncoding
from evoboard.agents.encodings.sparse import SparseEncoding
from evoboard.agents.registry import Registry

ENCODINGS: Registry[type[Encoding]] = Registry("encoding", "evoboard.encodings")
ENCODINGS.register("dense")(DenseEncoding)
ENCODINGS.register("lowrank")(LowRankEncoding)
ENCODINGS.register("lowrank-perturb")(LowRankPerturbEncoding)
ENCODINGS.register("sparse")(SparseEncoding)
ENCODINGS.register("small_dense")(SmallDenseEncoding)


def declaring(capability: str) -> list[str]:
    """Names of the registered encodings whose class declares ``capability`` (``"searches_weights"``, ...)."""
    return [name for name in ENCODINGS.names() if getattr(ENCODINGS.get(name), capability, False)]


def make(name: str, policy, options=None, device: str | torch.device = "cpu") -> Encoding:
    """An encoding for ``policy``; ``options`` defaults to the encoding's own defaults."""
    cls = ENCODINGS.get(name)
    return cls(policy, options if options is not None else cls.Options(), torch.device(device))


__all__ = ["ENCODINGS", "Encoding", "EncodingOptions", "Genome", "SeedChainEncoding", "declaring", "make"]
