"""Atari 2600 games from pixels: every ROM ale-py ships, as ``ALE/<Game>-v5`` population tasks.

The settings follow Machado et al. 2018 ("Revisiting the Arcade Learning Environment"):
sticky actions (0.25), game over ends the episode, 108k frames at most, and (optionally)
the full 18-action set; preprocessing is the DQN one (Mnih et al. 2015): frameskip 4 with
a max over the last two frames, 84x84 grey, 4 frames stacked, up to 30 no-ops at reset.
Rewards are NOT clipped: fitness and the human-normalized score are in game points.
The final score is human-normalized only for runs whose settings follow the protocol stated
in ``evoboard.envs.atari_scores`` (a frame budget that truncates games gives ``score_kind=return``).

Each (member, episode) job runs in its own one-env ``ale_py.AtariVectorEnv`` (one C++
worker thread each). ale-py 0.12.1's multi-env vectorizer steps every sub-env on every
call (``send`` takes exactly ``num_envs`` actions), so a member whose episode ended would
keep emulating; one vectorizer per slot lets exactly the running slots step: send to all
of them, then receive from all, so the emulators still run side by side in C++. A slot
whose job ended takes the next pending job with an explicit seeded reset (``evoboard.envs.slots``);
the NEXT_STEP autoreset never fires, and no reset frame is ever counted. Measured here: as many env
steps/s as one 8- or 32-env vectorizer with 2 threads.

``resets=snapshot`` (opt-in) swaps these slots for ``evoboard.envs.ale_snapshot``'s: ALEInterface
emulators driven from Python, each episode restored from one saved state instead of a ROM reload,
spread over ``env_processes`` worker processes (``evoboard.envs.ale_workers``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evoboard.envs.atari_scores import REFERENCE_SCORES, human_normalized, normalization_blocker
from evoboard.envs.base import Act, EpisodeOptions, Evaluation, Task
from evoboard.envs.episodes import EpisodeBook
from evoboard.envs.slots import SlotDriver, run_jobs
from evoboard.options import bounded

TWO_PLAYER_ONLY = frozenset({"combat", "joust", "maze_craze", "warlords"})
"""ROMs that ale-py registers no ``-v5`` id for: they have no single-player mode."""
SEED_MODULUS = 2**31  # ALE seeds are C ints; evoboard's episode seeds are 32-bit unsigned
LANE_SLOTS = 4
"""Slots a lane needs at least: a smaller lane costs more in policy calls than its overlap saves (measured: Pong
P=8, snapshot, bf16 lowrank-perturb ran 961 steps/s in 4 lanes of 2 slots against 1,704 in 2 lanes of 4)."""
RESETS = ("reload", "snapshot")
"""Episode-start drivers: ale-py's vector env with a seeded ROM reload, or ALEInterface snapshots (opt-in)."""


