"""Command-line flags declared once, as dataclass fields (CleanRL's ``Args``).

``evoboard run``'s flags are the fields of ``RunSpec`` (what a run is, ``suite/spec.py``) and of
``RunFiles`` (what it reads and writes beside, ``suite/config.py``), each declared with ``flag``:
its type, default and ``--help`` line. The CLI's flags (``add_flags``), a run file's typed keys
(``flag_types``) and ``evoboard.run``'s keywords all come from these fields, so a new flag is
one field.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def flag(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    before: str | None = None,
    in_file: bool = True,
) -> Any:
    """A dataclass field that is also a flag: ``help`` is its line in ``--help`` (``{default}`` there: the
    field's default); ``before`` names the flag it is listed ahead of; ``in_file``: a run file may set it too."""
    meta = {"help": help, "choices": choices, "metavar": metavar, "before": before, "in_file": in_file}
    return dataclasses.field(default=default, metadata={"flag": meta})


def flag_fields(*classes: type) -> list[dataclasses.Field]:
    """The flag fields of ``classes`` in ``--help`` order: as declared, each with ``before`` ahead of that flag."""
    fields = [f for cls in classes for f in dataclasses.fields(cls) if "flag" in f.metadata]
    ordered = [f for f in fields if f.metadata["flag"]["before"] is None]
    for f in fields:
        if f.metadata["flag"]["before"] is not None:
            ordered.insert([g.name for g in ordered].index(f.metadata["flag"]["before"]), f)
    return ordered


def flag_type(cls: type, name: str) -> type:
    """The declared type of field ``name`` of ``cls``, ``X | None`` as ``X`` (a flag left out is None)."""
    annotation = typing.get_type_hints(cls)[name]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def flag_types(cls: type) -> dict[str, type]:
    """The flags of ``cls`` a run file may set, with their types."""
    flags = [f for f in dataclasses.fields(cls) if "flag" in f.metadata and f.metadata["flag"]["in_file"]]
    return {f.name: flag_type(cls, f.name) for f in flags}


def add_flags(parser: argparse.ArgumentParser, *classes: type) -> None:
    """One ``--NAME`` per flag field of ``classes``, defaults None (a run file fills what was not given)."""
    owner = {f.name: cls for cls in classes for f in dataclasses.fields(cls)}
    for f in flag_fields(*classes):
        meta, kind = f.metadata["flag"], flag_type(owner[f.name], f.name)
        parser.add_argument(
            f"--{f.name}",
            type=None if kind is str else kind,
            choices=meta["choices"],
            metavar=meta["metavar"],
            help=meta["help"].format(default=f.default),
        )
