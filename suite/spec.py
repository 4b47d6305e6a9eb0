"""RunSpec: what a run is, validated in full before any work starts.

The CLI's ``--set KEY=VALUE`` pairs are split among the components that own them (task,
policy, encoding, algorithm, runner): each key must belong to exactly one, is converted to
the type that component declares and checked by it. The resolved spec, every default
filled in, is what ``spec.json`` and the leaderboard's ``config`` column store.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoboard import envs
from evoboard.agents.algorithms import ALGORITHMS
from evoboard.agents.checkpoints import load as load_checkpoint
from evoboard.agents.encodings import ENCODINGS
from evoboard.agents.policies import POLICIES
from evoboard.envs.registry import unknown_message as unknown_task
from evoboard.errors import UsageError
from evoboard.suite.backends import BACKENDS, backend_class
from evoboard.suite.flags import flag
from evoboard.suite.settings import build_options, option_names, options_dict, unknown_message

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunnerOptions:
    """Settings of the run loop itself."""

    threads: int = 1
    """torch intra-op threads. 1 by default: on 2 cores a second torch thread contends with the
    env loop (HalfCheetah P=64 evaluation measured 0.96x the raw env with 1 thread, 0.14x with 2)."""
    eval_episodes: int = 5
    """Held-out episodes the final elite is scored on for ``final_score``."""
    mask: str | None = None
    """A weight mask (.npz of 0/1 arrays by layer, e.g. a lottery ticket) applied to every member; off when unset."""
    init: str | None = None
    """Start from trained weights (a run's elite.safetensors): every initial member is them (dense, sparse)."""
    ensemble: int | None = None
    """After each generation, score the top K children's averaged predictions as one ensemble (off when unset)."""
    tf32: bool = False
    """Let CUDA round float32 matmul and convolution inputs to TF32 (~1e-3 relative, faster on Ampere and later);
    off: full float32, as on the CPU (PyTorch's own default turns it on for cuDNN convolutions). No effect on a CPU."""

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        if self.mask is not None and not Path(self.mask).is_file():
            raise ValueError(f"mask file {self.mask} does not exist")
        if self.init is not None:  # exists, is an untampered checkpoint; its layers are checked against the policy
            load_checkpoint(self.init)
        if self.ensemble is not None and self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1 (children averaged), got {self.ensemble}")


@dataclass
class RunSpec:
    """One run: the task, the agent (policy, encoding, algorithm), the budget and the seed.

    Each field but ``settings`` is also a flag of ``evoboard run``, a key of a run file and a keyword
    of ``evoboard.run`` (``suite/flags.py``): declared here once, with its ``--help`` line.
    """

    task: str = flag(help="task id (see `evoboard list tasks`); required, here or in --config")
    encoding: str = flag("dense", help="genome-to-weights map (`evoboard list encodings`; default: {default})")
    algorithm: str = flag("ga", help="search algorithm (`evoboard list algorithms`; default: {default})")
    policy: str | None = flag(None, help="policy network (see `evoboard list policies`; default: the task's own)")
    population: int = flag(32, help="members per generation (default: {default})")
    generations: int = flag(10, help="generations to run (default: {default})")
    seed: int = flag(0, help="seed of every random draw of the run (default: {default})")
    device: str = flag(
        "auto", help="torch device; auto: cuda where torch sees it (default: {default})", choices=DEVICES
    )
    backend: str = flag(
        "local", help="where members are evaluated: local, processes (all cores), ray (default: {default})"
    )
    """Never changes results, so not part of ``config``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Raw ``--set`` values by key; resolved into the option sets below."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ResolvedSpec:
    """A validated spec with every component's options built."""

    spec: RunSpec
    task: Any
    policy: Any
    encoding: Any
    algorithm: Any
    runner: RunnerOptions
    backend: Any

    def config(self) -> dict[str, Any]:
        """The full spec, defaults included: enough to repeat the run."""
        base = self.spec.to_json()
        base.pop("settings")
        base.pop("backend")
        base["settings"] = {
            "task": options_dict(self.task),
            "policy": options_dict(self.policy),
            "encoding": options_dict(self.encoding),
            "algorithm": options_dict(self.algorithm),
            "runner": options_dict(self.runner),
        }
        return base

    def config_json(self) -> str:
        return json.dumps(self.config(), sort_keys=True)

    def saved_spec(self) -> dict[str, Any]:
        """What spec.json keeps: the config plus how it was executed (to resume; ``spec_from_saved`` inverts it)."""
        return {**self.config(), "backend": self.spec.backend, "backend_settings": options_dict(self.backend)}


def spec_from_saved(config: dict[str, Any]) -> RunSpec:
    """The RunSpec a ``saved_spec`` dict came from, every option as a ``--set`` value (KeyError/TypeError if broken)."""
    parts = [*config["settings"].values(), config.get("backend_settings", {})]
    settings = {k: v for part in parts for k, v in part.items()}
    fields = {k: v for k, v in config.items() if k not in ("settings", "backend_settings")}
    return RunSpec(**{**fields, "settings": settings})


def lookup(registry_names: list[str], kind: str, name: str, get):
    try:
        return get(name)
    except KeyError:
        raise UsageError(unknown_message(kind, name, registry_names)) from None


def resolve(spec: RunSpec) -> ResolvedSpec:
    """Check every name, number and setting of ``spec``; raise UsageError on the first problem."""
    if spec.population < 2:
        raise UsageError(f"population must be >= 2, got {spec.population}")
    if spec.generations < 1:
        raise UsageError(f"generations must be >= 1, got {spec.generations}")
    if spec.seed < 0:
        raise UsageError(f"seed must be >= 0, got {spec.seed}")
    if spec.device not in DEVICES:
        raise UsageError(f"unknown device {spec.device!r}; valid: {', '.join(DEVICES)}")
    try:
        entry = envs.resolve(spec.task)
    except KeyError:
        raise UsageError(unknown_task(spec.task)) from None
    try:
        task_cls = entry.load()
    except ImportError as err:
        raise UsageError(
            f"task {spec.task} needs a missing package ({err.name}): pip install 'evoboard[all]'"
        ) from None
    if spec.policy is None:
        spec = dataclasses.replace(spec, policy=task_cls.default_policy)
    policy_cls = lookup(POLICIES.names(), "policy", spec.policy, POLICIES.get)
    encoding_cls = lookup(ENCODINGS.names(), "encoding", spec.encoding, ENCODINGS.get)
    algorithm_cls = lookup(ALGORITHMS.names(), "algorithm", spec.algorithm, ALGORITHMS.get)
    try:
        backend_cls = lookup(sorted(BACKENDS), "backend", spec.backend, backend_class)
    except ImportError as err:
        raise UsageError(
            f'backend {spec.backend} needs a missing package ({err.name}): pip install -e ".[{spec.backend}]"'
        ) from None

    owners = {
        "task": task_cls.Options,
        "policy": policy_cls.Options,
        "encoding": encoding_cls.Options,
        "algorithm": algorithm_cls.Options,
        "runner": RunnerOptions,
        "backend": backend_cls.Options,
    }
    split: dict[str, dict[str, Any]] = {part: {} for part in owners}
    split["task"].update(entry.defaults)
    valid = sorted({name for cls in owners.values() for name in option_names(cls)})
    for key, value in spec.settings.items():
        part = next((p for p, cls in owners.items() if key in option_names(cls)), None)
        if part is None:
            raise UsageError(unknown_message("--set key", key, valid))
        split[part][key] = value
    built = {part: build_options(cls, split[part]) for part, cls in owners.items()}
    return ResolvedSpec(spec=spec, **built)


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """``["sigma=0.1", ...]`` -> ``{"sigma": "0.1"}``; a pair without ``=`` is a UsageError."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE, got {pair!r}")
        settings[key.strip()] = value.strip()
    return settings
