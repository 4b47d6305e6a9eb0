"""What every evoboard package shares and nothing else: the version, the exceptions, lazy loading.

``envs``, ``agents`` and ``suite`` may import from here; this package imports none of them at
import time. The Python API (``evoboard.run``, ``evoboard.leaderboard``, ``evoboard.RunResult``)
lives in ``evoboard.suite.api`` and loads on first use through the module ``__getattr__`` below:
the one place the shared leaf reaches up a layer, lazily, so ``import evoboard`` stays light
(no torch) and the layering holds at import time.
"""

import os

from evoboard import lazy

__version__ = "0.1.0"

# MKL's matrix products round differently with the memory alignment of their operands unless its
# strict reproducibility mode is on (measured: the Nature CNN's 3136x512 layer on an AVX-512 CPU).
# A member's weights are views at arbitrary offsets of the population's tensors, so without it a
# member's output would depend on which others share its batch, and backends that shard members
# differently would disagree. MKL reads this at its first call, so it must be set before any
# matrix product; a user who prefers MKL's fastest path sets MKL_CBWR themselves.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

API = {name: f"evoboard.suite.api:{name}" for name in ("run", "leaderboard", "RunResult")}
"""The Python API's names, loaded (with torch and the registries) on first use."""
__all__ = ["__version__", *API]


def __getattr__(name: str):
    """``evoboard.run`` and the rest of ``API``: imported from ``evoboard.suite.api`` when first asked for."""
    if name not in API:
        raise AttributeError(f"module 'evoboard' has no attribute {name!r}")
    value = lazy.load(API[name])
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
