"""Network stitching: recombine two trained networks through fitted stitching layers (S2).

Guijt, Thierens, Alderliesten & Bosman 2024, "Exploring the Search Space of Neural Network
Combinations obtained with Efficient Model Stitching". Two networks trained for the same task
(different seeds or widths) are run side by side as streams A and B. At every hidden point k
where both have an activation of compatible shape (MLPs: any widths, since a linear map joins
them), a stitching layer is fitted in each direction by least squares on the activations of the
training inputs: S_AB,k maps A's activation at k into B's space, S_BA,k the reverse. A genotype
is one switch per stitch plus an output switch (A, B, or the average of their probabilities):
with S_BA,k on, stream A continues from S_BA,k(h_B,k) instead of its own h_A,k. Offspring are
evaluated as they are: nothing is retrained. The all-off genotype with output A *is* network A.

The cost objective is multiply-adds per input: only the layers and stitches the chosen output
depends on are counted (a stream no output needs is never run), so switching mid-network to the
narrower network B is how a stitched child gets cheaper than A. ``pareto_ga`` searches switches
for (score up, multiply-adds down) with non-dominated sorting (Deb et al. 2002, NSGA-II without
crowding: ties broken by a seeded shuffle).

Scope: MLP networks (``mlp`` / ``classifier_mlp`` weights as saved by ``evoboard.agents.checkpoints``)
of the same depth; convolutional stitches (1x1 convs between equal spatial sizes) are not built.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}
STREAMS = ("A", "B")
OUTPUTS = ("A", "B", "avg")


@dataclass(frozen=True)
class MLPNetwork:
    """One trained MLP: (W (out, in), b (out,)) per layer and the hidden activation."""

    weights: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    activation: str = "tanh"

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], activation: str = "tanh") -> MLPNetwork:
        """From checkpoint tensors ``fc0.weight``, ``fc0.bias``, ``fc1.weight``, ... (see ``agents/checkpoints.py``)."""
        layers = []
        for i in itertools.count():
            if f"fc{i}.weight" not in tensors:
                break
            layers.append((tensors[f"fc{i}.weight"].double(), tensors[f"fc{i}.bias"].double()))
        if len(layers) < 2:
            raise ValueError("stitching needs MLPs with at least one hidden layer (fc0, fc1, ...)")
        return cls(tuple(layers), activation)

    @property
    def depth(self) -> int:
        return len(self.weights)

    def width(self, point: int) -> int:
        """Activation width after layer ``point`` (1-based; 0 is the input)."""
        return self.weights[0][0].shape[1] if point == 0 else self.weights[point - 1][0].shape[0]

    def layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Layer k (1-based) on h (N, in) -> (N, out): activation on hidden layers, raw logits on the last."""
        w, b = self.weights[k - 1]
        y = torch.addmm(b, h, w.T)
        return ACTIVATIONS[self.activation](y) if k < self.depth else y

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[input, h_1, ..., logits], each (N, width)."""
        out = [x.double()]
        for k in range(1, self.depth + 1):
            out.append(self.layer(k, out[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x)[-1]

    def macs(self, k: int) -> int:
        """Multiply-adds of layer k per input."""
        return self.weights[k - 1][0].numel()


def fit_stitch(src: torch.Tensor, dst: torch.Tensor, ridge: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares affine map src (N, a) -> dst (N, b): (W (b, a), bias (b,)) minimising ||src W^T + bias - dst||^2.

    A tiny ridge on W (scaled by the data's variance) keeps it defined when activations are collinear.
    """
    x = torch.cat([src.double(), torch.ones(len(src), 1, dtype=torch.float64)], 1)  # (N, a+1)
    gram = x.T @ x
    reg = ridge * gram.diagonal()[:-1].mean() * torch.eye(len(gram), dtype=torch.float64)
    reg[-1, -1] = 0.0  # the bias is not shrunk
    solution = torch.linalg.solve(gram + reg, x.T @ dst.double())  # (a+1, b)
    return solution[:-1].T.contiguous(), solution[-1].contiguous()


