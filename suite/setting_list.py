"""Every ``--set`` key, read from the same option dataclasses ``resolve`` parses against.

``evoboard list settings`` shows the keys that apply to one choice of task, policy, encoding,
algorithm and backend; ``settings_markdown`` renders docs/settings.md's table of every key of every
registered component, so the docs cannot drift from the code (tests/test_docs.py compares them).
"""

from __future__ import annotations

from evoboard import envs, lazy
from evoboard.agents.algorithms import ALGORITHMS
from evoboard.agents.encodings import ENCODINGS
from evoboard.agents.policies import POLICIES
from evoboard.envs.base import EpisodeOptions
from evoboard.errors import UsageError
from evoboard.suite.backends import BACKENDS, backend_class
from evoboard.suite.settings import Setting, describe_options, show_value, unknown_message
from evoboard.suite.spec import RunnerOptions, lookup


def _task_class(task: str) -> type:
    entry = lookup(envs.names(), "task", task, envs.resolve)
    try:
        return entry.load()
    except ImportError as err:
        raise UsageError(f"task {task} needs a missing package ({err.name}): pip install 'evoboard[all]'") from None


def applicable(
    task: str | None = None,
    encoding: str = "dense",
    algorithm: str = "ga",
    policy: str | None = None,
    backend: str = "local",
) -> list[Setting]:
    """The ``--set`` keys of one spec's components, with that task's standard defaults."""
    if task is None:
        parts = describe_options(EpisodeOptions, "task")
        policy = policy or "mlp"
    else:
        task_cls = _task_class(task)
        parts = describe_options(task_cls.Options, f"task {task}", envs.resolve(task).defaults)
        policy = policy or task_cls.default_policy
    if backend not in BACKENDS:
        raise UsageError(unknown_message("backend", backend, BACKENDS))
    for kind, name, registry in (
        ("policy", policy, POLICIES),
        ("encoding", encoding, ENCODINGS),
        ("algorithm", algorithm, ALGORITHMS),
    ):
        cls = lookup(registry.names(), kind, name, registry.get)
        parts += describe_options(cls.Options, f"{kind} {name}")
    parts += describe_options(RunnerOptions, "runner")
    try:
        parts += describe_options(backend_class(backend).Options, f"backend {backend}")
    except ImportError as err:
        missing = f"backend {backend} needs a missing package ({err.name})"
        raise UsageError(f'{missing}: pip install -e ".[{backend}]"') from None
    return parts


def every_setting(builtin_only: bool = False) -> list[Setting]:
    """Every key of every registered component (``builtin_only``: not the plugins'), once per component."""
    shared = {s.key for s in describe_options(EpisodeOptions, "")}
    out = describe_options(EpisodeOptions, "every task")
    families: dict[type, list[str]] = {}
    for task_id in envs.names():
        try:
            families.setdefault(envs.resolve(task_id).load().Options, []).append(task_id)
        except ImportError:
            continue  # a family whose package is missing is not listed
    families.setdefault(lazy.load("evoboard.envs.pixels:PixelOptions"), ["image tasks"])  # resolved per id, not listed
    for cls, ids in families.items():
        if cls is not EpisodeOptions:
            label = f"task {ids[0].split('/')[0]}/*" if "/" in ids[0] else "gym tasks" if len(ids) > 1 else ids[0]
            out += [s for s in describe_options(cls, label) if s.key not in shared]
    for kind, registry in (("policy", POLICIES), ("encoding", ENCODINGS), ("algorithm", ALGORITHMS)):
        for name in registry.names(builtin_only):
            out += describe_options(registry.get(name).Options, f"{kind} {name}")
    out += describe_options(RunnerOptions, "runner")
    for name in BACKENDS:
        try:
            out += describe_options(backend_class(name).Options, f"backend {name}")
        except ImportError:
            continue
    return out


def render_settings(settings: list[Setting]) -> str:
    """Plain text for a terminal: a heading per component, one line per key."""
    lines, owner = [], None
    width = max((len(s.key) for s in settings), default=0)
    for s in settings:
        if s.owner != owner:
            lines.append(f"{s.owner}:" if owner is None else f"\n{s.owner}:")
            owner = s.owner
        lines.append(f"  {s.key:{width}s}  {s.type} = {show_value(s.default)}  {s.doc}")
    return "\n".join(lines)


def settings_markdown() -> str:
    """docs/settings.md's table of every built-in ``--set`` key: key, component, type, default, meaning."""
    rows = ["| key | component | type | default | meaning |", "|---|---|---|---|---|"]
    for s in every_setting(builtin_only=True):
        doc = s.doc.replace("|", "\\|")
        rows.append(f"| `{s.key}` | {s.owner} | {s.type.replace('|', 'or')} | `{show_value(s.default)}` | {doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_markdown())
