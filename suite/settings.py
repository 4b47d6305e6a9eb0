"""Parse ``--set KEY=VALUE`` strings against the option dataclasses components declare.

Every component (task, policy, encoding, algorithm, runner) declares its settings once as a
dataclass, a docstring line under each field. Here every key is checked (with a
did-you-mean), converted to its declared type and validated by the component's own
``__post_init__``, before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

from evoboard.errors import UsageError

OptionsT = TypeVar("OptionsT")


def option_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def build_options(cls: type[OptionsT], settings: dict[str, Any]) -> OptionsT:
    """An option dataclass from raw settings (CLI strings or typed values from code)."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(settings) - set(option_names(cls)))
    if unknown:
        raise UsageError(unknown_message("setting", unknown[0], option_names(cls)))
    values = {key: parse_value(key, value, hints[key]) for key, value in settings.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def options_dict(options: Any) -> dict[str, Any]:
    """An option dataclass as a JSON-ready dict (tuples become lists)."""
    return {f.name: _jsonable(getattr(options, f.name)) for f in dataclasses.fields(options)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def unknown_message(kind: str, name: str, valid: typing.Iterable[str]) -> str:
    """One line naming the bad name, the closest valid one, and all valid ones."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


def parse_value(key: str, value: Any, annotation: Any) -> Any:
    """Convert a CLI string to the declared type; typed values are checked, not converted."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return parse_value(key, value, inner[0])
    if origin is tuple:
        item_type = args[0]
        if isinstance(value, str):
            text = value.strip().strip("()[]")
            parts = [p for p in text.replace(",", " ").split() if p]
        else:
            parts = list(value) if isinstance(value, (list, tuple)) else [value]
        return tuple(parse_value(key, p, item_type) for p in parts)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"setting {key!r} must be true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise UsageError(f"setting {key!r} must be {annotation.__name__}, got {value!r}")
        try:
            number = float(value)  # accepts "1e3", "nan", "inf"; impossible values are the option's to refuse
            if annotation is float:
                return number
            if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                return int(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        except (ValueError, TypeError, OverflowError):
            raise UsageError(f"setting {key!r} must be {annotation.__name__}, got {value!r}") from None
    if annotation is str:
        return str(value)
    return value
