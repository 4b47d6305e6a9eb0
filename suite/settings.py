"""Parse ``--set KEY=VALUE`` strings against the option dataclasses components declare.

Every component (task, policy, encoding, algorithm, runner) declares its settings once as a
dataclass, a docstring line under each field. Here every key is checked (with a
did-you-mean), converted to its declared type and validated by the component's own
``__post_init__``, before any work starts.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
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


@dataclasses.dataclass(frozen=True)
class Setting:
    """One ``--set`` key as ``list settings`` shows it."""

    key: str
    owner: str
    type: str
    default: Any
    doc: str


def plain(text: str) -> str:
    """Docstring text on one line, without reStructuredText markup (````x```` -> x)."""
    return " ".join(text.replace("``", "").replace("`", "").split())


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (and its bases), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):  # a field, then the string under it
            named = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            if named and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                docs[node.target.id] = plain(str(after.value.value))
    return docs


def describe_options(cls: type, owner: str, defaults: dict[str, Any] | None = None) -> list[Setting]:
    """Every field of ``cls`` as a Setting; ``defaults`` (a task's standard budget) replace declared ones."""
    docs, overrides = field_docs(cls), defaults or {}
    out = []
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            default = overrides[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        out.append(Setting(f.name, owner, kind, default, docs.get(f.name, "")))
    return out


def show_value(value: Any) -> str:
    """A default as a user writes it after ``--set KEY=``: unset, true, 64,64."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(show_value(v) for v in value) or "(empty)"
    return str(value)
