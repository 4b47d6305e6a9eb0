"""Global weight pruning for lottery tickets: score, prune a fraction of what is left, rewind.

Lange & Sprekeler 2023, "Lottery Tickets in Evolutionary Optimization: On Sparse
Backpropagation-Free Trainability". Iterative pruning: train, score every weight still
kept, drop the lowest-scoring fraction globally (across layers; biases are never pruned,
only layer weights are masked), rewind the survivors to their initial values and train
again. Their ES-specific score is the signal-to-noise ratio |mu_i| / sigma_i of SNES's
search distribution; the baselines are magnitude |mu_i| with rewinding and a random mask
with re-initialisation. Scores and masks are dicts of layer name -> weight-shaped arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from evoboard.agents.encodings.base import SeedChainEncoding

METHODS = ("snr", "magnitude", "random")


def weight_blocks(encoding: SeedChainEncoding) -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """Where each layer's weight lives in a dense-style search vector: name -> (start, stop, shape)."""
    return {b.layer: (b.start, b.stop, b.shape) for b in encoding.blocks if b.role == "weight" and len(b.shape) > 1}


def by_layer(vector: np.ndarray, encoding: SeedChainEncoding) -> dict[str, np.ndarray]:
    """The weight entries of a search vector (D,), per layer in weight shape; biases and norms left out."""
    return {name: np.asarray(vector[a:b]).reshape(shape) for name, (a, b, shape) in weight_blocks(encoding).items()}


def full_mask(encoding: SeedChainEncoding) -> dict[str, np.ndarray]:
    """Every weight kept."""
    return {name: np.ones(shape, dtype=bool) for name, (_, _, shape) in weight_blocks(encoding).items()}


def scores(method: str, mean: np.ndarray, sigma: np.ndarray | None, encoding: SeedChainEncoding,
           seed: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-weight scores (higher survives): snr |mu| / sigma, magnitude |mu|, or random from ``seed``."""
    if method == "snr":
        if sigma is None:
            raise ValueError("snr pruning needs a per-parameter sigma (train with --algorithm snes)")
        return by_layer(np.abs(mean) / np.asarray(sigma), encoding)
    if method == "magnitude":
        return by_layer(np.abs(mean), encoding)
    if method == "random":
        rng = np.random.default_rng(seed)
        return {name: rng.random(shape) for name, (_, _, shape) in weight_blocks(encoding).items()}
    raise ValueError(f"unknown pruning method {method!r}; valid: {', '.join(METHODS)}")


def prune(scores: Mapping[str, np.ndarray], mask: Mapping[str, np.ndarray], keep_ratio: float = 0.8
          ) -> dict[str, np.ndarray]:  # fmt: skip
    """Keep exactly round(keep_ratio * kept) of the currently kept weights, the highest scores across all layers.

    Pruned weights stay pruned; ties are broken by layer order and position (stable).
    """
    if not 0 < keep_ratio <= 1:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    names = list(mask)
    flat_scores = np.concatenate([np.asarray(scores[n], dtype=np.float64).ravel() for n in names])
    flat_mask = np.concatenate([np.asarray(mask[n], dtype=bool).ravel() for n in names])
    kept = np.flatnonzero(flat_mask)
    keep = round(keep_ratio * len(kept))
    order = np.argsort(-np.nan_to_num(flat_scores[kept], nan=-np.inf), kind="stable")
    new = np.zeros_like(flat_mask)
    new[kept[order[:keep]]] = True
    out, at = {}, 0
    for n in names:
        size = np.asarray(mask[n]).size
        out[n] = new[at : at + size].reshape(np.asarray(mask[n]).shape)
        at += size
    return out


def rewind(init: np.ndarray, mask: Mapping[str, np.ndarray], encoding: SeedChainEncoding) -> np.ndarray:
    """The initial search vector with pruned weights zeroed: survivors keep their initial values exactly."""
    out = np.array(init, copy=True)
    for name, (a, b, _) in weight_blocks(encoding).items():
        if name in mask:
            out[a:b] = np.where(np.asarray(mask[name]).ravel(), out[a:b], 0.0)
    return out