@dataclass(frozen=True)
class Genotype:
    """One switch per stitch (``StitchedPair.stitches`` order) and the output: 0 A, 1 B, 2 average."""

    switches: tuple[bool, ...]
    output: int

    def key(self) -> str:
        return "".join("1" if s else "0" for s in self.switches) + ":" + OUTPUTS[self.output]


class StitchedPair:
    """Networks A and B of the same depth with fitted stitches both ways at every hidden point."""

    def __init__(self, a: MLPNetwork, b: MLPNetwork, fit_inputs: torch.Tensor, ridge: float = 1e-6):
        if a.depth != b.depth:
            raise ValueError(f"stitching pairs points by depth: A has {a.depth} layers, B {b.depth}")
        if a.width(0) != b.width(0) or a.width(a.depth) != b.width(b.depth):
            raise ValueError("A and B must take the same inputs and answer the same classes")
        self.nets = {"A": a, "B": b}
        acts = {"A": a.activations(fit_inputs), "B": b.activations(fit_inputs)}
        self.points = list(range(1, a.depth))  # hidden points: every (A, B) width pair joins by a linear map
        self.stitches: list[tuple[int, str, str]] = []  # (point, from, to)
        self.maps: dict[tuple[int, str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        for k in self.points:
            for src, dst in (("A", "B"), ("B", "A")):
                self.stitches.append((k, src, dst))
                self.maps[(k, src, dst)] = fit_stitch(acts[src][k], acts[dst][k], ridge)

    @property
    def genes(self) -> int:
        return len(self.stitches)

    def logits(self, genotype: Genotype, x: torch.Tensor) -> torch.Tensor:
        """The stitched network's class scores for x (N, in): log-probabilities for output avg."""
        on = {s for s, flag in zip(self.stitches, genotype.switches, strict=True) if flag}
        h = {"A": x.double(), "B": x.double()}
        for k in range(1, self.nets["A"].depth + 1):
            h = {s: self.nets[s].layer(k, h[s]) for s in STREAMS}
            if k in self.points:  # both directions read the pre-stitch activations
                swapped = dict(h)
                for src, dst in (("A", "B"), ("B", "A")):
                    if (k, src, dst) in on:
                        w, b = self.maps[(k, src, dst)]
                        swapped[dst] = torch.addmm(b, h[src], w.T)
                h = swapped
        if OUTPUTS[genotype.output] == "avg":
            probs = torch.stack([torch.log_softmax(h[s], -1) for s in STREAMS])  # (2, N, C)
            return torch.logsumexp(probs, 0) - math.log(2)
        return h[OUTPUTS[genotype.output]]

    def canonical(self, genotype: Genotype) -> Genotype:
        """The same network with every switch the output does not depend on turned off (one key per phenotype)."""
        used = self._trace(genotype)[1]
        return Genotype(tuple(s in used for s in self.stitches), genotype.output)

    def macs(self, genotype: Genotype) -> int:
        """Multiply-adds per input of the layers and stitches the chosen output depends on."""
        return self._trace(genotype)[0]

    def _trace(self, genotype: Genotype) -> tuple[int, set]:
        """Walk back from the output: (multiply-adds of everything it depends on, the stitches on its path)."""
        on = {s for s, flag in zip(self.stitches, genotype.switches, strict=True) if flag}
        out = OUTPUTS[genotype.output]
        need = {(s, self.nets["A"].depth) for s in (STREAMS if out == "avg" else (out,))}
        total, used = 0, set()
        for k in range(self.nets["A"].depth, 0, -1):
            for s in STREAMS:
                if (s, k) not in need:
                    continue
                total += self.nets[s].macs(k)
                if k - 1 in self.points:
                    other = "B" if s == "A" else "A"
                    if (k - 1, other, s) in on:
                        total += self.maps[(k - 1, other, s)][0].numel()
                        used.add((k - 1, other, s))
                        need.add((other, k - 1))
                        continue
                    need.add((s, k - 1))
        return total, used


Objective = Callable[[Genotype], tuple[float, int]]
"""genotype -> (score to maximise, multiply-adds to minimise)."""


def dominates(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Score at least as high and cost at most as high, one strictly."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_front(points: dict[str, tuple[float, int]]) -> list[str]:
    """Keys of the non-dominated points."""
    return [k for k, p in points.items() if not any(dominates(q, p) for j, q in points.items() if j != k)]


def fronts(keys: Sequence[str], points: dict[str, tuple[float, int]]) -> list[list[str]]:
    """Non-dominated sorting: the first front, then the front of the rest, and so on."""
    rest, out = list(keys), []
    while rest:
        front = [k for k in rest if not any(dominates(points[j], points[k]) for j in rest if j != k)]
        out.append(front)
        rest = [k for k in rest if k not in front]
    return out


def pareto_ga(
    genes: int,
    objective: Objective,
    population: int = 16,
    generations: int = 10,
    seed: int = 0,
    canonical: Callable[[Genotype], Genotype] | None = None,
) -> dict[str, tuple[Genotype, float, int]]:
    """A small multi-objective GA over switch genotypes; returns every genotype it evaluated by key.

    Each generation: binary tournaments on front rank, uniform crossover, per-gene flip with
    probability 1/genes (the output switch redrawn with the same probability), then the best
    fronts of parents and offspring survive. The all-off genotypes (pure A, pure B) are in the
    first population, so a parent is always on the table. Every draw is from ``seed``. ``canonical``
    maps a genotype to its phenotype's representative (``StitchedPair.canonical``), so switches the
    output ignores do not fill the population with copies.
    """
    rng = np.random.default_rng(seed)
    seen: dict[str, tuple[Genotype, float, int]] = {}

    def evaluate(g: Genotype) -> str:
        g = canonical(g) if canonical else g  # genotypes of one network share a key and an evaluation
        if g.key() not in seen:
            seen[g.key()] = (g, *objective(g))
        return g.key()

    def random_genotype() -> Genotype:
        return Genotype(tuple(bool(b) for b in rng.integers(0, 2, genes)), int(rng.integers(0, len(OUTPUTS))))

    pop = [evaluate(Genotype((False,) * genes, 0)), evaluate(Genotype((False,) * genes, 1))]
    pop += [evaluate(random_genotype()) for _ in range(population - len(pop))]
    for _ in range(generations):
        points = {k: seen[k][1:] for k in pop}
        rank = {k: r for r, front in enumerate(fronts(pop, points)) for k in front}

        def pick(pop: list[str] = pop, rank: dict[str, int] = rank) -> Genotype:  # binary tournament on front rank
            i, j = rng.integers(0, len(pop), 2)
            return seen[pop[i] if rank[pop[i]] <= rank[pop[j]] else pop[j]][0]

        children = []
        for _ in range(population):
            a, b = pick(), pick()
            take = rng.random(genes) < 0.5
            bits = [a.switches[i] if take[i] else b.switches[i] for i in range(genes)]
            bits = [not x if rng.random() < 1 / genes else x for x in bits]
            out = a.output if rng.random() < 0.5 else b.output
            out = int(rng.integers(0, len(OUTPUTS))) if rng.random() < 1 / genes else out
            children.append(evaluate(Genotype(tuple(bits), out)))
        pool = list(dict.fromkeys(pop + children))
        points = {k: seen[k][1:] for k in pool}
        survivors: list[str] = []
        for front in fronts(pool, points):
            order = rng.permutation(len(front))
            survivors += [front[i] for i in order][: population - len(survivors)]
            if len(survivors) == population:
                break
        pop = survivors
    return seen
