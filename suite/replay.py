"""``evoboard replay RUN_DIR``: the saved elite played again on the held-out episodes, and as a GIF.

The elite's weights come from ``elite.safetensors`` (saved with any mask already applied);
the task and policy from ``spec.json``. The held-out episodes are the ones the run scored its
``final_score`` on (``episode_seeds(seed, TEST, 0, eval_episodes)``), played by the same
code, so the score repeats exactly on the run's device (for factorized encodings, up to the
rounding of their materialized dense weights). A GIF shows the first held-out episode: the
env's ``rgb_array`` render for gymnasium tasks, the frames the network saw for image tasks (Atari).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from evoboard import envs
from evoboard.agents import PopulationActor, checkpoints, make_policy
from evoboard.agents.layers import PopulationParams, dense_form
from evoboard.envs.gym_task import GymTask
from evoboard.errors import CheckpointError, CheckpointRefused, UsageError
from evoboard.suite.provenance import TEST, episode_seeds, resolve_device
from evoboard.suite.rundir import RunDir
from evoboard.suite.spec import ResolvedSpec, RunSpec, resolve

NOT_NEEDED = ("mask", "init", "ensemble")
"""Runner settings a replay ignores: the mask is in the saved weights, the start and ensembles are history."""


@dataclass
class Replay:
    """What a replay measured: per-episode returns, the task's score of them, and the run's own."""

    returns: np.ndarray  # (E,)
    score: float
    score_kind: str
    saved_score: float | None
    """The run's final_score; None when the episodes played are not the run's held-out set."""
    frames: list[np.ndarray]  # the GIF's frames, empty unless asked for


def saved_spec(folder: RunDir) -> RunSpec:
    """The RunSpec a run folder's spec.json describes, evaluated here (local backend)."""
    if not folder.spec_path.exists():
        raise UsageError(f"{folder.path} is not a run folder (no spec.json)")
    try:
        config = folder.read_spec()
        settings = {k: v for part in config["settings"].values() for k, v in part.items() if k not in NOT_NEEDED}
        fields = {k: v for k, v in config.items() if k not in ("settings", "backend", "backend_settings")}
        return RunSpec(**{**fields, "settings": settings})
    except (CheckpointError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"cannot replay {folder.path}: {err}") from None


def elite_params(path: Path, policy, device: torch.device) -> tuple[PopulationParams, dict[str, Any]]:
    """The saved elite as a one-member dense population, and the checkpoint's metadata."""
    if not path.is_file():
        raise UsageError(f"{path.parent} has no elite.safetensors (the run has not finished)")
    try:
        elite = checkpoints.load(path)
        elite.check_layers(policy.layers)
    except CheckpointRefused as err:
        raise UsageError(str(err)) from None
    params = PopulationParams()
    for layer in policy.layers:
        tensors = {t.role: elite.tensors[f"{layer.name}.{t.role}"][None].to(device) for t in layer.tensors()}
        params[layer.name] = dense_form(layer, tensors)  # (1, ...) per tensor
    return params, elite.metadata


class FrameRecorder:
    """An actor that keeps the newest frame of member 0's observation at every step (image tasks)."""

    def __init__(self, actor: PopulationActor):
        self.actor, self.frames = actor, []

    def __call__(self, members, obs):
        frame = np.asarray(obs[0])
        self.frames.append(frame[-1] if frame.ndim == 3 and frame.shape[0] < frame.shape[-1] else frame)
        return self.actor(members, obs)


def image_observations(task) -> bool:
    space = task.observation_space
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) >= 2


