"""Decoded rows and their cache: what lets a generation's decode cost a number of tensor ops that does not grow with P.

A decode gathers every cached row it needs with one indexing op per cached tensor, draws all
new noise with one gather from the noise table, and mutates all children of a lineage depth
in one batched op; only the number of cached tensors and the depth of replayed lineages
(1 in a steady GA generation) set the count, never the number of members.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

Genome = tuple[int, ...]


class Rows:
    """Search vectors of some genomes: a tensor (n, D) and each genome's row in it."""

    def __init__(self, tensor: torch.Tensor, genomes: Iterable[Genome]):
        self.tensor = tensor  # (n, D)
        self.index = {g: i for i, g in enumerate(genomes)}

    def take(self, rows: Sequence[int]) -> torch.Tensor:
        """Rows ``rows`` of the tensor (len(rows), D): a view when they are consecutive, else one gather."""
        if run(rows):
            return self.tensor[rows[0] : rows[0] + len(rows)]
        return self.tensor.index_select(0, torch.as_tensor(rows, device=self.tensor.device))


def run(rows: Sequence[int]) -> bool:
    """Whether ``rows`` are consecutive ascending integers (a slice does what an index would)."""
    return len(rows) > 0 and all(r == rows[0] + i for i, r in enumerate(rows))


def gather(
    found: Sequence[tuple[Rows, int]], dims: int, device: torch.device, out: torch.Tensor | None = None,
    written: Rows | None = None,
) -> torch.Tensor:  # fmt: skip
    """The rows ``found`` names, in order: (n, D); one indexing op (and one copy) per distinct source.

    ``out``: write them there, leaving the rows ``written`` names (already in place) as they are.
    """
    sources: dict[int, tuple[Rows, list[int], list[int]]] = {}
    for position, (rows, row) in enumerate(found):
        if rows is written:
            continue
        entry = sources.setdefault(id(rows), (rows, [], []))
        entry[1].append(position)
        entry[2].append(row)
    if len(sources) == 1 and out is None:
        rows, _, picked = next(iter(sources.values()))
        return rows.take(picked)
    if out is None:
        out = torch.empty(len(found), dims, device=device)  # (n, D): every row written below
    for rows, positions, picked in sources.values():
        if run(positions):  # a block of rows: a plain copy, several times faster than index_copy_ on the CPU
            out[positions[0] : positions[0] + len(positions)] = rows.take(picked)
        else:
            out.index_copy_(0, torch.as_tensor(positions, device=device), rows.take(picked))
    return out


class DecodeCache:
    """The rows of the last ``keep`` decodes, each with the parents its children were mutated from.

    Three decodes cover a GA generation as the runner asks for it (the population, the parents
    beside it for the mutation effects, the elite candidates), so the next population's parents
    and this one's references are always found; the parents kept with each decode are what the
    references ask for, so the population before need not be kept whole.
    """

    def __init__(self, keep: int = 3):
        self.keep = keep
        self.decodes: list[list[Rows]] = []  # oldest first

    def find(self, genome: Genome) -> tuple[Rows, int] | None:
        """Where a genome's row is cached (newest first), or None."""
        for records in reversed(self.decodes):
            for rows in records:
                row = rows.index.get(genome)
                if row is not None:
                    return rows, row
        return None

    def add(self, records: list[Rows]) -> None:
        """Keep one decode's records; forget the oldest beyond ``keep``."""
        self.decodes = [*self.decodes, records][-self.keep :]
