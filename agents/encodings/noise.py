"""The shared noise table: every seed's noise is a slice of one fixed table, the same on every device.

Salimans et al. 2017 (openai/evolution-strategies-starter, ``SharedNoiseTable``) and Such et
al. 2017 (uber-research/deep-neuroevolution) drew one large table of Gaussian noise from a
fixed seed and made a seed an offset into it, so a worker turns a seed into noise by reading,
not by generating. Evoboard does the same, for a second reason: a generator on the device is
not the same function of the seed everywhere (CUDA's ``randn`` splits its stream by the GPU's
SM count above ~250k elements, and a CPU's vectorised Box-Muller rounds its ``log`` and ``cos``
differently from CUDA's), while reading a table is.

Why a seed gives the same numbers on every device, by construction:
- the table is made once, on the CPU, by a CPU ``torch.Generator`` seeded with ``TABLE_SEED``:
  Mersenne-Twister integers (the same on every machine), turned into normals in float64 and
  rounded to float32, so a libm that differs by an ulp in float64 almost never moves a float32
  entry; ``TABLE_SHA256`` pins the result, a test checks it, and a process whose table differs
  warns (its genomes would not replay elsewhere). It does not depend on the thread count (the
  CPU generator fills serially) nor on any device: other devices receive a copy. Drawing it
  takes 1.5-3 s on two cores, so the first process keeps it in ``$XDG_CACHE_HOME/evoboard``
  (checked against ``TABLE_SHA256`` whenever it is read; a mismatch draws it again).
- a seed's offset is ``splitmix64(seed) mod TABLE_SIZE``, integer arithmetic on the CPU (numpy
  uint64, wrapping), so it depends on the seed alone, not on the population, the member's
  position or the device;
- reading row c of a batch is a copy of entries ``offset(seeds[c]) + j`` (cyclic), the same
  bits whatever else is in the batch.
What an encoding computes from the noise is then elementwise IEEE arithmetic, one rounding a
kernel (a mul, then an add: no fused multiply-add, which one device may round once and another
twice, and no reduction whose order a device chooses), so the decoded weights are bit-identical.

Where evoboard differs: both reference codes draw a random offset per perturbation from a
worker's RNG; here the offset is a hash of the seed, so a seed chain alone names every offset.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

TABLE_SIZE = 2**25
"""Entries of the table (float32, 128 MiB): offsets are uniform over it; slices longer than it wrap."""
TABLE_SEED = 20171218
"""Seed of the CPU generator that draws the table (the date of Such et al.'s deep GA preprint)."""
TABLE_SHA256 = "917481cf277f920783d669c35dfe5319b5f44775e85bd7070dfd3439d60e8552"
"""SHA-256 of the table's float32 bytes (little-endian) on the platform it was pinned on."""
_CHUNK = 2**20  # float64 normals drawn at a time (a multiple of 16, so the chunks equal one draw)

_tables: dict[torch.device, torch.Tensor] = {}  # device -> the table extended cyclically, as long as needed


def build_table() -> torch.Tensor:
    """The table (TABLE_SIZE,) float32 on the CPU: N(0, 1) drawn in float64 from ``TABLE_SEED``, rounded."""
    generator = torch.Generator(device="cpu").manual_seed(TABLE_SEED)
    table = torch.empty(TABLE_SIZE, dtype=torch.float32)
    for start in range(0, TABLE_SIZE, _CHUNK):
        table[start : start + _CHUNK] = torch.randn(_CHUNK, dtype=torch.float64, generator=generator)
    return table


def cache_path() -> Path:
    """Where the drawn table is kept between processes: ``$XDG_CACHE_HOME/evoboard`` or ``~/.cache/evoboard``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "evoboard" / f"noise-table-{TABLE_SHA256[:16]}.f32"


def load_table() -> torch.Tensor:
    """The reference table: read from the cache when its digest checks, else drawn (and cached if possible)."""
    path = cache_path()
    try:
        cached = torch.from_numpy(np.fromfile(path, dtype="<f4"))
        if len(cached) == TABLE_SIZE and digest(cached) == TABLE_SHA256:
            return cached
    except (OSError, ValueError):
        pass
    drawn = build_table()
    if digest(drawn) != TABLE_SHA256:
        warnings.warn(
            "this torch draws another noise table than evoboard's reference, so genomes decode to other "
            "weights here than elsewhere (evoboard/agents/encodings/noise.py, TABLE_SHA256)",
            RuntimeWarning,
            stacklevel=3,
        )
        return drawn
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")
        drawn.numpy().astype("<f4").tofile(partial)
        os.replace(partial, path)  # atomic: a concurrent reader sees the whole file or none
    except OSError:
        pass  # a read-only home: draw it in every process
    return drawn


def digest(table: torch.Tensor) -> str:
    """SHA-256 of a CPU float32 table's bytes."""
    return hashlib.sha256(memoryview(table.numpy()).cast("B")).hexdigest()


def table(device: torch.device | str, length: int = TABLE_SIZE) -> torch.Tensor:
    """The table on ``device``, extended cyclically to at least ``length`` entries (entry i is table[i mod
    TABLE_SIZE]); made once per process on the CPU, copied once per device, cached."""
    device = torch.device(device)
    have = _tables.get(device)
    if have is not None and len(have) >= length:
        return have
    cpu = _tables.get(torch.device("cpu"))
    if cpu is None:
        cpu = load_table()
    if len(cpu) < length:
        base = cpu[:TABLE_SIZE]
        whole, rest = divmod(length, TABLE_SIZE)
        cpu = torch.cat([base] * whole + [base[:rest]])
    _tables[torch.device("cpu")] = cpu
    _tables[device] = cpu if device.type == "cpu" else cpu.to(device)
    return _tables[device]


def offsets(seeds: Sequence[int] | np.ndarray) -> np.ndarray:
    """Each seed's offset into the table (int64, in [0, TABLE_SIZE)): splitmix64's finaliser of the seed."""
    x = np.asarray(seeds, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(TABLE_SIZE)).astype(np.int64)


def windows(starts: torch.Tensor, dims: int, device: torch.device, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``table[starts[c] : starts[c] + dims]`` (C, dims), one gather; ``starts`` (C,) int64 on ``device``.

    Each start is below TABLE_SIZE; a row reads on cyclically: entry j is table[(start + j) mod TABLE_SIZE].
    """
    tab = table(device, TABLE_SIZE + dims)
    rows = torch.as_strided(tab, (len(tab) - dims + 1, dims), (1, 1))  # row s = entries s .. s + dims - 1
    return torch.index_select(rows, 0, starts, out=out) if out is not None else rows.index_select(0, starts)


def noise_rows(
    seeds: Sequence[int], dims: int, device: torch.device | str, skip: int = 0, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Standard normal noise of each seed: (C, dims), row c = entries offset(seeds[c]) + skip + j of the table
    (written into ``out`` when given)."""
    device = torch.device(device)
    starts = torch.as_tensor((offsets(seeds) + skip) % TABLE_SIZE, device=device)
    return windows(starts, dims, device, out)


def noise(seed: int, dims: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal vector (dims,) of ``seed`` alone: its slice of the table."""
    return noise_rows([seed], dims, device)[0]
