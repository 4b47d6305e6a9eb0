"""Policies written once against the layer API, chosen by name, and the actor tasks call.

A policy lists its layers (``LayerSpec``) so an encoding can decide how to store and mutate
them, and maps a batch of observations to actions for every member through whatever
parameter forms the encoding produced. ``PopulationActor`` turns a policy plus decoded
parameters into the plain callable a task sees: (member indices, observations) -> actions.
New policies (Nature CNN, char transformer, plugins) register in ``POLICIES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch

from evoboard.agents.layers import LayerSpec, PopulationParams, linear
from evoboard.agents.registry import Registry
from evoboard.options import Checked

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class Policy(ABC):
    """A population-batched network for one task's spaces."""

    name: ClassVar[str]
    Options: ClassVar[type]
    layers: tuple[LayerSpec, ...]

    @classmethod
    @abstractmethod
    def for_spaces(cls, observation_space: gym.Space, action_space: gym.Space, options) -> Policy:
        """The network for these spaces; raise ValueError if it cannot serve them."""

    def apply(self, params: PopulationParams) -> PopulationParams:
        """The weights the network runs with (a masked policy multiplies its masks in); by default ``params``."""
        return params

    @abstractmethod
    def act(self, params: PopulationParams, obs: torch.Tensor) -> torch.Tensor:
        """One observation per member, obs (P, *obs_shape) -> actions (P, ...), in one forward."""

    def describe(self) -> str:
        """Short description for the leaderboard's ``policy`` column."""
        return self.name

    def widths(self) -> tuple[int, ...]:
        """The hidden widths ``narrowed`` may change (the task fixes the rest); none by default."""
        return ()

    def narrowed(self, widths: tuple[int, ...]) -> Policy:
        """The same network with these hidden widths (``small_dense``); its forward takes either's params."""
        raise ValueError(f"policy {self.name} has no hidden widths to narrow")


POLICIES: Registry[type[Policy]] = Registry("policy", "evoboard.policies")


def greedy_actions(logits: torch.Tensor) -> torch.Tensor:
    """Argmax over the last dim; -1 (an action no env accepts) where a member's logits are not
    finite, so the task fails that member alone.

    A finite sum of all logits proves every one finite: one reduction instead of the per-row
    check (~7 us of a ~120 us CartPole forward at P=64); a sum that overflows takes the full check.
    """
    picks = logits.argmax(-1)
    if logits.device.type == "cpu" and bool(logits.sum().isfinite()):
        return picks
    return torch.where(logits.isfinite().all(-1), picks, -1)


