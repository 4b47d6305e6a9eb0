"""What an Atari episode's start costs: the vector env's seeded ROM reload against ``resets=snapshot``'s restore.

    python -m evoboard.suite.speed.resets [--out results] [--repeats 10] [--envs 32] [--steps 250] [--pairs 3]

Measured in one process, each a median of ``repeats``:
- a seeded reset of a one-env ``AtariVectorEnv`` slot, as ``resets=reload`` does per job (setInt
  random_seed + loadROM + reset_game: the only way its interface reseeds), and an unseeded one
  (reset_game only; the slot's RNGs run on from its last episode, so the episode depends on the slot);
- ``ALEInterface``'s loadROM and restoreState of a state cloned with its RNG (``ALEVectorInterface`` has
  neither clone nor restore);
- a ``resets=snapshot`` slot's episode start (``envs/ale_snapshot.py``): restore, FIRE, the seed's no-ops
  (up to 29 emulator frames at noop_max 30) and the first frame's resize; and the same without no-ops;
- env steps/s of ``ALEInterface`` driven from Python (4 frames and a grey screen a step) on one and on
  two Python threads: its ``act`` holds the GIL, so two threads step no faster than one;
- raw steps/s at ``envs`` envs with random actions for ``steps`` steps, alternated ``pairs`` times (medians)
  so both see the same load: ``AtariVectorEnv`` on 2 C++ threads (the baseline of ``bench throughput``)
  and the snapshot slots on one Python thread, with the vector env's preprocessing rebuilt in numpy.
Writes ``<out>/atari_resets.csv`` and ``<out>/atari_resets.md``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.speed.harness import alternate, median_time
from evoboard.suite.speed.raw import raw_atari, raw_atari_snapshot


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


def snapshot_start(game: str, repeats: int, noop_max: int) -> float:
    """Median seconds of one ``resets=snapshot`` episode start in a slot that already played, a new seed each."""
    from evoboard.envs.ale_snapshot import SnapshotSlots
    from evoboard.envs.atari import AtariOptions

    slots = SnapshotSlots(game, AtariOptions(resets="snapshot", noop_max=noop_max), 27_000)
    obs = np.zeros((1, *slots.observation_space.shape), dtype=np.uint8)
    seeds = iter(range(repeats + 1))
    slots.reset([0], [next(seeds)], obs)
    slots.step([0], np.array([1]), obs, np.zeros(1), np.zeros(1, dtype=bool))
    seconds = median_time(lambda: slots.reset([0], [next(seeds)], obs), repeats)
    slots.close()
    return seconds


def measure(game: str = "pong", repeats: int = 10, envs: int = 32, steps: int = 250, pairs: int = 3) -> list[dict]:
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
    for noop_max, unit, scale in ((30, "ms", 1e3), (0, "us", 1e6)):
        start = snapshot_start(game, 10 * repeats, noop_max)
        parts = "restore, FIRE, no-ops, resize" if noop_max else "restore, FIRE, resize"
        rows.append({"what": f"resets=snapshot episode start, noop_max {noop_max} ({parts})",
                     "value": scale * start, "unit": unit})  # fmt: skip
    rows.append({"what": "ALEInterface from Python, 1 thread", "value": python_steps([ale], 1000), "unit": "steps/s"})
    pair = [ale, loaded(1)]
    rows.append({"what": "ALEInterface from Python, 2 threads", "value": python_steps(pair, 1000), "unit": "steps/s"})
    vector, snapshot = alternate(lambda: raw_atari(game, envs, steps), lambda: raw_atari_snapshot(game, envs, steps),
                                 pairs)  # fmt: skip
    rows.append({"what": f"raw AtariVectorEnv, {envs} envs, 2 C++ threads", "value": statistics.median(vector),
                 "unit": "steps/s"})  # fmt: skip
    rows.append({"what": f"raw resets=snapshot slots, {envs} envs, 1 Python thread",
                 "value": statistics.median(snapshot), "unit": "steps/s"})  # fmt: skip
    return rows


def run(out: Path, repeats: int = 10, envs: int = 32, steps: int = 250, pairs: int = 3) -> pd.DataFrame:
    table = pd.DataFrame(measure("pong", repeats, envs, steps, pairs))
    table["machine"] = machine("cpu", 1)
    cells = [[r["what"], f"{r['value']:,.1f}", r["unit"]] for r in table.to_dict("records")]
    publish(out, "atari_resets", table, markdown_table(["Pong", "median", "unit"], cells))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evoboard.suite.speed.resets")
    parser.add_argument("--out", default="results", type=Path)
    parser.add_argument("--repeats", type=int, default=10, help="timings per reset figure (medians)")
    parser.add_argument("--envs", type=int, default=32, help="envs stepped side by side for the raw steps/s")
    parser.add_argument("--steps", type=int, default=250, help="steps per raw run")
    parser.add_argument("--pairs", type=int, default=3, help="raw runs of each driver, alternated (medians)")
    args = parser.parse_args(argv)
    print(run(args.out, args.repeats, args.envs, args.steps, args.pairs).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
