"""Atari env slots on ``ale_py.ALEInterface`` whose episodes start from one snapshot (``--set resets=snapshot``).

The opt-in alternative to ``AtariTask``'s vector-env slots, whose seeded reset reloads the ROM
(~0.1 s: docs/atari-speed.md). Each slot loads the ROM once, with ALE's own sticky actions off
and a fixed ALE seed; the state after the first ``reset_game`` is cloned once (with its RNGs) and
every episode starts by restoring it (tens of microseconds). Everything random in an episode is
drawn from ``numpy.random.default_rng(episode seed)`` alone: first the number of no-ops, then one
sticky-action draw per emulator frame (FIRE and no-op frames included). So an episode is a function
of its seed: the same returns in whatever slot, population and order it runs.

Preprocessing is the vector env's (ale-py 0.12.1, ``src/ale/vector/preprocessed_env.cpp``): FIRE
after the reset where the action set has it, then up to ``noop_max - 1`` single no-op frames
(one fewer after FIRE); frameskip with rewards summed; the grey screens of a step's last two frames
max-pooled; resized by area to ``screen_size``; ``frame_stack`` frames stacked, oldest first and
zeros after a reset. Sticky actions act per frame as in ALE: with probability ``sticky_actions``
the emulator keeps the action it applied on the previous frame (NOOP at the start).

One difference: the resize. The vector env calls OpenCV's ``cv::resize(INTER_AREA)``; opencv is
not a dependency here, so ``AreaResize`` applies OpenCV's area weights (``computeResizeAreaTab``)
as a fixed linear map in float32 and rounds to nearest. It is not guaranteed bit-identical to
OpenCV (summation and FMA may differ in the last bit, so a pixel can be one grey level apart);
``tests/test_atari_snapshot.py`` measures it against the vector env on the same frames.

``ALEInterface.act`` holds the GIL, so the slots step one after another on the calling thread;
``evoboard.envs.ale_workers`` spreads them over worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import ale_py
import gymnasium as gym
import numpy as np
from ale_py import roms

from evoboard.envs.slots import SlotDriver

if TYPE_CHECKING:
    from evoboard.envs.atari import AtariOptions

ALE_SEED = 0
"""ALE's own seed in every slot. Its RNG decides nothing (sticky actions are drawn here), but the
snapshot keeps it, so a restore also resets it."""
FIRE, NOOP = ale_py.Action.FIRE, ale_py.Action.NOOP
RESIZE_CHUNK = 8
"""Slots stepped between two resizes: their raw frames are still in cache when resized."""


def area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA weights along one axis (``computeResizeAreaTab`` in ``resize.cpp``).

    Returns source indices and float32 weights, each (dst, taps); unused taps have weight 0.
    """
    scale = 1.0 / (dst / src)  # as OpenCV computes it: 1 / inv_scale
    rows = []
    for d in range(dst):
        start, stop = d * scale, d * scale + scale
        cell = min(scale, src - start)
        last = min(math.floor(stop), src - 1)
        first = min(math.ceil(start), last)
        row = [(first - 1, (first - start) / cell)] if first - start > 1e-3 else []
        row += [(s, 1.0 / cell) for s in range(first, last)]
        if stop - last > 1e-3:
            row.append((last, min(stop - last, 1.0, cell) / cell))
        rows.append(row)
    index = np.zeros((dst, max(map(len, rows))), dtype=np.intp)
    weight = np.zeros(index.shape, dtype=np.float32)
    for d, row in enumerate(rows):
        for k, (s, w) in enumerate(row):
            index[d, k], weight[d, k] = s, w
    return index, weight


