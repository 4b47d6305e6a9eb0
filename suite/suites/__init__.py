"""Named benchmark suites: the registry and the built-in catalogues, which register on import."""

from suite.suites import atari, builtin, reference  # noqa: F401  (each registers its suites)
from suite.suites.registry import SUITES, Suite, register_suite

__all__ = ["SUITES", "Suite", "register_suite"]
