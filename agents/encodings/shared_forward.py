"""The parents' shared forward of a population whose children differ from their parent by a small correction.

Children of one parent share its weights W0, so ``x W0^T`` (or ``conv(x, W0)``) runs once per
distinct parent over all its children's rows: one read of W0 instead of one per member. The
low-rank-perturbed (``perturbed_layers``) and sparse (``sparse_layers``) forms add each
child's own correction to this product.

Batch invariance: backends shard members differently and the actor gathers the members still
running, so a member's output must be the same bits whoever shares its batch. A BLAS matmul
picks its kernel (and so its summation order) from the number of rows: measured here (torch
2.13, one or two threads) a row's product with the Nature CNN's fc weight differs in its last
bits for 1-3 rows (and for 5-7 and 9-11 at two threads) from the same row among 16 or more.
So the rows of a shared matmul are padded with zeros to ``padded_rows`` (a multiple of 8, at
least 16), and a lone frame's convolution runs beside a zero frame (torch takes another conv
algorithm for a batch of one). Padding costs little: a shared matmul is bound by reading W0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ROW_MULTIPLE = 8
MIN_ROWS = 16
MIN_FRAMES = 2


def padded_rows(m: int) -> int:
    """The row count a shared matmul of ``m`` rows runs at: every count it runs at gives a row the same bits."""
    return max(MIN_ROWS, -(-m // ROW_MULTIPLE) * ROW_MULTIPLE)


def _pad(rows: torch.Tensor, count: int) -> torch.Tensor:
    """``rows`` (M, ...) followed by zero rows up to ``count``."""
    if rows.shape[0] >= count:
        return rows
    return torch.cat([rows, rows.new_zeros(count - rows.shape[0], *rows.shape[1:])])


@dataclass(frozen=True)
class SharedPlan:
    """Members grouped by parent: the sort order that makes each parent's members contiguous, its inverse,
    and how many members each parent has (``None`` orders: the members are already grouped)."""

    order: torch.Tensor | None
    inverse: torch.Tensor | None
    counts: list[int]

    @classmethod
    def of(cls, group: torch.Tensor, bases: int) -> SharedPlan:
        """The plan for members whose parents are ``group`` (P,) long, among ``bases`` parents."""
        counts = torch.bincount(group, minlength=bases).tolist()
        order = torch.argsort(group, stable=True)
        if bool((order == torch.arange(len(group), device=group.device)).all()):
            return cls(None, None, counts)
        return cls(order, torch.argsort(order), counts)


def shared_linear(x: torch.Tensor, base: torch.Tensor, plan: SharedPlan) -> torch.Tensor:
    """x (P, N, in) times each member's parent weight base (K, out, in): one padded matmul per parent -> (P, N, out)."""
    p, n, d = x.shape
    xs = (x if plan.order is None else x[plan.order]).reshape(p * n, d)  # rows grouped by parent
    parts, start = [], 0
    for k, count in enumerate(plan.counts):
        if count:
            rows = xs[start * n : (start + count) * n]
            parts.append((_pad(rows, padded_rows(len(rows))) @ base[k].T)[: len(rows)])
            start += count
    shared = (parts[0] if len(parts) == 1 else torch.cat(parts)).reshape(p, n, -1)
    return shared if plan.inverse is None else shared[plan.inverse]  # back to member order


def shared_conv2d(x: torch.Tensor, base: torch.Tensor, plan: SharedPlan, stride: int) -> torch.Tensor:
    """x (P, N, C, H, W) convolved with each member's parent kernel base (K, out, C, k, k), one conv per parent
    -> (P, N, out, H', W')."""
    p, n, c, h, w = x.shape
    xs = x if plan.order is None else x[plan.order]
    parts, start = [], 0
    for k, count in enumerate(plan.counts):
        if count:
            frames = xs[start : start + count].reshape(count * n, c, h, w)
            parts.append(F.conv2d(_pad(frames, MIN_FRAMES), base[k], stride=stride)[: count * n])
            start += count
    shared = (parts[0] if len(parts) == 1 else torch.cat(parts)).reshape(p, n, *parts[0].shape[1:])
    return shared if plan.inverse is None else shared[plan.inverse]