class AreaResize:
    """Grey frames (A, H, W) uint8 -> (A, size, size) uint8: OpenCV's area weights as a fixed linear map.

    Columns first, then rows, each a sum over its taps in OpenCV's order, in float32, rounded half to
    even as ``saturate_cast<uchar>`` does. Shrinks only: OpenCV's INTER_AREA interpolates when enlarging.
    """

    def __init__(self, height: int, width: int, size: int):
        if size > min(height, width):
            raise ValueError(f"the area resize only shrinks: screen_size must be <= {min(height, width)}, got {size}")
        self.cols, self.rows = area_taps(width, size), area_taps(height, size)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        # Each pass gathers whole rows (contiguous), so the frames are transposed around it: 4x faster than
        # gathering columns. Weights sum to 1, so the rounded sums stay within 0..255.
        index, weight = self.cols
        columns = np.ascontiguousarray(frames.transpose(0, 2, 1))  # (A, W, H)
        across = columns[:, index[:, 0]] * weight[:, 0, None]  # (A, size, H) float32
        for k in range(1, index.shape[1]):
            across += columns[:, index[:, k]] * weight[:, k, None]
        across = np.ascontiguousarray(across.transpose(0, 2, 1))  # (A, H, size)
        index, weight = self.rows
        out = across[:, index[:, 0]] * weight[:, 0, None]  # (A, size, size)
        for k in range(1, index.shape[1]):
            out += across[:, index[:, k]] * weight[:, k, None]
        return np.rint(out, out=out).astype(np.uint8)


class Snapshot(NamedTuple):
    """The state every episode starts from, and its grey screen (restoring a state does not redraw it)."""

    state: Any  # ale_py.ALEState, cloned with its RNG
    screen: np.ndarray  # (H, W) uint8


def loaded(rom: str) -> ale_py.ALEInterface:
    """An emulator with ``rom`` loaded: ALE's sticky actions off, its seed fixed, quiet."""
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", ALE_SEED)
    ale.setFloat("repeat_action_probability", 0.0)  # ALE's default is 0.25; sticky draws are ours
    ale.loadROM(roms.get_rom_path(rom))
    return ale


class SnapshotSlot:
    """One emulator; each episode restores the snapshot and draws from its own seed (see module doc)."""

    def __init__(self, ale: ale_py.ALEInterface, snapshot: Snapshot, options: AtariOptions):
        self.ale, self.snapshot, self.o = ale, snapshot, options
        self.actions = ale.getLegalActionSet() if options.full_action_space else ale.getMinimalActionSet()
        self.fire = options.fire_reset and FIRE in self.actions
        self.raw = np.zeros((2, *snapshot.screen.shape), dtype=np.uint8)  # a step's last two grey frames
        self.rng = np.random.default_rng(0)
        self.applied, self.lives = NOOP, 0

    def act(self, action: ale_py.Action) -> int:
        """One emulator frame; with probability ``sticky_actions`` the previous frame's action repeats."""
        if self.o.sticky_actions == 0 or self.rng.random() >= self.o.sticky_actions:
            self.applied = action
        return self.ale.act(self.applied)

    def begin(self, seed: int) -> None:
        """Start the episode of ``seed``: restore, FIRE, no-ops; ``raw[0]`` holds its first frame."""
        self.ale.restoreState(self.snapshot.state)
        self.rng = np.random.default_rng(seed)
        self.applied = NOOP  # what ALE's soft reset leaves; the snapshot's own copy of it is not restored
        noops = int(self.rng.integers(self.o.noop_max)) if self.o.noop_max > 0 else 0
        acted = False
        if self.fire:
            self.act(FIRE)
            acted, noops = True, noops - 1
        for _ in range(noops):
            self.act(NOOP)
            acted = True
            if self.ale.game_over():  # the vector env resets the game here
                self.ale.restoreState(self.snapshot.state)
                acted = False
        if acted:
            self.ale.getScreenGrayscale(self.raw[0])
        else:
            self.raw[0] = self.snapshot.screen
        self.raw[1] = 0
        self.lives = self.ale.lives()

    def step(self, action: int) -> tuple[float, bool]:
        """One env step of ``frameskip`` frames; ``raw[0]`` becomes the max of its last two. (reward, ended)."""
        o, ale, chosen = self.o, self.ale, self.actions[action]
        reward, ended = 0, False
        for left in range(o.frameskip, 0, -1):
            reward += self.act(chosen)
            lives = ale.lives()
            if ale.game_over() or (o.episodic_life and 0 < lives < self.lives):
                ended = True
                break
            if left <= 2:
                ale.getScreenGrayscale(self.raw[left - 1])
        if o.maxpool:
            np.maximum(self.raw[0], self.raw[1], out=self.raw[0])
        self.lives = ale.lives()
        return float(max(-1, min(1, reward)) if o.reward_clipping else reward), ended


