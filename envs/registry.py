"""Task ids -> task classes with their standard budgets, imported lazily.

As in gymnasium's registration, an entry names its class by a string
(``"evoboard.envs.gym_task:GymTask"``), so heavy simulators load only when a task is made. Any
gymnasium id is a task too, with the env's own time limit: one in gymnasium's registry, one
a package registers through the ``gymnasium.envs`` entry-point group (which gymnasium
before 1.0 loaded itself), or gymnasium's ``module:EnvId`` form, which imports ``module``
(the package's own registration) first. The ids listed here carry the budgets the suite
standardises. Other packages add tasks through the ``evoboard.tasks`` entry-point group
(value: a callable that calls ``register``).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from evoboard import lazy

GYM_TASK = "evoboard.envs.gym_task:GymTask"
PIXEL_TASK = "evoboard.envs.pixels:PixelGymTask"


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
_gym_plugins_loaded = False


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
    """The entry for ``task_id``; raises KeyError if neither registered nor a gymnasium id.

    A gymnasium id whose observations are images runs as ``PIXEL_TASK`` (grey, resized,
    stacked frames for a CNN); telling needs one env made and closed here.
    """
    _load_plugins()
    if task_id in _TASKS:
        return _TASKS[task_id]
    if not _is_gym_id(task_id):
        raise KeyError(task_id)
    from evoboard.envs.spaces import is_image

    return TaskEntry(task_id, PIXEL_TASK if is_image(_observation_space(task_id)) else GYM_TASK)


def _is_gym_id(task_id: str) -> bool:
    """Whether gymnasium can make ``task_id``, importing ``module`` of ``module:EnvId`` first."""
    import gymnasium as gym

    module, sep, env_id = task_id.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError:
            return False
    if env_id not in gym.registry:
        _load_gym_plugins()
    return env_id in gym.registry


def _load_gym_plugins() -> None:
    """Run the ``gymnasium.envs`` entry points once: packages that register ids there."""
    global _gym_plugins_loaded
    if not _gym_plugins_loaded:
        _gym_plugins_loaded = True
        for ep in entry_points(group="gymnasium.envs"):
            loaded = ep.load()
            if callable(loaded):
                loaded()


def _observation_space(task_id: str):
    """The observation space of ``task_id``'s env, or None if it cannot be made here (the task says why)."""
    import gymnasium as gym

    from evoboard.envs.quiet import quiet_mujoco

    quiet_mujoco()
    try:
        env = gym.make(task_id, disable_env_checker=True)
    except Exception:  # a missing simulator or bad kwargs: GymTask's own construction reports it
        return None
    space = env.observation_space
    env.close()
    return space


def unknown_message(task_id: str) -> str:
    """One line: the unknown id, the closest evoboard and gymnasium ids, and where to look."""
    import gymnasium as gym

    module, sep, env_id = task_id.rpartition(":")
    if sep and importlib.util.find_spec(module.split(".")[0]) is None:
        return f"unknown task {task_id!r}: no module {module!r} is installed; see `evoboard list tasks`"
    close = difflib.get_close_matches(env_id, sorted({*names(), *gym.registry}), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"unknown task {task_id!r}{hint}; see `evoboard list tasks` (any gymnasium id works, or module:EnvId)"
