"""RSO: random-search optimisation of one weight at a time, on minibatches, without gradients.

Tripathi & Singh 2020, "RSO: A Gradient Free Sampling Based Approach For Training Deep
Neural Networks". A cycle visits the layers from the output to the input and, for each
weight w, tries w, w + delta and w - delta with delta ~ N(0, sigma_layer^2) on a fresh
minibatch and keeps the best. sigma_layer is the std of the layer's weights at the start of
the cycle, annealed linearly to 0.1 of it over ``rso_cycles`` cycles; a weight decay of
1e-4 shrinks every weight once per cycle. The paper reports 98% on MNIST after 5 cycles.

Batching (the point of a population-batched suite): the candidates of k weights of one
layer go as one population of 2k + 1 members in a single forward (member 0 unchanged,
members 2i+1 and 2i+2 change weight i by +delta_i and -delta_i), k = (population - 1) // 2.
Each weight's best choice is read off independently; because they were tried one at a
time, the combination of all improving changes is checked on the same minibatch, and if it
is worse than the unchanged network the single best candidate is kept instead. So an
accepted update never raises the loss of the minibatch it was chosen on. Layers listed
before the changed one are identical in every member and see the same input, so they run
once (``SharedForm``: member 0's forward, expanded) instead of 2k + 1 times; this needs a
policy that lists its layers in forward order, as every built-in policy does.

RSO is a ``DirectTrainer`` like ``adam``, not ask/tell: the runner drives ``RSOTrainer.step``
once per generation, and one step is one cycle over every search dimension. The trained
vector is the encoding's search vector, so any encoding's parameters can be trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from evoboard.agents.algorithms.base import DirectTrainer, draw_seed, finite_fitness
from evoboard.agents.encodings.base import Encoding, SeedChainEncoding
from evoboard.agents.layers import LayerParams, PopulationParams
from evoboard.agents.policies import PopulationActor
from evoboard.options import Checked, bounded

Objective = Callable[..., Any]
"""The task's population evaluation: (act, members, seeds) -> Evaluation, fitness = minus minibatch loss."""


@dataclasses.dataclass(frozen=True)
class SharedForm(LayerParams):
    """A layer every member shares, whose input is the same for every member: run once, expanded to P.

    Valid below the layer RSO changes: all members have the same weights there and, the
    task giving every member the same minibatch, the same input. Output rows are views.
    """

    inner: LayerParams  # one member's form (P = 1)
    members: int

    def _once(self, method: str, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self.inner, method)(x[:1])  # (1, ...)
        return out.expand(x.shape[0], *out.shape[1:])  # (P, ...), no copy

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return self._once("linear", x)

    def conv2d(self, x: torch.Tensor) -> torch.Tensor:
        return self._once("conv2d", x)

    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._once("embedding", tokens)

    def layer_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self._once("layer_norm", x)

    def materialize(self) -> LayerParams:
        return self.inner.materialize().select(torch.zeros(self.members, dtype=torch.long))

    def map_inner(self, fn: Callable[[LayerParams], LayerParams]) -> SharedForm:
        """The same sharing around ``fn(inner)`` (a mask applied to the shared weights)."""
        return SharedForm(fn(self.inner), self.members)

    def select(self, members: torch.Tensor) -> SharedForm:
        return SharedForm(self.inner, len(members))

    def __len__(self) -> int:
        return self.members


@dataclasses.dataclass
class RSOOptions(Checked):
    """Settings of RSO."""

    rso_cycles: int = bounded(5, ge=1)
    """Cycles over which delta's std anneals linearly from sigma_layer to rso_anneal * sigma_layer (then stays)."""
    rso_anneal: float = bounded(0.1, gt=0, le=1)
    """Final fraction of sigma_layer (the paper: 0.1)."""
    rso_scale: float = bounded(1.0, gt=0, finite=True)
    """delta's std relative to the std of the layer's weights."""
    rso_weight_decay: float = bounded(1e-4, ge=0, lt=1)
    """Every weight shrinks by this fraction once per cycle."""
    rso_share_below: bool = True
    """Run the layers below the changed one once per forward instead of once per member."""


@dataclasses.dataclass
class Group:
    """Search dimensions of one layer tried together, and the layer's weight-like dimensions (for sigma)."""

    layer: str
    coords: torch.Tensor  # (k,) long
    weights: torch.Tensor  # the layer's non-bias dimensions


