"""Weight masks applied to any policy, so a lottery ticket found once is reusable by any algorithm and encoding.

A mask is one 0/1 array per masked layer, of that layer's weight shape (biases and norms are
never masked). ``MaskedPolicy`` wraps a policy: it materialises each masked layer's form (dense,
factorized, low-rank-perturbed or sparse: all give dense weights through ``materialize()``) and
multiplies the weights by the mask, so a pruned weight is zero whatever the encoding searches.
That happens once per set of parameters, not at every step: the masked forms of the last
parameters seen are kept (an actor steps the same parameters many times), so the masks are
copied to the device and the masked weights built once per actor. Masks are stored as ``.npz``
files of plain numeric arrays, read with ``allow_pickle=False``: a file can never run code, and
anything that is not a 0/1 array of the right shape for a layer of the policy is refused with
one line.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from evoboard.agents.layers import LayerParams, PopulationParams
from evoboard.agents.policies import Policy

MASKABLE = ("linear", "conv2d", "embedding")


def save_mask(path: str | Path, mask: Mapping[str, np.ndarray]) -> Path:
    """Write ``mask`` (layer name -> 0/1 array of its weight shape) as an uncompressed ``.npz`` of uint8 arrays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, **{name: np.asarray(m, dtype=np.uint8) for name, m in mask.items()})
    return path


def load_mask(path: str | Path) -> dict[str, np.ndarray]:
    """Read a mask file; ValueError (one line) for anything but numeric 0/1 arrays in an ``.npz``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            mask = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"mask {path} is not a readable .npz of numeric arrays ({err})") from None
    if not mask:
        raise ValueError(f"mask {path} holds no arrays")
    for name, m in mask.items():
        if m.dtype.kind not in "biuf":
            raise ValueError(f"mask {path}: layer {name!r} has non-numeric dtype {m.dtype}")
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"mask {path}: layer {name!r} has values other than 0 and 1")
    return {name: m.astype(bool) for name, m in mask.items()}


def check_mask(mask: Mapping[str, np.ndarray], policy: Policy) -> None:
    """ValueError unless every masked layer exists in ``policy``, has weights, and the shapes match."""
    layers = {layer.name: layer for layer in policy.layers}
    for name, m in mask.items():
        if name not in layers or layers[name].kind not in MASKABLE:
            valid = ", ".join(n for n, layer in layers.items() if layer.kind in MASKABLE)
            raise ValueError(f"mask names layer {name!r}, which policy {policy.describe()} lacks; layers: {valid}")
        if tuple(m.shape) != layers[name].weight_shape:
            raise ValueError(f"mask for layer {name!r} has shape {m.shape}, its weight {layers[name].weight_shape}")


def kept_fraction(mask: Mapping[str, np.ndarray]) -> float:
    """Fraction of the masked weights that are kept."""
    return float(sum(m.sum() for m in mask.values()) / sum(m.size for m in mask.values()))


def masked_form(form: LayerParams, mask: torch.Tensor) -> LayerParams:
    """``form`` with its weights multiplied by ``mask`` (weight shape), through its dense materialisation."""
    if hasattr(form, "map_inner"):  # a wrapper form (RSO's shared lower layers): mask what it wraps
        return form.map_inner(lambda inner: masked_form(inner, mask))
    dense = form.materialize()
    return dataclasses.replace(dense, weight=dense.weight * mask.to(dense.weight))


class MaskedPolicy(Policy):
    """A policy whose masked weights are zero in every member, for any encoding's parameter forms."""

    def __init__(self, policy: Policy, mask: Mapping[str, np.ndarray]):
        check_mask(mask, policy)
        self.inner = policy
        self.name, self.Options, self.layers = policy.name, policy.Options, policy.layers
        self.mask = {name: torch.as_tensor(np.asarray(m, dtype=np.float32)) for name, m in mask.items()}
        self.kept = kept_fraction(mask)
        self._last: tuple[PopulationParams, PopulationParams] | None = None  # (params in, masked params out)

    @classmethod
    def for_spaces(cls, observation_space, action_space, options=None) -> Policy:
        raise TypeError("MaskedPolicy wraps a built policy: MaskedPolicy(policy, mask)")

    def apply(self, params: PopulationParams) -> PopulationParams:
        """The same members with every masked layer's weights multiplied by its mask."""
        out = PopulationParams(params)
        for name, m in self.mask.items():
            out[name] = masked_form(params[name], m)
        return out

    def applied(self, params: PopulationParams) -> PopulationParams:
        """``apply(params)``, kept for the next call with the same parameters (an actor's every step).

        Decoded parameters are never changed in place, so the same object gives the same masked weights.
        With autograd on (the ``adam`` reference) nothing is kept: each step has its own graph.
        """
        if torch.is_grad_enabled():
            return self.apply(params)
        if self._last is None or self._last[0] is not params:
            self._last = (params, self.apply(params))
        return self._last[1]

    def act(self, params: PopulationParams, obs: torch.Tensor) -> torch.Tensor:
        return self.inner.act(self.applied(params), obs)

    def forward(self, params: PopulationParams, x: torch.Tensor) -> torch.Tensor:
        return self.inner.forward(self.applied(params), x)

    def describe(self) -> str:
        return f"{self.inner.describe()}+mask({self.kept:.4g})"

    def __getattr__(self, name: str):
        return getattr(self.__dict__["inner"], name)  # the wrapped policy's own attributes (context, options, ...)