@dataclass
class AtariOptions(EpisodeOptions):
    """Episode budget plus the ALE settings of Machado et al. 2018 (all recorded in the spec)."""

    max_steps: int | None = bounded(27_000, ge=1)
    """Env steps per episode at most: 27,000 steps x frameskip 4 = 108k frames (30 minutes of play)."""
    max_frames: int | None = bounded(None, ge=1)
    """Emulator frames per episode at most; when set, max_steps becomes max_frames // frameskip."""
    sticky_actions: float = bounded(0.25, ge=0, le=1)
    """Probability that the emulator repeats the previous action instead of the new one (Machado et al. 2018)."""
    full_action_space: bool = False
    """All 18 joystick actions instead of the game's minimal set (Machado et al. 2018 use all 18)."""
    noop_max: int = bounded(30, ge=0)
    """Up to this many no-op frames after each reset, a random number from the episode seed (Mnih et al. 2015)."""
    frameskip: int = bounded(4, ge=1)
    """Emulator frames per env step: the action repeats and the rewards add up."""
    frame_stack: int = bounded(4, ge=1)
    """Grey frames stacked into one observation."""
    screen_size: int = bounded(84, ge=1)
    """Observation height and width in pixels (grey)."""
    maxpool: bool = True
    """Max over the last two frames of a step, so flickering sprites stay visible."""
    fire_reset: bool = True
    """Press FIRE after each reset where the action set has FIRE (ale-py's ``use_fire_reset``), which games
    such as Breakout need to start."""
    episodic_life: bool = False
    """End the episode at the first life lost; off: game over ends it (Machado et al. 2018)."""
    reward_clipping: bool = False
    """Clip rewards to [-1, 1] (a DQN training device); off so fitness and scores are game points."""
    env_threads: int | None = bounded(None, ge=1)
    """Env steps in flight at once (each slot has one C++ worker); default: every running slot, in two lanes that
    overlap the policy with the emulators (set, the steps are windowed and the lanes off; reload only)."""
    env_processes: int | None = bounded(None, ge=1)
    """resets=snapshot only: processes that step the slots side by side (default: one per core; 1: the run's own)."""
    resets: str = "reload"
    """How an episode starts: reload (ale-py's vector env reloads the ROM, ~0.1 s) or snapshot (opt-in: ALEInterface
    slots restore one saved state, the episode's no-ops and sticky draws from its seed; docs/atari-speed.md)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resets not in RESETS:
            raise ValueError(f"resets must be one of {', '.join(RESETS)}, got {self.resets!r}")
        if self.resets == "snapshot" and self.screen_size > 160:
            raise ValueError(f"resets=snapshot only shrinks the 210x160 screen: screen_size must be <= 160, got "
                             f"{self.screen_size}")  # fmt: skip
        if self.max_frames is not None and self.max_frames < self.frameskip:
            raise ValueError(f"max_frames must be >= frameskip ({self.frameskip}), got {self.max_frames}")

    @property
    def step_budget(self) -> int:
        """Env steps per episode at most, after max_frames."""
        if self.max_frames is not None:
            return self.max_frames // self.frameskip
        return self.max_steps if self.max_steps is not None else 27_000


def game_name(rom: str) -> str:
    """ale-py's CamelCase game name of a ROM id: ``battle_zone`` -> ``BattleZone``."""
    return rom.title().replace("_", "")


@functools.lru_cache(maxsize=1)
def shipped_roms() -> tuple[str, ...]:
    """ROM ids in the installed ale-py wheel, read from its ROM manifest without importing it.

    Without ale-py, the 57 games that have reference scores (making one says what to install).
    """
    spec = importlib.util.find_spec("ale_py")
    manifest = Path(spec.origin).parent / "roms" / "md5.json" if spec and spec.origin else None
    if manifest is None or not manifest.exists():
        return tuple(sorted(REFERENCE_SCORES))
    with open(manifest) as f:
        return tuple(sorted(name.removesuffix(".bin") for name in json.load(f)))


def task_ids() -> dict[str, str]:
    """``ALE/<Game>-v5`` id -> ROM id for every single-player ROM shipped."""
    return {f"ALE/{game_name(rom)}-v5": rom for rom in shipped_roms() if rom not in TWO_PLAYER_ONLY}


