"""Runs as TOML tables: ``evoboard run --config run.toml`` and the runs of a suite file.

A table takes the same keys as ``evoboard run``'s flags (``task``, ``population``, ...) and
every ``--set`` key, side by side::

    task = "CartPole-v1"
    population = 16
    generations = 5
    sigma = 0.05        # a --set key, typed as TOML

A key that is neither a flag nor a setting of the chosen components is refused with a
did-you-mean, before anything is written. The flags are ``RunSpec``'s fields and ``RunFiles``'
(``suite/flags.py``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoboard.errors import UsageError
from evoboard.suite.flags import flag, flag_types
from evoboard.suite.settings import parse_value, unknown_message
from evoboard.suite.spec import RunSpec
from evoboard.suite.tracking import LOGGERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class RunFiles:
    """``evoboard run``'s flags beside the spec's: the run file it starts from, where it writes, what else logs it."""

    config: str | None = flag(
        None,
        help="a TOML run file with the same keys as these flags and --set",
        metavar="FILE",
        before="task",
        in_file=False,
    )
    out: str = flag("results", help="output folder: leaderboard.csv and runs/ (default: {default})", before="device")
    log: str | None = flag(None, help="also log each generation's history row (default: none)", choices=LOGGERS)


SPEC_TYPES: dict[str, type] = flag_types(RunSpec)
"""The RunSpec fields a table may set, with their types."""
RUN_ONLY = tuple(flag_types(RunFiles))
"""Keys of a run file that are flags of ``evoboard run`` but not part of the spec."""


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; UsageError (one line) if it is missing or malformed."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path} is not valid TOML: {err}") from None
    except UnicodeDecodeError as err:  # TOML is UTF-8; tomllib decodes the whole file before parsing it
        raise UsageError(
            f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})"
        ) from None


def spec_from_table(table: dict[str, Any], where: str, allowed: tuple[str, ...] = tuple(SPEC_TYPES)) -> RunSpec:
    """A RunSpec from one table: ``allowed`` spec keys become fields, every other key a setting.

    Names and settings are checked later (``check_keys``, ``resolve``): built-in suites load at
    import without importing any task.
    """
    if "task" not in table:
        raise UsageError(f'{where} names no task (task = "CartPole-v1", for example)')
    fields, settings = {}, {}
    for key, value in table.items():
        if key in allowed:
            fields[key] = parse_value(key, value, SPEC_TYPES[key])
        elif key in SPEC_TYPES or key in RUN_ONLY:
            raise UsageError(f"{where}: {key} cannot be set here (valid: {', '.join(allowed)})")
        elif isinstance(value, dict):
            raise UsageError(f"{where}: {key} is a table; settings take a value (e.g. {key} = 0.1)")
        else:
            settings[key] = value
    return RunSpec(**fields, settings=settings)


def check_keys(spec: RunSpec, where: str, flags: tuple[str, ...] = tuple(SPEC_TYPES)) -> None:
    """UsageError with a did-you-mean for an unknown task or a setting no component of ``spec`` declares."""
    from evoboard import envs
    from evoboard.envs.registry import unknown_message as unknown_task
    from evoboard.suite.setting_list import applicable  # imports the component registries

    try:
        envs.resolve(spec.task)
    except KeyError:  # the close matches, as `evoboard run` gives them, not the list of every id
        raise UsageError(f"{where}: " + unknown_task(spec.task)) from None
    declared = {s.key for s in applicable(spec.task, spec.encoding, spec.algorithm, spec.policy, spec.backend)}
    for key in spec.settings:
        if key not in declared:
            raise UsageError(f"{where}: " + unknown_message("key", key, [*flags, *declared]))


def run_file(path: str) -> tuple[RunSpec, dict[str, Any]]:
    """``run --config``: the file's spec (keys checked) and its ``out``/``log`` values."""
    table = read_toml(path)
    extra = {key: table.pop(key) for key in RUN_ONLY if key in table}
    for key, value in extra.items():
        if not isinstance(value, str):
            raise UsageError(f"{path}: {key} must be a string, got {value!r}")
    spec = spec_from_table(table, path)
    check_keys(spec, path, (*SPEC_TYPES, *RUN_ONLY))
    return spec, extra
