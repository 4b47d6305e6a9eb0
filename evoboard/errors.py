"""Every exception evoboard raises on purpose, in one place, under one base the CLI catches.

Each class says how the CLI reports it: the word before its one-line message and the exit
code (2: the user's input is wrong; 1: the run could not finish). The built-in bases beside
``EvoboardError`` (ValueError, RuntimeError) stay, so handlers written for those still match.
"""

from __future__ import annotations

from typing import ClassVar


class EvoboardError(Exception):
    """Base of every evoboard exception: ``except EvoboardError`` catches all that evoboard raises on purpose."""

    label: ClassVar[str] = "error"
    """The word the CLI prints before the message (``evoboard: error: ...``)."""
    exit_code: ClassVar[int] = 1
    """The CLI's exit status for it."""


class UsageError(EvoboardError, ValueError):
    """Bad user input: the CLI prints its one-line message and exits 2."""

    exit_code = 2


class CheckpointRefused(EvoboardError, ValueError):
    """A weights file that is unreadable, not tensors, tampered with, or for another network."""

    exit_code = 2


class CheckpointError(EvoboardError, ValueError):
    """A run folder's checkpoint or spec is unreadable, edited or corrupted."""

    exit_code = 2


class LeaderboardError(EvoboardError, ValueError):
    """The leaderboard file exists but is not a valid evoboard leaderboard."""

    exit_code = 2


class RunFailed(EvoboardError, RuntimeError):
    """Too many members of a generation failed to trust its ranking; the last checkpoint stands."""

    label = "run failed"


class RayHeadLost(RunFailed):
    """The driver lost the Ray cluster; the checkpoint of the last finished generation stands."""


class WorkerLost(EvoboardError):
    """One worker is gone (crashed, killed, its node died): replace it and re-run its shard."""


class WriteFailed(EvoboardError, RuntimeError):
    """A run's file could not be written (disk full, read-only, folder gone); nothing half-written stays.

    Not an OSError, so no handler for unreadable files swallows it. ``intact`` says what
    survives on disk (the runner adds its last checkpoint); the CLI prints one line, exits 1.
    """

    label = "write failed"

    def __init__(self, path: object, reason: str, intact: str = ""):
        super().__init__(f"cannot write {path}: {reason}" + (f"; {intact}" if intact else ""))
        self.path, self.reason, self.intact = path, reason, intact

    def saying(self, intact: str) -> WriteFailed:
        """The same failure, with what is intact on disk."""
        return WriteFailed(self.path, self.reason, intact)
