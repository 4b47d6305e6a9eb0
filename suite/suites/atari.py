"""The game lists of the Atari suites, read from their suite files (atari5.toml, garbus4.toml)."""

from __future__ import annotations

from evoboard.suite.suites.registry import SUITES


def games(suite: str) -> tuple[str, ...]:
    """The games of a built-in Atari suite, e.g. ("Pong", ...) for ALE/Pong-v5."""
    return tuple(spec.task.removeprefix("ALE/").removesuffix("-v5") for spec in SUITES[suite].specs)


ATARI5 = games("atari5")
GARBUS4 = games("garbus4")
