"""Task ids -> task classes with their standard budgets, imported lazily.

As in gymnasium's registration, an entry names its class by a string
(``"envs.gym_task:GymTask"``), so heavy simulators load only when a task is made. Any
gymnasium id with Box observations and Box or Discrete actions is a task too, with the
env's own time limit; the ids listed here carry the budgets the suite standardises.
Other packages add tasks through the ``evoboard.tasks`` entry-point group (value: a
callable that calls ``register``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from evoboard import lazy

GYM_TASK = "envs.gym_task:GymTask"


@dataclass(frozen=True)
class TaskEntry:
    """A task id, the class that runs it, and its standard settings."""

    id: str
    entry_point: str = GYM_TASK
    defaults: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def load(self) -> type:
        return lazy.load(self.entry_point)


_TASKS: dict[str, TaskEntry] = {}
_plugins_loaded = False


def register(task_id: str, entry_point: str = GYM_TASK, note: str = "", **defaults: Any) -> None:
    """Add a task id with its standard settings (episodes, max_steps, ...)."""
    _TASKS[task_id] = TaskEntry(task_id, entry_point, dict(defaults), note)


def _load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        for ep in entry_points(group="evoboard.tasks"):
            ep.load()()


def names() -> list[str]:
    """Registered task ids (any other gymnasium id works too)."""
    _load_plugins()
    return sorted(_TASKS)


def resolve(task_id: str) -> TaskEntry:
    """The entry for ``task_id``; raises KeyError if neither registered nor a gymnasium id."""
    _load_plugins()
    if task_id in _TASKS:
        return _TASKS[task_id]
    import gymnasium as gym

    if task_id in gym.registry:
        return TaskEntry(task_id)
    raise KeyError(task_id)