def push(obs: np.ndarray, rows: Sequence[int], frames: np.ndarray, fresh: bool) -> None:
    """Push ``frames`` (A, H, W) onto the stacks ``obs[rows]`` (oldest first); a ``fresh`` stack is zeros before it."""
    rows = np.asarray(rows)
    if fresh:
        obs[rows] = 0
    else:
        obs[rows, :-1] = obs[rows, 1:]
    obs[rows, -1] = frames


class SnapshotSlots(SlotDriver):
    """The slots of one game in this process (one lane: they step on the calling thread): ``begin`` and ``advance``
    give each slot's newest frame; ``reset`` and ``step`` push them onto stacked observations in ``obs``
    (slots, stack, H, W)."""

    def __init__(self, rom: str, options: AtariOptions, max_steps: int):
        # max_steps: the drivers' common signature; here the EpisodeBook alone ends an episode at it
        self.rom, self.options = rom, options
        ale = loaded(rom)
        ale.reset_game()
        screen = np.empty(ale.getScreenDims(), dtype=np.uint8)
        ale.getScreenGrayscale(screen)
        self.snapshot = Snapshot(ale.cloneState(include_rng=True), screen)
        self.slots: list[SnapshotSlot] = [SnapshotSlot(ale, self.snapshot, options)]
        size = options.screen_size
        self.resize = AreaResize(*screen.shape, size)
        self.observation_space = gym.spaces.Box(0, 255, (options.frame_stack, size, size), np.uint8)
        self.action_space = gym.spaces.Discrete(len(self.slots[0].actions))

    def begin(self, slots: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        """Start each slot's episode from its seed (making the slots it lacks); their first frames (A, size, size)."""
        for slot in slots:
            while len(self.slots) <= slot:
                self.slots.append(SnapshotSlot(loaded(self.rom), self.snapshot, self.options))
        return self._frames(slots, lambda k, slot: slot.begin(int(seeds[k])))

    def advance(self, active: Sequence[int], actions: np.ndarray, rewards, ended) -> np.ndarray:
        """Step exactly the ``active`` slots, one after another; their new frames (A, size, size)."""
        actions = np.asarray(actions).reshape(-1)

        def one(k: int, slot: SnapshotSlot) -> None:
            rewards[k], ended[k] = slot.step(int(actions[k]))

        return self._frames(active, one)

    def _frames(self, slots: Sequence[int], run: Callable[[int, SnapshotSlot], None]) -> np.ndarray:
        """``run(k, slot)`` for each of ``slots``, resizing every ``RESIZE_CHUNK`` new frames while they are in cache
        (measured: 4.9 against 6.1 ms a step of 16 Pong slots resized all at once); the frames (A, size, size)."""
        size = self.options.screen_size
        frames = np.empty((len(slots), size, size), dtype=np.uint8)
        for start in range(0, len(slots), RESIZE_CHUNK):
            chunk = slots[start : start + RESIZE_CHUNK]
            for k, slot in enumerate(chunk, start):
                run(k, self.slots[slot])
            frames[start : start + len(chunk)] = self.resize(np.stack([self.slots[s].raw[0] for s in chunk]))
        return frames

    def reset(self, slots: Sequence[int], seeds: Sequence[int], obs: np.ndarray) -> None:
        """Start each slot's episode from its seed; first observations into ``obs`` (slots, stack, H, W)."""
        if len(slots):
            push(obs, slots, self.begin(slots, seeds), fresh=True)

    def start(self, active: Sequence[int], actions: np.ndarray, obs: np.ndarray, rewards, ended) -> Callable[[], None]:
        """Step exactly the ``active`` slots now; push each new frame onto its stack in ``obs``. Nothing to wait for."""
        push(obs, active, self.advance(active, actions, rewards, ended), fresh=False)
        return lambda: None

    def close(self) -> None:
        self.slots.clear()