class VectorSlots(SlotDriver):
    """The default slots: one single-env ``AtariVectorEnv`` per slot, each job started by a seeded reset."""

    def __init__(self, rom: str, options: AtariOptions, max_steps: int):
        from ale_py.vector_env import AtariVectorEnv

        self.rom, self.options, self.max_steps, self._vector_env = rom, options, max_steps, AtariVectorEnv
        self.slots: list[Any] = []  # one single-env AtariVectorEnv per slot
        probe = self._new_slot()
        self.slots.append(probe)
        self.observation_space = probe.single_observation_space  # Box(0, 255, (stack, H, W), uint8)
        self.action_space = probe.single_action_space
        self._one = np.ones(1, dtype=np.float32)  # paddle strength, unused by joystick actions
        self._resetters: ThreadPoolExecutor | None = None

    def _new_slot(self):
        o = self.options
        return self._vector_env(
            self.rom,
            1,
            num_threads=1,
            # ALE's own cap, in frames after the reset; equal to the step budget, so both end together.
            max_num_frames_per_episode=self.max_steps * o.frameskip,
            repeat_action_probability=o.sticky_actions,
            full_action_space=o.full_action_space,
            img_height=o.screen_size,
            img_width=o.screen_size,
            grayscale=True,
            stack_num=o.frame_stack,
            frameskip=o.frameskip,
            maxpool=o.maxpool,
            noop_max=o.noop_max,
            episodic_life=o.episodic_life,
            reward_clipping=o.reward_clipping,
            use_fire_reset=o.fire_reset,
        )

    def reset(self, slots: Sequence[int], seeds: Sequence[int], obs: np.ndarray) -> None:
        """Seeded resets of ``slots``, written into ``obs``; side by side, as ale-py releases the GIL.

        A seeded reset reloads the ROM (~0.1 s of CPU here, about 150 env steps), the price of
        every job starting from its episode seed alone, whatever slot it runs in: ale-py 0.12.1
        reseeds its RNGs only through that reload, and 80% of it is building a colour-averaging
        table (``PhosphorBlend::makeAveragePalette``) the vector env never uses. A slot not made
        yet is made here, on this thread, while the workers reset the slots before it: ale-py's
        constructor loads the ROM too (another ~0.1 s) and holds the GIL, so the two overlap only
        this way (measured: a first evaluation at P=32, 31 new slots, spends 1.2 s less on them).
        """

        def one(k: int) -> None:
            o, _ = self.slots[slots[k]].ale.reset([0], [int(seeds[k]) % SEED_MODULUS])
            obs[slots[k]] = o[0]

        if len(slots) == 0:
            return
        if len(slots) == 1 and slots[0] < len(self.slots):
            one(0)
            return
        if self._resetters is None:
            workers = self.options.env_threads or len(os.sched_getaffinity(0))
            self._resetters = ThreadPoolExecutor(workers, thread_name_prefix="ale-reset")
        started = []
        for k, slot in enumerate(slots):
            while len(self.slots) <= slot:
                self.slots.append(self._new_slot())
            started.append(self._resetters.submit(one, k))
        for done in started:
            done.result()

    @property
    def lanes(self) -> int:
        """Lanes ``run_jobs`` may overlap: the emulators step on C++ threads unless ``env_threads`` windows them.
        Two: at Pong P=32, 4 lanes ran 2,107 lowrank steps/s against 2,267 in 2 (the reload resets dominate)."""
        return 1 if self.options.env_threads else 2

    def start(self, active: list[int], actions: np.ndarray, obs, rewards, ended) -> Callable[[], None]:
        """Send the ``active`` slots their actions; the function returned waits for them and writes obs in place.

        With ``env_threads``, at most that many are in flight and the steps are done before this returns.
        """
        window = self.options.env_threads or len(active)
        actions = np.ascontiguousarray(actions, dtype=np.int64).reshape(-1)  # (A,)

        def collect(k: int) -> None:
            o, r, terminated, truncated, _ = self.slots[active[k]].ale.recv()
            obs[active[k]], rewards[k], ended[k] = o[0], r[0], terminated[0] or truncated[0]

        for k, slot in enumerate(active):
            if k >= window:
                collect(k - window)
            self.slots[slot].ale.send(actions[k : k + 1], self._one)

        def wait() -> None:
            for k in range(max(0, len(active) - window), len(active)):
                collect(k)

        if window < len(active):  # windowed: done before returning
            wait()
            return lambda: None
        return wait

    def close(self) -> None:
        if self._resetters is not None:
            self._resetters.shutdown()
            self._resetters = None
        for slot in self.slots:
            slot.close()
        self.slots.clear()