class RSOTrainer:
    """One network's search vector z (D,), improved one cycle (one pass over every dimension) per ``step``."""

    def __init__(self, encoding: SeedChainEncoding, policy, options: RSOOptions, init_seed: int, population: int):
        self.encoding, self.policy, self.options = encoding, policy, options
        self.vector = encoding.init_vector(init_seed).clone()  # (D,)
        self.per_forward = max(1, (population - 1) // 2)  # weights tried per forward: 2k + 1 members
        self.cycle = 0
        self.groups = self._groups()

    def _groups(self) -> list[Group]:
        """Chunks of k dimensions per layer, layers from the output to the input."""
        groups = []
        for layer in reversed(self.encoding.policy.layers):
            blocks = [b for b in self.encoding.blocks if b.layer == layer.name]
            if not blocks:
                continue  # not searched (e.g. a low-rank encoding's LayerNorm)
            coords = torch.cat([torch.arange(b.start, b.stop) for b in blocks]).to(self.vector.device)
            weights = torch.cat([torch.arange(b.start, b.stop) for b in blocks if b.role != "bias"] or [coords])
            weights = weights.to(self.vector.device)  # indices on the vector's device: no upload per group
            for lo in range(0, len(coords), self.per_forward):
                groups.append(Group(layer.name, coords[lo : lo + self.per_forward], weights))
        return groups

    def params(self) -> PopulationParams:
        """The current network as a population of one."""
        return self.encoding.to_params(self.vector.unsqueeze(0))

    def sigma(self, group: Group) -> float:
        """delta's std for the group's layer this cycle: the weights' std, annealed; 0.02 if that std is 0."""
        std = float(self.vector[group.weights].std()) if len(group.weights) > 1 else 0.0
        std = std if std > 0 else 0.02  # e.g. LayerNorm gains, all 1 at init
        progress = min(self.cycle / max(self.options.rso_cycles - 1, 1), 1.0)
        return self.options.rso_scale * std * (1.0 - (1.0 - self.options.rso_anneal) * progress)

    def _actor(self, z: torch.Tensor, changed: str | None) -> PopulationActor:
        """Actor for members z (P, D) that differ only in layer ``changed``; lower layers shared when allowed."""
        params = self.encoding.to_params(z)
        if changed is not None and self.options.rso_share_below and len(z) > 1:
            once = self.params()
            for layer in self.encoding.policy.layers:
                if layer.name == changed:
                    break
                params[layer.name] = SharedForm(once[layer.name], len(z))
        return PopulationActor(self.policy, params, self.encoding.device)

    def try_group(
        self, objective: Objective, seed: int, group: Group, deltas: torch.Tensor
    ) -> tuple[float, float, list]:
        """Try w, w + delta, w - delta for each dimension of ``group`` on the minibatch of ``seed``; keep the best.

        Returns the minibatch loss before and after the update and the evaluations it cost.
        """
        k = len(group.coords)
        z = self.vector.expand(2 * k + 1, -1).clone()  # (2k+1, D): member 0 unchanged
        rows = torch.arange(k, device=z.device)
        z[1 + 2 * rows, group.coords] += deltas
        z[2 + 2 * rows, group.coords] -= deltas
        ev = objective(self._actor(z, group.layer), 2 * k + 1, [seed])
        fitness = finite_fitness(ev.fitness)  # (2k+1,) minus loss
        base = float(fitness[0])
        plus, minus = fitness[1::2], fitness[2::2]  # (k,) each
        choice = np.where((plus > base) & (plus >= minus), 1.0, np.where(minus > base, -1.0, 0.0))
        evaluations, after = [ev], base
        if (choice != 0).any():
            single = int(np.argmax(fitness))  # the best single candidate (> base since some choice improved)
            combined = self.vector.clone()
            signs = torch.as_tensor(choice, dtype=combined.dtype).to(deltas.device)  # (k,) -1, 0 or +1
            combined[group.coords] += signs * deltas
            if (choice != 0).sum() > 1:
                check = objective(self._actor(combined.unsqueeze(0), None), 1, [seed])
                evaluations.append(check)
                if float(check.fitness[0]) >= base:
                    self.vector, after = combined, float(check.fitness[0])
                else:
                    self.vector, after = z[single].clone(), float(fitness[single])
            else:
                self.vector, after = z[single].clone(), float(fitness[single])
        return -base, -after, evaluations

    def step(self, objective: Objective, seed: int) -> Any:
        """One cycle over every search dimension (output layer first), each group on a fresh minibatch.

        Minibatch seeds and deltas follow from ``seed`` alone. Returns one Evaluation whose
        fitness is minus the mean accepted minibatch loss and whose cost sums every forward.
        """
        seeds = np.random.SeedSequence([seed, self.cycle]).generate_state(len(self.groups))
        rng = torch.Generator().manual_seed(int(seeds[0]))
        evaluations, losses, sigmas = [], [], {}
        for group, batch_seed in zip(self.groups, seeds, strict=True):
            if group.layer not in sigmas:
                sigmas[group.layer] = self.sigma(group)
            deltas = torch.randn(len(group.coords), generator=rng) * sigmas[group.layer]
            _, after, cost = self.try_group(objective, int(batch_seed), group, deltas.to(self.vector.device))
            evaluations += cost
            losses.append(after)
        self.vector = self.vector * (1.0 - self.options.rso_weight_decay)
        self.cycle += 1
        return summarise(evaluations, -float(np.mean(losses)))


def summarise(evaluations: Sequence[Any], fitness: float) -> Any:
    """One Evaluation-like record of a cycle: its fitness and the summed cost of its forwards."""
    first = evaluations[0]
    returns = np.array([[fitness]])
    return dataclasses.replace(
        first,
        fitness=returns[:, 0],
        returns=returns,
        steps=np.array([[sum(int(e.steps.sum()) for e in evaluations)]]),
        cut=np.zeros((1, 1), dtype=bool),
        frames=sum(e.frames for e in evaluations),
        frames_saved=0,
        member_forwards=sum(e.member_forwards for e in evaluations),
        best_trace=None,
        failed=np.zeros(1, dtype=bool),
        failure=None,
        timings={},
    )


class RSO(DirectTrainer):
    """``--algorithm rso``: random search one weight at a time (Tripathi & Singh 2020); one cycle per generation."""

    name = "rso"
    Options = RSOOptions

    def objective(self, task) -> Objective:
        """The task's population evaluation: candidates are scored like any population."""
        return task.evaluate

    def trainer(self, encoding: Encoding, policy, seed: int) -> RSOTrainer:
        """A trainer from the GA's first initial member for ``seed``, trying (population - 1) // 2 weights a forward."""
        if not isinstance(encoding, SeedChainEncoding):
            raise ValueError(f"algorithm rso trains a search vector; encoding {encoding.name!r} has none")
        return RSOTrainer(encoding, policy, self.options, draw_seed(np.random.default_rng(seed)), self.population)

    def steps_per_generation(self, episodes: int) -> int:
        """One cycle (every weight tried once) per generation."""
        return 1
