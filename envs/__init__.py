"""Tasks: registry of ids, lazy construction, population evaluation. Never imports agents."""

from __future__ import annotations

from evoboard.envs import catalogue  # noqa: F401  (registers the built-in ids)
from evoboard.envs.base import Act, EpisodeOptions, Evaluation, Task
from evoboard.envs.registry import TaskEntry, names, register, resolve


def make(task_id: str, options: EpisodeOptions | None = None) -> Task:
    """Build a task; ``options`` defaults to the registered standard settings."""
    entry = resolve(task_id)
    cls = entry.load()
    return cls(task_id, options if options is not None else cls.Options(**entry.defaults))


__all__ = ["Act", "EpisodeOptions", "Evaluation", "Task", "TaskEntry", "make", "names", "register", "resolve"]