class ActionHead:
    """Network outputs -> env actions for one action space, so every policy reads spaces alike.

    Discrete: argmax of ``n`` logits; MultiDiscrete (1-D): one argmax per dimension over its own
    ``nvec[i]`` logits; bounded Box: tanh squashed into the bounds; unbounded Box: raw outputs.
    A non-finite member gets -1 (Discrete, and every MultiDiscrete dimension) or its NaNs, so
    the task fails it alone. A bounded Box's low bound and range are uploaded once per device and
    kept there, not copied to the device at every step.
    """

    def __init__(self, space: gym.Space):
        self.space, self._bounds, self._splits = space, None, None
        if isinstance(space, gym.spaces.Discrete):
            self.width = int(space.n)
        elif isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
            self._splits = [int(n) for n in space.nvec]
            self.width = sum(self._splits)
        elif isinstance(space, gym.spaces.Box):
            self.width = int(np.prod(space.shape))
            low, high = space.low.ravel(), space.high.ravel()
            if np.all(np.isfinite(low)) and np.all(np.isfinite(high)):  # else: raw outputs
                low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
                self._bounds = {low.device: (low, high - low)}  # device -> (low, high - low), each (width,)
        else:
            raise ValueError(f"policies need Discrete, 1-D MultiDiscrete or Box actions, got {space}")

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        """out (P, width) -> actions: (P,) Discrete, (P, dims) MultiDiscrete, (P, width) Box."""
        if isinstance(self.space, gym.spaces.Discrete):
            return greedy_actions(out)
        if self._splits is not None:
            finite = out.isfinite().all(-1, keepdim=True)  # (P, 1): a member fails in every dimension
            picks = torch.stack([part.argmax(-1) for part in out.split(self._splits, -1)], -1)  # (P, dims)
            return torch.where(finite, picks, -1)
        if self._bounds is None:
            return out
        low, span = self._bounds.get(out.device) or self._upload(out.device)
        return low + (torch.tanh(out) + 1.0) * 0.5 * span

    def _upload(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The bounds on ``device``, copied there once."""
        low, span = next(iter(self._bounds.values()))
        self._bounds[device] = (low.to(device), span.to(device))
        return self._bounds[device]


@dataclass
class MLPOptions(Checked):
    """Settings of the MLP policy."""

    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths."""
    activation: str = "tanh"
    """Hidden activation: tanh or relu."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden = tuple(self.hidden)
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")


@POLICIES.register("mlp")
class MLPPolicy(Policy):
    """MLP from a flat observation to the outputs its ``ActionHead`` turns into actions."""

    name = "mlp"
    Options = MLPOptions

    def __init__(self, obs_dim: int, action_space: gym.Space, options: MLPOptions | None = None):
        self.obs_dim, self.action_space = obs_dim, action_space
        self.options = options or MLPOptions()
        self.head = ActionHead(action_space)
        widths = (obs_dim, *self.options.hidden, self.head.width)
        last = len(widths) - 2
        self.layers = tuple(
            LayerSpec(f"fc{i}", "linear", a, b, output=i == last)
            for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False))
        )
        self._act = ACTIVATIONS[self.options.activation]

    @classmethod
    def for_spaces(cls, observation_space, action_space, options=None) -> MLPPolicy:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"the MLP policy needs Box observations, got {observation_space}")
        return cls(int(np.prod(observation_space.shape)), action_space, options)

    def forward(self, params: PopulationParams, x: torch.Tensor) -> torch.Tensor:
        """Network output for every member: x (P, N, obs_dim) -> (P, N, out)."""
        *hidden, last = self.layers
        for layer in hidden:
            x = self._act(linear(x, params[layer.name]))
        return linear(x, params[last.name])

    def act(self, params: PopulationParams, obs: torch.Tensor) -> torch.Tensor:
        x = obs.reshape(obs.shape[0], 1, -1).to(torch.float32)  # (P, 1, obs_dim)
        return self.head(self.forward(params, x)[:, 0])  # (P, out) -> actions

    def describe(self) -> str:
        return f"mlp({','.join(map(str, self.options.hidden))},{self.options.activation})"

    def widths(self) -> tuple[int, ...]:
        return self.options.hidden

    def narrowed(self, widths: tuple[int, ...]) -> MLPPolicy:
        options = MLPOptions(hidden=tuple(widths), activation=self.options.activation)
        return type(self)(self.obs_dim, self.action_space, options)


def make_policy(name: str, observation_space: gym.Space, action_space: gym.Space, options=None) -> Policy:
    """The named policy for a task's spaces; ``options`` defaults to the policy's own."""
    cls = POLICIES.get(name)
    return cls.for_spaces(observation_space, action_space, options if options is not None else cls.Options())


class Plan:
    """How one set of active members runs (see ``PopulationActor``), and what that needs."""

    def __init__(self, params: PopulationParams, members: np.ndarray, device: torch.device):
        population = params.population
        self.index: torch.Tensor | None = None  # their indices on the device; None: all members
        self.scatter = False  # True: run the full batch and pick their rows out
        self.full: torch.Tensor | None = None  # scatter: the full batch, idle members' rows zero
        self.active: PopulationParams | None = None  # gather: their parameters
        self.scatters_left = 0  # scatter: calls of this set before it switches to gathering
        if len(members) == population and (members == np.arange(population)).all():
            return
        self.index = torch.as_tensor(members, device=device)
        self.scatter = 2 * len(members) >= population and len(np.unique(members)) == len(members)
        if self.scatter:
            # Gathering costs ~2 forwards of the active members; each scattered call, one of the idle ones.
            self.scatters_left = -(-2 * len(members) // max(population - len(members), 1))
        else:
            self.active = params.select(self.index)


class PopulationActor:
    """The callable a task steps with: (member indices, obs batch) -> actions, one forward.

    Finished members leave the batch, so the active set shrinks over an episode. Three ways
    to run the members still active, cheapest first:
    - all members, in order: the population's parameters as they are;
    - at least half of them, each once: their observations scattered into a full batch and
      their outputs picked out (the forward of a few idle members costs less than copying
      the active members' weights every time an episode ends);
    - otherwise: the active members' parameters gathered.
    The active set changes only when an episode ends, so the way, its index tensor and its
    gathered parameters are worked out once per set and reused for every step until it
    changes (a CartPole episode of a random member is ~10 steps of ~100 us forwards, so a
    few microseconds of checks per call showed up). The plans of the last ``PLANS`` sets are
    kept: a task that steps its slots in lanes (``evoboard.envs.slots``) alternates between sets.
    A set of at least half the members that lasts switches from scattering to gathering once
    its idle members' forwards would have cost what gathering costs (ski rental: never worse
    than twice the better choice in hindsight). Measured on CartPole, dense P=64, one thread:
    gathering 37 members costs ~117 us once, then ~76 us a step against ~125 us scattered;
    every member's rows equal the full batch's bit for bit either way.
    Numpy in gives numpy out (env actions); a tensor in gives a tensor out.
    """

    PLANS = 8

    def __init__(self, policy: Policy, params: PopulationParams, device: torch.device):
        self.policy, self.params, self.device = policy, params, device
        self._plans: dict[bytes, Plan] = {}  # member set (int64 bytes) -> its plan, the latest used last

    def _plan(self, members: np.ndarray) -> Plan:
        """The plan for ``members`` (int64, 1-D): kept, or made now (dropping the least recently used)."""
        key = members.tobytes()
        plan = self._plans.pop(key, None)
        if plan is None:
            plan = Plan(self.params, members, self.device)
            while len(self._plans) >= self.PLANS:
                self._plans.pop(next(iter(self._plans)))
        self._plans[key] = plan
        return plan

    def __call__(self, members: np.ndarray, obs: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        plan = self._plan(np.asarray(members, dtype=np.int64))
        x = torch.as_tensor(obs, device=self.device)
        with torch.inference_mode():
            if plan.index is None:
                actions = self.policy.act(self.params, x)
            elif plan.scatter and plan.scatters_left > 0:
                plan.scatters_left -= 1
                full = plan.full
                if full is None or full.shape[1:] != x.shape[1:] or full.dtype != x.dtype:
                    full = plan.full = x.new_zeros((self.params.population, *x.shape[1:]))  # idle members see zeros
                actions = self.policy.act(self.params, full.index_copy_(0, plan.index, x))[plan.index]
            else:
                if plan.active is None:  # a scattered set that lasted: gather it from now on
                    plan.active, plan.full = self.params.select(plan.index), None
                actions = self.policy.act(plan.active, x)
        return actions if isinstance(obs, torch.Tensor) else actions.cpu().numpy()
