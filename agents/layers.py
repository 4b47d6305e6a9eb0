"""Layer specs, population-batched parameter forms, and the layer API that dispatches on them.

A policy describes its layers with ``LayerSpec`` (so an encoding can decide how to store
and mutate each tensor) and runs its forward through ``linear``, ``conv2d``, ``embedding``
and ``layer_norm``. Each of those calls a method of the parameter *form* it is given:
dense forms live here; encodings add factorized, low-rank-perturbed or sparse forms as new
classes without touching any policy. Every tensor carries the population first, and every
form runs all P members in one batched call.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

KINDS = ("linear", "conv2d", "embedding", "norm")


@dataclass(frozen=True)
class TensorSpec:
    """One evolved tensor of a layer and its initial distribution N(mean, std^2)."""

    role: str  # "weight" or "bias"
    shape: tuple[int, ...]
    std: float
    mean: float = 0.0
    scale: float | None = None
    """What a mutation scale is relative to; None: ``std``. Set for tensors that start constant (std 0)."""

    @property
    def mutation_scale(self) -> float:
        """The unit of this tensor's mutations: every encoding moves it by ``sigma`` times this."""
        return self.std if self.scale is None else self.scale


@dataclass(frozen=True)
class LayerSpec:
    """A layer's kind and shape. Linear/conv: features or channels in and out; embedding:
    vocabulary in, width out; norm: width in and out. ``std`` overrides the weight init scale.
    ``output`` marks a policy's action layer (RL heads), which ``lowrank`` keeps dense by default."""

    name: str
    kind: str
    in_features: int
    out_features: int
    kernel: int = 1
    stride: int = 1
    std: float | None = None
    output: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"layer kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def fan_in(self) -> int:
        return self.in_features * self.kernel * self.kernel if self.kind == "conv2d" else self.in_features

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind == "conv2d":
            return (self.out_features, self.in_features, self.kernel, self.kernel)
        if self.kind == "embedding":
            return (self.in_features, self.out_features)
        if self.kind == "norm":
            return (self.out_features,)
        return (self.out_features, self.in_features)

    @property
    def matrix_shape(self) -> tuple[int, int] | None:
        """The weight as a matrix (conv kernels as (out, in*k*k)); None for norms."""
        if self.kind == "norm":
            return None
        rows = self.weight_shape[0]
        return (rows, math.prod(self.weight_shape) // rows)

    def tensors(self) -> list[TensorSpec]:
        """Every tensor of the layer with its init: LeCun-normal weights, zero biases, unit norms.

        Mutation scales (``TensorSpec.mutation_scale``): a weight's init std; a bias, which starts
        at 0, takes its layer's weight std (as Garbus & Pollack's relative rates do); a LayerNorm
        gain and bias take 1, the gain's init value. Jevo.jl (``src/organisms/nn/utils.jl``,
        ``apply_kaiming_normal_noise_factored!``) scales every mutation by the tensor's Kaiming
        std, which for a vector (fan-in 1 by ``Flux.nfan``) is sqrt(2) whatever its layer.
        """
        if self.kind == "norm":
            width = (self.out_features,)
            return [TensorSpec("weight", width, 0.0, 1.0, scale=1.0), TensorSpec("bias", width, 0.0, scale=1.0)]
        std = self.std if self.std is not None else 1.0 / math.sqrt(self.fan_in)
        weight = TensorSpec("weight", self.weight_shape, std)
        if self.kind == "embedding":
            return [weight]
        return [weight, TensorSpec("bias", (self.out_features,), 0.0, scale=std)]


class LayerParams(ABC):
    """One layer's parameters for a whole population: members along dim 0.

    A form implements the forwards its layer kind needs; the rest say so clearly.
    """

    @abstractmethod
    def select(self, members: torch.Tensor) -> LayerParams:
        """The same layer for a subset of members (indices may repeat)."""

    @abstractmethod
    def __len__(self) -> int:
        """Population size P."""

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """x (P, N, in) -> (P, N, out)."""
        raise TypeError(f"{type(self).__name__} has no linear forward")

    def conv2d(self, x: torch.Tensor) -> torch.Tensor:
        """x (P, N, C, H, W) -> (P, N, out, H', W')."""
        raise TypeError(f"{type(self).__name__} has no conv2d forward")

    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (P, N, T) integer -> (P, N, T, width)."""
        raise TypeError(f"{type(self).__name__} has no embedding forward")

    def layer_norm(self, x: torch.Tensor) -> torch.Tensor:
        """x (P, ..., width) -> same shape, normalised over the last dim."""
        raise TypeError(f"{type(self).__name__} has no layer_norm forward")

    def materialize(self) -> LayerParams:
        """The same members as a dense form (each member's full weights): for checks and export."""
        return self

    def cast(self, dtype: torch.dtype) -> LayerParams:
        """The same members with every floating tensor in ``dtype``, converted once per form and dtype.

        A form's tensors are fixed for its life (forms are frozen), so the copy is kept on the form:
        the policy asks for it every step, and converting every step would stream the weights twice.
        """
        if all(t.dtype == dtype for t in _floating(self).values()):
            return self
        casts = self.__dict__.setdefault("_casts", {})  # frozen dataclass: its __dict__ still takes a cache
        if dtype not in casts:
            if hasattr(self, "map_inner"):  # a wrapper form: cast what it wraps
                casts[dtype] = self.map_inner(lambda inner: inner.cast(dtype))
            elif dataclasses.is_dataclass(self):
                casts[dtype] = dataclasses.replace(self, **{k: t.to(dtype) for k, t in _floating(self).items()})
            else:
                raise TypeError(f"{type(self).__name__} cannot be cast to {dtype}")
        return casts[dtype]


def _floating(form: LayerParams) -> dict[str, torch.Tensor]:
    """A dataclass form's floating-point tensor fields by name."""
    if not dataclasses.is_dataclass(form):
        return {}
    tensors = {f.name: getattr(form, f.name) for f in dataclasses.fields(form)}
    return {k: t for k, t in tensors.items() if isinstance(t, torch.Tensor) and t.is_floating_point()}


@dataclass(frozen=True)
class DenseLinear(LayerParams):
    """Dense weights W (P, out, in) and bias b (P, out): one ``baddbmm`` for all members."""

    weight: torch.Tensor  # (P, out, in)
    bias: torch.Tensor  # (P, out)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def select(self, members: torch.Tensor) -> DenseLinear:
        return DenseLinear(self.weight[members], self.bias[members])  # not vars(self): it holds ``cast``'s cache

    def __len__(self) -> int:
        return self.weight.shape[0]


def member_conv(x: torch.Tensor, kernels: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """Each member's own kernels on its own inputs, as one grouped convolution.

    x (P, N, C, H, W), kernels (P*F, C, k, k) member by member, bias (P*F,) -> (P, N, F, H', W').
    A lone member runs beside a copy of itself: with ``groups=1`` torch takes another conv
    algorithm whose last bits differ (measured on the Nature CNN), and a member's output must
    not depend on how many others share its batch, since backends shard members differently.
    """
    p, n, c, h, w = x.shape
    if p == 1:
        twin_bias = None if bias is None else bias.repeat(2)
        return member_conv(x.expand(2, -1, -1, -1, -1), kernels.repeat(2, 1, 1, 1), twin_bias, stride)[:1]
    grouped = x.transpose(0, 1).reshape(n, p * c, h, w)  # members side by side as channel groups
    y = F.conv2d(grouped, kernels, bias, stride=stride, groups=p)  # (N, P*F, H', W')
    return y.reshape(n, p, -1, *y.shape[-2:]).transpose(0, 1)


@dataclass(frozen=True)
class DenseConv2d(LayerParams):
    """Dense kernels (P, out, in, k, k): P distinct members as one grouped convolution."""

    weight: torch.Tensor  # (P, out, in, k, k)
    bias: torch.Tensor  # (P, out)
    stride: int = 1

    @cached_property
    def _kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernels (P*out, in, k, k) and bias (P*out,) as grouped conv takes them, made once per form.

        The weight is usually a view of the search vectors (P, D), not contiguous, so reshaping
        it copied every member's kernels on every step; the values are the same either way.
        """
        return self.weight.reshape(-1, *self.weight.shape[2:]).contiguous(), self.bias.reshape(-1).contiguous()

    def conv2d(self, x: torch.Tensor) -> torch.Tensor:
        kernels, bias = self._kernels
        return member_conv(x, kernels, bias, self.stride)

    def select(self, members: torch.Tensor) -> DenseConv2d:
        return DenseConv2d(self.weight[members], self.bias[members], self.stride)

    def __len__(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True)
class DenseEmbedding(LayerParams):
    """A token table (P, vocab, width) per member, looked up for all members at once."""

    weight: torch.Tensor  # (P, vocab, width)

    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        p, n, t = tokens.shape
        rows = tokens.reshape(p, n * t, 1).expand(-1, -1, self.weight.shape[-1])
        return torch.gather(self.weight, 1, rows).reshape(p, n, t, -1)

    def select(self, members: torch.Tensor) -> DenseEmbedding:
        return DenseEmbedding(self.weight[members])

    def __len__(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True)
class DenseNorm(LayerParams):
    """LayerNorm gain and bias (P, width) per member."""

    weight: torch.Tensor  # (P, width)
    bias: torch.Tensor  # (P, width)
    eps: float = 1e-5

    def layer_norm(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        normed = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return normed * self.weight.reshape(shape) + self.bias.reshape(shape)

    def select(self, members: torch.Tensor) -> DenseNorm:
        return DenseNorm(self.weight[members], self.bias[members], self.eps)

    def __len__(self) -> int:
        return self.weight.shape[0]


def dense_form(layer: LayerSpec, tensors: dict[str, torch.Tensor]) -> LayerParams:
    """The dense form of ``layer`` from its tensors by role, each (P, *shape)."""
    if layer.kind == "linear":
        return DenseLinear(tensors["weight"], tensors["bias"])
    if layer.kind == "conv2d":
        return DenseConv2d(tensors["weight"], tensors["bias"], layer.stride)
    if layer.kind == "embedding":
        return DenseEmbedding(tensors["weight"])
    return DenseNorm(tensors["weight"], tensors["bias"])


def linear(x: torch.Tensor, params: LayerParams) -> torch.Tensor:
    """Affine layer for every member at once: x (P, N, in) -> (P, N, out)."""
    return params.linear(x)


def conv2d(x: torch.Tensor, params: LayerParams) -> torch.Tensor:
    """Convolution for every member at once: x (P, N, C, H, W) -> (P, N, out, H', W')."""
    return params.conv2d(x)


def embedding(tokens: torch.Tensor, params: LayerParams) -> torch.Tensor:
    """Token lookup for every member at once: tokens (P, N, T) -> (P, N, T, width)."""
    return params.embedding(tokens)


def layer_norm(x: torch.Tensor, params: LayerParams) -> torch.Tensor:
    """LayerNorm for every member at once over the last dim of x (P, ..., width)."""
    return params.layer_norm(x)


class PopulationParams(dict[str, LayerParams]):
    """All layers of a population of networks, by layer name; every layer has P members."""

    def select(self, members: torch.Tensor) -> PopulationParams:
        """The parameters of ``members`` only (e.g. the members still running)."""
        return PopulationParams({name: p.select(members) for name, p in self.items()})

    @property
    def population(self) -> int:
        return len(next(iter(self.values())))

    def cast(self, dtype: torch.dtype) -> PopulationParams:
        """Every layer with its floating tensors in ``dtype`` (each form converts once: ``LayerParams.cast``)."""
        return PopulationParams({name: p.cast(dtype) for name, p in self.items()})
