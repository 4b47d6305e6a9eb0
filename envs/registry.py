"""Task ids -> task classes with their standard budgets, imported lazily.

As in gymnasium's registration, an entry names its class by a string
(``"envs.gym_task:GymTask"``), so heavy simulators load only when a task is made. Any
gymnasium id with Box observations and Box or Discrete actions is a task too, with the
env's own time limit; the ids listed here carry the budgets the suite standardises.
Other packages add tasks through the ``evoboard.tasks`` entry-point group (value: a
callable that calls ``register``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

GYM_TASK = "envs.gym_task:GymTask"


@dataclass(frozen=True)
class TaskEntry:
    """A task id, the class that runs it, and its standard settings."""

    id: str
    entry_point: str = GYM_TASK
    defaults: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def load(self) -> type:
        module, _, name = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), name)


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


# Standard budgets: one episode per member, the env's own step limit.
register("CartPole-v1", max_steps=500, note="classic control, Discrete(2), max return 500")
register("Acrobot-v1", max_steps=500, note="classic control, Discrete(3)")
register("MountainCarContinuous-v0", max_steps=999, note="classic control, Box(1)")
register("Pendulum-v1", max_steps=200, note="classic control, Box(1)")
register("HalfCheetah-v5", max_steps=1000, note="MuJoCo, Box(6)")
register("Hopper-v5", max_steps=1000, note="MuJoCo, Box(3)")
register("Walker2d-v5", max_steps=1000, note="MuJoCo, Box(6)")
register("Ant-v5", max_steps=1000, note="MuJoCo, Box(8)")
register("Humanoid-v5", max_steps=1000, note="MuJoCo, Box(17)")
register("Swimmer-v5", max_steps=1000, note="MuJoCo, Box(2)")
register("InvertedPendulum-v5", max_steps=1000, note="MuJoCo, Box(1)")
register("charlm/pydoc", "envs.charlm:CharLMTask", "char LM, pydoc_data.topics (built in), bits/char", corpus="pydoc")
register("charlm/shakespeare", "envs.charlm:CharLMTask", "char LM, Tiny Shakespeare (cached)", corpus="shakespeare")
register("charlm/file", "envs.charlm:CharLMTask", "char LM, any UTF-8 file: --set corpus_path=PATH", corpus="file")
register("digits", "envs.digits:DigitsTask", "supervised, scikit-learn 8x8 digits (bundled), test accuracy")
import envs.atari  # noqa: E402, F401  (registers every ALE/<Game>-v5 id; ale_py is imported only on make)
