"""evoboard's suite: the run loop, CLI, run folders; the board, backends, suites, studies and speed benchmarks."""

from evoboard import __version__

__all__ = ["__version__"]
