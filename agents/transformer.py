"""A small decoder-only character transformer, run for a whole population in one forward.

The nanoGPT layout (Radford et al. 2019, GPT-2; Karpathy's nanoGPT): token and position
embeddings, pre-LayerNorm blocks of causal self-attention (Vaswani et al. 2017) and a GELU
MLP, a final LayerNorm and a linear head (not weight-tied, so an encoding may factorize the
head and the embedding differently). Every layer is a ``LayerSpec`` and runs through the
layer API, so dense, factorized, low-rank or sparse parameter forms all work unchanged.
Activations are (P, B, T, C): members first, then windows, positions and channels; shared
inputs (the windows, the positions, the causal mask) are never copied per member.

Parameters (vocabulary V, context T, width C, L layers): V*C + T*C (embeddings)
+ L*(12*C^2 + 13*C) (blocks) + 2*C (final norm) + C*V + V (head). Defaults (L=2, C=64,
4 heads) on charlm/pydoc (V=104, T=64): 6,656 + 4,096 + 99,968 + 128 + 6,760 = 117,608.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F

from evoboard.agents.layers import LayerSpec, PopulationParams, embedding, layer_norm, linear
from evoboard.agents.policies import POLICIES, Policy
from evoboard.options import Checked, bounded


@dataclass
class CharTransformerOptions(Checked):
    """Sizes of the character transformer (its context length is the task's ``context``)."""

    n_layer: int = bounded(2, ge=1)
    """Transformer blocks."""
    n_embd: int = bounded(64, ge=1)
    """Residual stream width C."""
    n_head: int = bounded(4, ge=1)
    """Attention heads; must divide n_embd."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head ({self.n_head}) must divide n_embd ({self.n_embd})")


@POLICIES.register("char_transformer")
class CharTransformer(Policy):
    """Decoder-only transformer: token windows (P, B, T) -> next-character logits (P, B, T, V)."""

    name = "char_transformer"
    Options = CharTransformerOptions

    def __init__(self, vocab: int, context: int, options: CharTransformerOptions | None = None):
        self.vocab, self.context = vocab, context
        self.options = options or CharTransformerOptions()
        c, n = self.options.n_embd, self.options.n_layer
        # GPT-2 scales the init of projections into the residual stream by 1/sqrt(2L).
        residual = 1.0 / math.sqrt(2 * n)
        layers = [LayerSpec("wte", "embedding", vocab, c), LayerSpec("wpe", "embedding", context, c)]
        for i in range(n):
            layers += [
                LayerSpec(f"h{i}.ln1", "norm", c, c),
                LayerSpec(f"h{i}.attn", "linear", c, 3 * c),
                LayerSpec(f"h{i}.attn_proj", "linear", c, c, std=residual / math.sqrt(c)),
                LayerSpec(f"h{i}.ln2", "norm", c, c),
                LayerSpec(f"h{i}.mlp", "linear", c, 4 * c),
                LayerSpec(f"h{i}.mlp_proj", "linear", 4 * c, c, std=residual / math.sqrt(4 * c)),
            ]
        layers += [LayerSpec("ln_f", "norm", c, c), LayerSpec("head", "linear", c, vocab, output=True)]
        self.layers = tuple(layers)

    @classmethod
    def for_spaces(cls, observation_space: gym.Space, action_space: gym.Space, options=None) -> CharTransformer:
        """Windows of T token ids (MultiDiscrete, all V) in, a Discrete(V) next character out."""
        ok = (
            isinstance(observation_space, gym.spaces.MultiDiscrete)
            and observation_space.nvec.ndim == 1
            and isinstance(action_space, gym.spaces.Discrete)
            and bool((observation_space.nvec == action_space.n).all())
        )
        if not ok:
            raise ValueError(
                "the char_transformer policy needs windows of token ids (MultiDiscrete(T x V)) and Discrete(V) "
                f"actions, got {observation_space} and {action_space}"
            )
        return cls(int(action_space.n), int(observation_space.nvec.shape[0]), options)

    @property
    def parameter_count(self) -> int:
        """Evolved numbers per member (every weight, bias and norm gain)."""
        return sum(math.prod(t.shape) for layer in self.layers for t in layer.tensors())

    def forward(self, params: PopulationParams, tokens: torch.Tensor) -> torch.Tensor:
        """Logits for every member and position: tokens (P, B, T) int -> (P, B, T, V)."""
        p, b, t = tokens.shape
        if t > self.context:
            raise ValueError(f"windows of {t} tokens exceed the model's context of {self.context}")
        positions = torch.arange(t, device=tokens.device).expand(p, 1, t)  # (P, 1, T), a view
        x = embedding(tokens, params["wte"]) + embedding(positions, params["wpe"])  # (P, B, T, C)
        x = x.reshape(p, b * t, -1)  # (P, N, C), N = B*T: the shape the layer API takes
        for i in range(self.options.n_layer):
            x = x + self._attention(layer_norm(x, params[f"h{i}.ln1"]), params, i, b, t)
            hidden = F.gelu(linear(layer_norm(x, params[f"h{i}.ln2"]), params[f"h{i}.mlp"]))  # (P, N, 4C)
            x = x + linear(hidden, params[f"h{i}.mlp_proj"])
        logits = linear(layer_norm(x, params["ln_f"]), params["head"])  # (P, N, V)
        return logits.reshape(p, b, t, -1)

    def _attention(self, x: torch.Tensor, params: PopulationParams, i: int, b: int, t: int) -> torch.Tensor:
        """Causal multi-head self-attention within each window: x (P, B*T, C) -> (P, B*T, C)."""
        p, _, c = x.shape
        h = self.options.n_head
        qkv = linear(x, params[f"h{i}.attn"]).reshape(p * b, t, 3, h, c // h)  # (P*B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (P*B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (P*B, H, T, D)
        y = y.transpose(1, 2).reshape(p, b * t, c)
        return linear(y, params[f"h{i}.attn_proj"])

    def act(self, params: PopulationParams, obs: torch.Tensor) -> torch.Tensor:
        """Token windows (P, B, T), or one window per member (P, T), -> logits (P, B, T, V) or (P, T, V)."""
        tokens = obs.long()
        if tokens.dim() == 2:
            return self.forward(params, tokens.unsqueeze(1))[:, 0]
        return self.forward(params, tokens)

    def widths(self) -> tuple[int, ...]:
        return (self.options.n_embd,)

    def narrowed(self, widths: tuple[int, ...]) -> CharTransformer:
        """The same depth and heads with residual width ``widths[0]``, rounded down to a multiple of n_head."""
        (width,) = widths
        o = self.options
        c = max(o.n_head, width - width % o.n_head)
        return CharTransformer(self.vocab, self.context, CharTransformerOptions(o.n_layer, c, o.n_head))

    def describe(self) -> str:
        o = self.options
        return f"char_transformer(L{o.n_layer},C{o.n_embd},H{o.n_head},T{self.context})"
