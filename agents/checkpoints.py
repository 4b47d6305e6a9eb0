"""Trained weights on disk: one member's tensors plus JSON metadata, safe to load from anywhere.

A checkpoint is a safetensors file: named tensors (``<layer>.<role>``, e.g. ``fc0.weight``)
and a string header, so loading it parses a JSON header and copies raw bytes; nothing is
ever unpickled. Its *content hash* is the SHA-256 of the tensors (names, dtypes, shapes and
bytes, in name order) and of the metadata; the hash is stored in the header and checked on
every load, so a file edited after it was written (a flipped byte, a changed tensor, an
edited score) is refused with one line, as is anything that is not a safetensors file.

A checkpoint names itself inside a seed chain (Such et al. 2017 genomes: init link, then
mutation seeds) by a *checkpoint link*: a negative int32 derived from its content hash,
``-(1 + int(sha256[:8], 16) mod (2**31 - 1))``. Algorithms draw seeds in [0, 2**31), so a
negative first link can never be a seed: it always means "start from this checkpoint".

Export works for every encoding (each form's ``materialize()`` gives dense weights). Import
as a starting point (``--set init=PATH``) needs an encoding whose search vector is the flat
weights themselves, in layer order: an encoding that declares ``searches_weights`` (``dense``, ``sparse``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evoboard.agents.encodings import declaring
from evoboard.agents.layers import LayerSpec, PopulationParams
from evoboard.errors import CheckpointRefused

FORMAT = "evoboard-weights/1"


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as err:
        raise ImportError("weight checkpoints need safetensors: pip install safetensors") from err
    return safetensors.torch


def content_hash(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> str:
    """SHA-256 over every tensor (name, dtype, shape, bytes; name order) and the metadata as sorted JSON."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps(dict(metadata), sort_keys=True).encode())
    return h.hexdigest()


def checkpoint_link(sha256: str) -> int:
    """The negative genome link naming a checkpoint: -(1 + int(sha256[:8], 16) mod (2**31 - 1))."""
    return -(1 + int(sha256[:8], 16) % (2**31 - 1))


def layer_tensors(layers: tuple[LayerSpec, ...], params: PopulationParams, member: int = 0) -> dict[str, torch.Tensor]:
    """One member's dense weights by ``<layer>.<role>``, from any encoding's forms (via ``materialize()``)."""
    out = {}
    for layer in layers:
        dense = params[layer.name].materialize()
        for spec in layer.tensors():
            out[f"{layer.name}.{spec.role}"] = getattr(dense, spec.role)[member].detach().float().cpu().clone()
    return out


def describe_layers(layers: tuple[LayerSpec, ...]) -> list[list]:
    """The layer list stored in metadata: [name, kind, in, out, kernel, stride] each."""
    return [[ly.name, ly.kind, ly.in_features, ly.out_features, ly.kernel, ly.stride] for ly in layers]


@dataclass(frozen=True)
class Checkpoint:
    """Loaded, verified weights: tensors by ``<layer>.<role>``, metadata, content hash and genome link."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    sha256: str
    path: Path | None = None

    @property
    def link(self) -> int:
        return checkpoint_link(self.sha256)

    def check_layers(self, layers: tuple[LayerSpec, ...]) -> None:
        """CheckpointRefused unless every tensor of ``layers`` is here with the right shape (and nothing else)."""
        wanted = {f"{ly.name}.{t.role}": tuple(t.shape) for ly in layers for t in ly.tensors()}
        where = self.path or "checkpoint"
        missing = sorted(set(wanted) - set(self.tensors))
        extra = sorted(set(self.tensors) - set(wanted))
        if missing or extra:
            raise CheckpointRefused(
                f"{where} does not match the policy's layers (missing {missing[:3]}, unexpected {extra[:3]}); "
                f"it was saved from policy {self.metadata.get('policy', '?')}"
            )
        for name, shape in wanted.items():
            if tuple(self.tensors[name].shape) != shape:
                raise CheckpointRefused(f"{where}: {name} has shape {tuple(self.tensors[name].shape)}, policy {shape}")

    def search_vector(self, encoding) -> torch.Tensor:
        """The flat weights in ``encoding``'s block order (D,): its search vector for dense and sparse encodings."""
        if not encoding.searches_weights:
            raise CheckpointRefused(
                f"init=PATH needs an encoding whose search vector is the weights "
                f"({', '.join(declaring('searches_weights'))}); encoding {encoding.name} searches other coordinates"
            )
        self.check_layers(encoding.policy.layers)
        z = torch.empty(encoding.search_dims, device=encoding.device)
        for block in encoding.blocks:
            z[block.start : block.stop] = self.tensors[f"{block.layer}.{block.role}"].reshape(-1).to(z)
        return z


def save(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> Checkpoint:
    """Write ``tensors`` and JSON-ready ``metadata`` as a safetensors file (write-then-rename); returns it loaded."""
    st = _safetensors()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, **metadata}
    digest = content_hash(tensors, meta)
    tmp = path.with_name(f".{path.name}.tmp")
    st.save_file(tensors, str(tmp), metadata={"evoboard": json.dumps(meta, sort_keys=True), "sha256": digest})
    tmp.replace(path)
    return Checkpoint(dict(tensors), dict(meta), digest, path)


def load(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint; CheckpointRefused (one line) for anything but an untampered evoboard file."""
    st = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise CheckpointRefused(f"checkpoint {path} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = st.load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError, OSError, ValueError...
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointRefused(f"checkpoint {path} is not a safetensors file of tensors ({first})") from None
    try:
        meta = json.loads(header["evoboard"])
        stored = header["sha256"]
    except (KeyError, json.JSONDecodeError, TypeError):
        raise CheckpointRefused(f"checkpoint {path} has no evoboard metadata (not written by evoboard)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointRefused(f"checkpoint {path} has format {meta.get('format')!r}, expected {FORMAT}")
    actual = content_hash(tensors, meta)
    if actual != stored:
        raise CheckpointRefused(f"checkpoint {path} fails its content hash (edited or corrupted after it was saved)")
    return Checkpoint(tensors, meta, actual, path)
