"""Every exception evoboard raises on purpose, in one place; the CLI maps each to its exit code."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad user input: the CLI prints its one-line message and exits 2."""


class CheckpointRefused(ValueError):
    """A weights file that is unreadable, not tensors, tampered with, or for another network."""


class CheckpointError(ValueError):
    """A run folder's checkpoint or spec is unreadable, edited or corrupted."""


class LeaderboardError(ValueError):
    """The leaderboard file exists but is not a valid evoboard leaderboard."""


class RunFailed(RuntimeError):
    """Too many members of a generation failed to trust its ranking; the last checkpoint stands."""


class RayHeadLost(RunFailed):
    """The driver lost the Ray cluster; the checkpoint of the last finished generation stands."""


class WorkerLost(Exception):
    """One worker is gone (crashed, killed, its node died): replace it and re-run its shard."""


class WriteFailed(RuntimeError):
    """A run's file could not be written (disk full, read-only, folder gone); nothing half-written stays.

    Not an OSError, so no handler for unreadable files swallows it. ``intact`` says what
    survives on disk (the runner adds its last checkpoint); the CLI prints one line, exits 1.
    """

    def __init__(self, path: object, reason: str, intact: str = ""):
        super().__init__(f"cannot write {path}: {reason}" + (f"; {intact}" if intact else ""))
        self.path, self.reason, self.intact = path, reason, intact

    def saying(self, intact: str) -> WriteFailed:
        """The same failure, with what is intact on disk."""
        return WriteFailed(self.path, self.reason, intact)
