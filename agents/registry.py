"""Name -> component registries that also load plugins from Python entry points.

Built-ins register with a decorator; another installed package adds components through
an entry-point group (``evoboard.encodings``, ``evoboard.algorithms``) and then appears in
``evoboard list`` and runs like a built-in, without editing this suite.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Components of one kind by name; entry-point plugins are loaded on first lookup.

    ``get`` raises ``KeyError`` for an unknown name; the CLI turns that into a one-line
    message listing ``names()``.
    """

    def __init__(self, kind: str, group: str):
        self.kind, self.group = kind, group
        self._items: dict[str, T] = {}
        self._plugins: set[str] = set()  # names that came from entry points
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@ENCODINGS.register("dense")``."""

        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()
                self._plugins.add(ep.name)

    def names(self, builtin_only: bool = False) -> list[str]:
        """Every registered name; ``builtin_only``: without the installed plugins'."""
        self._load_plugins()
        return sorted(n for n in self._items if not (builtin_only and n in self._plugins))

    def get(self, name: str) -> T:
        self._load_plugins()
        if name not in self._items:
            raise KeyError(name)
        return self._items[name]
