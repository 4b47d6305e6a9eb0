"""Named benchmark suites: lists of run specs run with ``evoboard bench NAME``.

Other task families add their suites here with ``register_suite`` (e.g. Atari's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from suite.spec import RunSpec


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    specs: tuple[RunSpec, ...]

    def for_seeds(self, seeds: int) -> list[RunSpec]:
        """Every spec once per seed 0..seeds-1."""
        return [replace(spec, seed=seed) for seed in range(seeds) for spec in self.specs]


SUITES: dict[str, Suite] = {}


def register_suite(name: str, description: str, specs: list[RunSpec]) -> None:
    SUITES[name] = Suite(name, description, tuple(specs))


register_suite(
    "smoke",
    "a minute of tiny GA runs on CartPole, Pendulum and HalfCheetah (checks an install)",
    [
        RunSpec("CartPole-v1", population=16, generations=5),
        RunSpec("Pendulum-v1", population=16, generations=3),
        RunSpec("HalfCheetah-v5", population=8, generations=2, settings={"max_steps": 200}),
    ],
)
register_suite(
    "control",
    "dense GA on five MuJoCo tasks at the standard 1000-step budget",
    [
        RunSpec(task, population=64, generations=20)
        for task in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5")
    ],
)
import suite.atari_suites  # noqa: E402, F401  (registers atari5, garbus4, atari-smoke)
import suite.reference_suites  # noqa: E402, F401  (registers encodings-control, encodings-charlm, early-termination)
