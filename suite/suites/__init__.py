"""Named benchmark suites: the registry, the built-in suite files (``*.toml``) and procedures."""

from evoboard.suite.suites.files import builtin_files, load_suite
from evoboard.suite.suites.registry import SUITES, Suite, add_suite, register_suite

for _path in builtin_files():  # lists of runs, read exactly as a user's suite file is
    add_suite(load_suite(_path))

from evoboard.suite.suites import atari, builtin  # noqa: E402, F401  (game lists; procedures register on import)

__all__ = ["SUITES", "Suite", "add_suite", "load_suite", "register_suite"]
