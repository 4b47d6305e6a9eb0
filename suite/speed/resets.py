"""What an Atari episode's start costs in ale-py, and why a snapshot cannot replace the ROM reload.

    python -m evoboard.suite.speed.resets [--out results] [--repeats 10]

Measured in one process, each a median of ``repeats``:
- a seeded reset of a one-env ``AtariVectorEnv`` slot, as ``envs/atari.py`` does per job (setInt
  random_seed + loadROM + reset_game: the only way its interface reseeds), and an unseeded one
  (reset_game only; the slot's RNGs run on from its last episode, so the episode depends on the slot);
- ``ALEInterface``'s loadROM and restoreState of a state cloned with its RNG (the snapshot the issue
  asks for; ``ALEVectorInterface`` has neither clone nor restore);
- env steps/s of ``ALEInterface`` driven from Python (4 frames and a grey screen a step) on one and on
  two Python threads: its ``act`` holds the GIL, so two threads step no faster than one;
- raw ``AtariVectorEnv`` steps/s at 32 envs on 2 C++ threads (the baseline of ``bench throughput``).
Writes ``results/atari_resets.csv`` and ``results/atari_resets.md``.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.speed.harness import median_time
from evoboard.suite.speed.raw import raw_atari


def python_steps(ales: list, steps: int) -> float:
    """Env steps/s of ``ales`` (ALEInterface each) stepped on one Python thread apiece: 4 frames + grey screen."""

    def work(ale) -> None:
        screen = np.empty((210, 160), np.uint8)
        action = ale.getMinimalActionSet()[0]
        for _ in range(steps):
            for _ in range(4):
                ale.act(action)
            ale.getScreenGrayscale(screen)
            if ale.game_over():
                ale.reset_game()

    threads = [threading.Thread(target=work, args=(ale,)) for ale in ales]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(ales) * steps / (time.perf_counter() - t0)


def measure(game: str = "pong", repeats: int = 10) -> list[dict]:
    import ale_py
    from ale_py import roms
    from ale_py.vector_env import AtariVectorEnv

    rows = []
    slot = AtariVectorEnv(game, 1, num_threads=1, repeat_action_probability=0.25, reward_clipping=False)
    slot.reset(seed=0)
    seeds = iter(range(1, 10 * repeats))
    seeded = median_time(lambda: slot.ale.reset(np.array([0]), np.array([next(seeds)])), repeats)
    unseeded = median_time(lambda: slot.ale.reset(np.array([0]), np.array([-1])), repeats)
    slot.close()
    rows.append({"what": "AtariVectorEnv seeded reset (ROM reload)", "value": 1e3 * seeded, "unit": "ms"})
    rows.append({"what": "AtariVectorEnv unseeded reset (slot-dependent)", "value": 1e3 * unseeded, "unit": "ms"})

    def loaded(seed: int):
        ale = ale_py.ALEInterface()
        ale.setInt("random_seed", seed)
        ale.setFloat("repeat_action_probability", 0.25)
        ale.loadROM(roms.get_rom_path(game))
        return ale

    ale = loaded(0)
    load = median_time(lambda: ale.loadROM(roms.get_rom_path(game)), max(3, repeats // 3))
    state = ale.cloneState(include_rng=True)
    restore = median_time(lambda: ale.restoreState(state), 100 * repeats)
    rows.append({"what": "ALEInterface loadROM", "value": 1e3 * load, "unit": "ms"})
    rows.append({"what": "ALEInterface restoreState (state cloned with its RNG)", "value": 1e6 * restore, "unit": "us"})
    rows.append({"what": "ALEInterface from Python, 1 thread", "value": python_steps([ale], 1000), "unit": "steps/s"})
    pair = [ale, loaded(1)]
    rows.append({"what": "ALEInterface from Python, 2 threads", "value": python_steps(pair, 1000), "unit": "steps/s"})
    rows.append({"what": "raw AtariVectorEnv, 32 envs, 2 C++ threads", "value": raw_atari(game, 32, 250),
                 "unit": "steps/s"})  # fmt: skip
    return rows


def run(out: Path, repeats: int = 10) -> pd.DataFrame:
    table = pd.DataFrame(measure("pong", repeats))
    table["machine"] = machine("cpu", 1)
    cells = [[r["what"], f"{r['value']:,.1f}", r["unit"]] for r in table.to_dict("records")]
    publish(out, "atari_resets", table, markdown_table(["Pong", "median", "unit"], cells))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evoboard.suite.speed.resets")
    parser.add_argument("--out", default="results", type=Path)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    run(args.out, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
