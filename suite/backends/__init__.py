"""Where a generation's members are evaluated: in this process, or spread over workers.

A backend takes genomes (seed chains: a few bytes each) and returns their Evaluation. The
local backend decodes them here; a multi-worker backend (``processes`` on this machine's cores,
``ray`` on a cluster) ships genomes to workers that decode their own shard (``shards``). Results
must not depend on the backend: the same spec and seed give the same fitness per member.
"""

from __future__ import annotations

from evoboard import lazy

BACKENDS = {
    "local": "evoboard.suite.backends.local:LocalBackend",
    "processes": "evoboard.suite.backends.processes:ProcessBackend",
    "ray": "evoboard.suite.backends.ray_actors:RayBackend",
}
"""Backend name -> its class, imported only when chosen (Ray is an optional extra)."""


def backend_class(name: str) -> type:
    """The backend's class; KeyError for an unknown name, ImportError naming the extra to install."""
    return lazy.load(BACKENDS[name])
