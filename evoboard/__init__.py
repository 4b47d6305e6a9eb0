"""What every evoboard package shares and nothing else: the version, the exceptions, lazy loading.

``envs``, ``agents`` and ``suite`` may import from here; this package imports none of them.
"""

import os

__version__ = "0.1.0"

# MKL's matrix products round differently with the memory alignment of their operands unless its
# strict reproducibility mode is on (measured: the Nature CNN's 3136x512 layer on an AVX-512 CPU).
# A member's weights are views at arbitrary offsets of the population's tensors, so without it a
# member's output would depend on which others share its batch, and backends that shard members
# differently would disagree. MKL reads this at its first call, so it must be set before any
# matrix product; a user who prefers MKL's fastest path sets MKL_CBWR themselves.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
