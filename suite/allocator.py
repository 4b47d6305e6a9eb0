"""Keep freed memory in the process: glibc malloc settings applied once at start-up.

By default glibc serves every allocation above its mmap threshold (at most 32 MiB) with a
fresh mmap and unmaps it on free, and trims the heap top back to the OS. A population
forward allocates and frees the same large temporaries every step, so each one is faulted
back in page by page: on a P=64 char-LM GA run a third of the CPU time went to the kernel.
Turning mmap off for ordinary allocations and never trimming keeps those pages mapped
for reuse (peak RSS grows by what would have been returned). It changes no numbers, so it
is recorded nowhere in results. ``EVOBOARD_MALLOC=default`` leaves glibc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV = "EVOBOARD_MALLOC"
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
SETTINGS = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1}  # no mmap'd chunks; never trim the heap top
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply ``SETTINGS`` through mallopt once per process; False where off, not glibc, or refused."""
    global _applied
    if _applied is None:
        _applied = os.environ.get(ENV, "keep") != "default" and _mallopt(SETTINGS)
    return _applied


def _mallopt(settings: dict[int, int]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in settings.items())