def render_env(task) -> gym.Env:
    """A render-ready copy of a gymnasium task's env; UsageError naming what is missing if it cannot render."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array needs no display (pygame asks for one)
    try:
        with warnings.catch_warnings():  # GLFW warns before MuJoCo raises: keep the error to one line
            warnings.simplefilter("ignore")
            env = gym.make(task.id, render_mode="rgb_array", max_episode_steps=task.max_steps, disable_env_checker=True)
            env.reset(seed=0)
            if env.render() is None:
                raise RuntimeError("render() returned nothing")
        return env
    except Exception as err:  # GL, pygame and MuJoCo raise their own types
        first = (str(err).splitlines() or [type(err).__name__])[0]
        hint = (
            "MuJoCo needs a GL backend: set MUJOCO_GL=egl (or osmesa) with its library installed"
            if "mujoco" in type(err).__module__.lower() or "GL" in first
            else "install the env's render extra, e.g. pip install 'gymnasium[classic-control]'"
        )
        raise UsageError(f"cannot render {task.id} as rgb_array ({first}); {hint}") from None


def rendered_episode(env: gym.Env, actor: PopulationActor, seed: int, discrete: bool) -> list[np.ndarray]:
    """Frames of one episode of member 0 from ``seed``, its first frame the reset."""
    obs, _ = env.reset(seed=seed)
    frames, member, done = [env.render()], np.zeros(1, dtype=np.int64), False
    while not done:
        action = actor(member, np.asarray(obs, dtype=np.float32)[None])[0]
        obs, _, terminated, truncated, _ = env.step(int(action) if discrete else action)
        frames.append(env.render())
        done = terminated or truncated
    return frames


def replay(run_dir: str | Path, episodes: int | None = None, gif: bool = False, device: str | None = None) -> Replay:
    """Play a finished run's elite on its held-out episodes (the first ``episodes`` of them, or more)."""
    folder = RunDir(run_dir)
    spec = saved_spec(folder)
    if device is not None:
        spec.device = device
    resolved: ResolvedSpec = resolve(spec)
    if episodes is not None and episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    count = episodes or resolved.runner.eval_episodes
    chosen = resolve_device(spec.device)
    if gif and not os.environ.get("DISPLAY"):  # headless: MuJoCo renders through EGL where it can (before it loads)
        os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(resolved.runner.threads)  # the run's numerics
    try:
        task = envs.make(spec.task, resolved.task)
    except (ValueError, ImportError) as err:
        raise UsageError(str(err)) from None
    try:
        policy = make_policy(resolved.spec.policy, task.observation_space, task.action_space, resolved.policy)
        params, meta = elite_params(folder.path / "elite.safetensors", policy, chosen)
        normalizer = task.normalizer
        if normalizer is not None:  # the statistics the elite was scored with (obs_norm)
            normalizer.load_state({k: torch.tensor(v, dtype=torch.float64) for k, v in meta["obs_norm"].items()})
        actor = PopulationActor(policy, params, chosen)
        seeds = episode_seeds(spec.seed, TEST, 0, count)
        frames = gif_frames(task, actor, seeds) if gif else []
        score, evaluation = task.final_score(actor, seeds)
        returns = np.asarray(evaluation.returns[0]) if evaluation.returns.ndim == 2 else np.asarray([score])
    finally:
        task.close()
    saved = meta.get("final_score") if count == resolved.runner.eval_episodes else None
    return Replay(returns, score, task.score_kind, saved, frames)


def gif_frames(task, actor: PopulationActor, seeds: Sequence[int]) -> list[np.ndarray]:
    """The first held-out episode as frames; UsageError (before anything is written) if the task has none."""
    if isinstance(task, GymTask):
        env = render_env(task)
        seen = actor if task.normalizer is None else task.normalizer.wrap(actor)
        try:
            return rendered_episode(env, seen, seeds[0], isinstance(task.action_space, gym.spaces.Discrete))
        finally:
            env.close()
    if image_observations(task):
        recorder = FrameRecorder(actor)
        task.evaluate(recorder, 1, seeds[:1])
        return recorder.frames
    raise UsageError(f"task {task.id} has no frames to show (it neither renders rgb_array nor sees images)")


def imageio():
    """imageio's v3 API, or UsageError naming the extra that installs it."""
    try:
        import imageio.v3 as iio
    except ImportError:
        raise UsageError("--gif needs imageio: pip install 'evoboard[replay]'") from None
    return iio


def write_gif(path: str | Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """An animated GIF of ``frames`` (H, W[, 3]) uint8, looping; frames wider than 320 px are halved."""
    iio = imageio()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    small = [f[::2, ::2] if f.shape[1] > 320 else f for f in frames]
    iio.imwrite(path, np.stack(small), duration=10 * round(100 / fps), loop=0)  # GIF counts centiseconds
    return path
