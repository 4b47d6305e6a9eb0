"""Load ``"package.module:attribute"`` on first use, so heavy or optional imports wait until chosen."""

from __future__ import annotations

import importlib
from typing import Any


def load(entry_point: str) -> Any:
    """The attribute an entry point names; ImportError (naming the missing module) if it cannot load."""
    module, _, attribute = entry_point.partition(":")
    return getattr(importlib.import_module(module), attribute)
