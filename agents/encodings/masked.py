"""A weight mask that shrinks the search: the search vector holds only the surviving weights.

Lange & Sprekeler 2023, "Lottery Tickets in Evolutionary Optimization". Their code
(es-lottery, ``MaskedParameterReshaper``) flattens only the parameters a mask keeps, and the
strategy is built on that count, so SNES's sigma learning rate, the noise and the search
dimension all follow the surviving D. Evoboard does the same for the encodings whose search
vector is the network's weights (those that declare ``searches_weights``: ``dense``, ``sparse``,
and any plugin that does): ``masked(encoding, mask)`` is that encoding's class with ``MaskedSearch``
mixed in before it, every masked layer's weight block cut down to its kept entries (biases and norms
stay whole). Its mutation is the wrapped encoding's own, run on the shorter vector (a sparse
child mutates a fraction p of a layer's *surviving* parameters); ``to_params`` scatters the
vector into the full one with pruned weights fixed at exactly zero. A member's initial vector
is the unmasked encoding's for the same seed, restricted to the survivors, so training again
with a mask rewinds every surviving weight to its initial value (Frankle & Carbin's rewind).

Where evoboard differs: es-lottery masks biases too; here only layer weights are masked. Other
encodings (factors, low-rank perturbations) do not search weights one by one: ``masked`` refuses
them, and a run with ``--set mask=PATH`` applies their mask in the forward pass only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import numpy as np
import torch

from evoboard.agents.encodings import declaring
from evoboard.agents.encodings.base import SeedChainEncoding
from evoboard.agents.layers import PopulationParams, TensorSpec
from evoboard.agents.masks import check_mask


class MaskedSearch(SeedChainEncoding):
    """Mixin before a weight-searching encoding: its search vector restricted to a mask's kept weights."""

    def __init__(self, policy, options, device: torch.device, mask: Mapping[str, np.ndarray]):
        check_mask(mask, policy)
        base = next(c for c in type(self).__mro__[1:] if c is not MaskedSearch and issubclass(c, SeedChainEncoding))
        self.unmasked: SeedChainEncoding = base(policy, options, device)  # the full layout, init and forms
        self.weight_mask = {name: np.asarray(m, dtype=bool) for name, m in mask.items()}
        self.kept_index = self._kept_index().to(self.unmasked.device)  # (D,) full-vector position of each entry
        super().__init__(policy, options, device)

    def _kept_index(self) -> torch.Tensor:
        """Positions in the full search vector that survive, in order: masked weights' kept entries, all else."""
        parts = []
        for block in self.unmasked.blocks:
            if block.role == "weight" and block.layer in self.weight_mask:
                parts.append(block.start + torch.from_numpy(np.flatnonzero(self.weight_mask[block.layer].ravel())))
            else:
                parts.append(torch.arange(block.start, block.stop))
        return torch.cat(parts)

    def tensor_shapes(self) -> list[tuple[str, TensorSpec]]:
        """The unmasked encoding's tensors, a masked weight cut to its kept entries (a flat block)."""
        out = []
        for layer, t in super().tensor_shapes():
            if t.role == "weight" and layer in self.weight_mask:
                t = dataclasses.replace(t, shape=(int(self.weight_mask[layer].sum()),))
            out.append((layer, t))
        return out

    @property
    def full_dims(self) -> int:
        """Length of the unmasked search vector."""
        return self.unmasked.search_dims

    def expand(self, z: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """Search vectors z (P, D) -> full vectors (P, D_full), pruned weights ``fill`` (autograd flows to z)."""
        full = torch.full((z.shape[0], self.full_dims), fill, dtype=z.dtype, device=z.device)
        return full.index_copy(1, self.kept_index.to(z.device), z)

    def restrict(self, full: torch.Tensor) -> torch.Tensor:
        """Full vectors (..., D_full) -> the surviving entries (..., D)."""
        return full[..., self.kept_index.to(full.device)]

    def init_vectors(self, seeds) -> torch.Tensor:
        """The unmasked inits of ``seeds`` restricted to the survivors (a rewind): (C, D); checkpoints as the
        base says."""
        seeds = list(seeds)
        if self.root is not None or any(seed < 0 for seed in seeds):
            return super().init_vectors(seeds)
        return self.restrict(self.unmasked.init_vectors(seeds))

    def to_params(self, z: torch.Tensor) -> PopulationParams:
        """The unmasked encoding's forms of the full vectors, pruned weights exactly zero."""
        return self.unmasked.to_params(self.expand(z))


@functools.cache
def masked_class(cls: type[SeedChainEncoding]) -> type[MaskedSearch]:
    """``cls`` searching only a mask's kept weights: ``MaskedSearch`` mixed in before it (one class per ``cls``)."""
    doc = f"{cls.__name__} mutating only the weights a mask keeps."
    return type(f"Masked{cls.__name__}", (MaskedSearch, cls), {"__doc__": doc, "__module__": __name__})


def shrinks(encoding) -> bool:
    """Whether a mask can shrink ``encoding``'s search (its search vector is the weights, not yet masked)."""
    return encoding.searches_weights and not isinstance(encoding, MaskedSearch)


def masked(encoding: SeedChainEncoding, mask: Mapping[str, np.ndarray]) -> MaskedSearch:
    """``encoding`` searching only the weights ``mask`` keeps; ValueError (one line) for other encodings."""
    if not shrinks(encoding):
        valid = ", ".join(declaring("searches_weights"))
        raise ValueError(f"a mask shrinks the search of encodings that search weights ({valid}), not {encoding.name}")
    if encoding.root is not None:
        raise ValueError("mask the encoding before rooting it at a checkpoint (start_from)")
    return masked_class(type(encoding))(encoding.policy, encoding.options, encoding.device, mask)