class AtariTask(Task):
    """One Atari game as a population task; its final score is human-normalized where the game
    has reference scores and the settings follow their protocol (``evoboard.envs.atari_scores``)."""

    Options = AtariOptions
    score_kind = "human_normalized"
    frames_per_step = 4
    default_policy = "nature_cnn"

    def __init__(self, task_id: str, options: AtariOptions):
        super().__init__(task_id, options)
        try:
            import ale_py  # noqa: F401  (each driver imports the part it uses)
        except ImportError as err:
            raise ImportError(f"task {task_id} needs ale-py: pip install 'evoboard[atari]'", name="ale_py") from err
        rom = task_ids().get(task_id)
        if rom is None:
            raise ValueError(f"unknown Atari task {task_id!r}; ids look like ALE/Pong-v5")
        self.rom = rom
        # Why the final score is the raw mean return (None: human-normalized), from the settings alone.
        self.raw_score_reason = "no reference scores" if rom not in REFERENCE_SCORES else normalization_blocker(options)
        if self.raw_score_reason is not None:
            self.score_kind = "return"  # known from the settings before the run: one kind per variant
        self.frames_per_step = options.frameskip
        self.max_steps = options.step_budget
        if options.resets == "snapshot":
            from evoboard.envs.ale_snapshot import SnapshotSlots
            from evoboard.envs.ale_workers import SnapshotWorkers, process_count

            processes = process_count(options)
            self._driver: SlotDriver = (
                SnapshotWorkers(rom, options, self.max_steps, processes)
                if processes > 1
                else SnapshotSlots(rom, options, self.max_steps)
            )
        else:
            self._driver = VectorSlots(rom, options, self.max_steps)
        self.observation_space = self._driver.observation_space
        self.action_space = self._driver.action_space

    def evaluate(
        self, act: Act, members: int, seeds: Sequence[int], elite_trace: np.ndarray | None = None
    ) -> Evaluation:
        book = EpisodeBook(members, seeds, self.options, self.max_steps, elite_trace)
        slots = min(book.jobs, self.options.max_envs)
        obs = np.empty((slots, *self.observation_space.shape), dtype=np.uint8)  # (slots, stack, H, W)

        def reset_slots(refill: list[int], seeds: list[int]) -> None:
            self._driver.reset(refill, seeds, obs)  # makes the slots it lacks

        def step_slots(active: list[int], jobs: np.ndarray, actions: np.ndarray, valid: np.ndarray):
            # Fresh outcome arrays each call: another lane's step may be in flight meanwhile.
            rewards, ended = np.zeros(len(active)), np.ones(len(active), dtype=bool)  # not stepped: 0, ended
            ok = np.flatnonzero(valid)  # a member with an invalid action is not stepped
            if len(ok) == 0:
                return rewards, ended
            got_rewards, got_ended = np.zeros(len(ok)), np.zeros(len(ok), dtype=bool)
            wait = self._driver.start([active[k] for k in ok], np.asarray(actions)[ok], obs, got_rewards, got_ended)

            def outcome() -> tuple[np.ndarray, np.ndarray]:
                wait()
                rewards[ok], ended[ok] = got_rewards, got_ended
                return rewards, ended

            return outcome

        lanes = max(1, min(self._driver.lanes, slots // LANE_SLOTS))
        timings = run_jobs(book, slots, act, self.action_space, obs, reset_slots, step_slots, lanes)
        result = book.result(self.frames_per_step)
        result.timings.update(timings)
        return result

    def final_score(self, act: Act, seeds: Sequence[int]) -> tuple[float, Evaluation]:
        """The mean held-out return, human-normalized when the settings allow it (``score_kind``).

        Per-episode check: a normalized score is only read from episodes that no rule cut.
        """
        evaluation = self.evaluate(act, 1, seeds)
        if self.score_kind == "human_normalized" and evaluation.cut.any():
            raise RuntimeError(f"{self.id}: a held-out episode was cut; its score cannot be human-normalized")
        return self.score(evaluation.returns[0]), evaluation

    def score(self, returns: np.ndarray) -> float:
        """Mean return, human-normalized ((score - random) / (human - random)) when ``score_kind`` says so."""
        raw = float(np.mean(returns))
        return human_normalized(self.rom, raw) if self.score_kind == "human_normalized" else raw

    def close(self) -> None:
        self._driver.close()
