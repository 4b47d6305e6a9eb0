"""bfloat16 against float32 on the same members and episode seeds: how far apart the scores land.

    python -m evoboard.suite.speed.precision [--out results] [--game Frostbite] [--population 16] [--frames 4000]

For each encoding, P children of one parent play the same episode seeds twice, once with the Nature
CNN in float32 and once in bfloat16 (``--set dtype=bfloat16``); the returns are compared member by
member, and along float32's episodes the bf16 network is asked for its action too (how often they
agree). bf16 rounds each weight and activation to 8 bits of mantissa, so an action whose two best
logits are close can flip, and from there the episode differs. Writes
``results/precision.csv`` and ``results/precision.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, make_policy
from evoboard.agents.cnn import CNNOptions
from evoboard.agents.encodings import make as make_encoding
from evoboard.envs.atari import AtariOptions
from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.settings import build_options
from evoboard.suite.speed.forwards import CNN_SETTINGS


class Agreement:
    """The float32 actor, also asking the bfloat16 one on every observation: how often their actions agree."""

    def __init__(self, fp32: PopulationActor, bf16: PopulationActor):
        self.fp32, self.bf16, self.steps, self.agree = fp32, bf16, 0, 0

    def __call__(self, members: np.ndarray, obs: np.ndarray) -> np.ndarray:
        actions = self.fp32(members, obs)
        self.steps += len(actions)
        self.agree += int((actions == self.bf16(members, obs)).sum())
        return actions


def compare(task, name: str, settings: dict, population: int, seeds: list[int]) -> dict:
    """Returns (P, episodes) of the same children in float32 and bfloat16, and how they differ."""
    actors = {}
    for dtype in ("float32", "bfloat16"):
        policy = make_policy("nature_cnn", task.observation_space, task.action_space, CNNOptions(dtype=dtype))
        cls = make_encoding(name, policy).__class__
        encoding = make_encoding(name, policy, build_options(cls.Options, settings), "cpu")
        encoding.decode([(0,)])
        params = encoding.decode([(0, 1000 + i) for i in range(population)])
        actors[dtype] = PopulationActor(policy, params, torch.device("cpu"))
    both = Agreement(actors["float32"], actors["bfloat16"])
    a = task.evaluate(both, population, seeds).returns  # (P, episodes), float32's trajectories
    b = task.evaluate(actors["bfloat16"], population, seeds).returns
    label = name + "".join(f" {k}={v}" for k, v in settings.items())
    return {"encoding": label, "population": population, "episodes": len(seeds),
            "action_agreement": both.agree / both.steps, "equal_returns": float(np.mean(a == b)),
            "mean_abs_diff": float(np.mean(np.abs(a - b))),
            "fp32_mean": float(a.mean()), "bf16_mean": float(b.mean()),
            "fp32_best": float(a.mean(1).max()), "bf16_best": float(b.mean(1).max())}  # fmt: skip


def run(
    out: Path, game: str = "Frostbite", population: int = 16, frames: int = 4000, seeds: tuple[int, ...] = (0, 1)
) -> pd.DataFrame:
    torch.set_num_threads(1)
    task = envs.make(f"ALE/{game}-v5", AtariOptions(max_frames=frames))
    rows = [compare(task, name, settings, population, list(seeds)) for name, settings in CNN_SETTINGS]
    task.close()
    table = pd.DataFrame(rows)
    table["task"], table["frames_per_episode"] = task.id, frames
    table["machine"] = machine("cpu", 1)
    header = ["encoding", "P x episodes", "same action", "equal returns", "mean abs diff", "fp32 mean", "bf16 mean",
              "fp32 best", "bf16 best"]  # fmt: skip
    cells = [[r["encoding"], f"{r['population']} x {r['episodes']}", f"{r['action_agreement']:.1%}",
              f"{r['equal_returns']:.0%}",
              f"{r['mean_abs_diff']:.2f}", f"{r['fp32_mean']:.2f}", f"{r['bf16_mean']:.2f}", f"{r['fp32_best']:.1f}",
              f"{r['bf16_best']:.1f}"] for r in rows]  # fmt: skip
    publish(out, "precision", table, markdown_table(header, cells))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evoboard.suite.speed.precision")
    parser.add_argument("--out", default="results", type=Path)
    parser.add_argument("--game", default="Frostbite", help="ALE game name, e.g. Frostbite, Pong")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--frames", type=int, default=4000)
    args = parser.parse_args(argv)
    run(args.out, args.game, args.population, args.frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
