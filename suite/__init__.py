"""evoboard's suite: the run loop, CLI, leaderboard, run folders and benchmarks."""

__version__ = "0.1.0"
