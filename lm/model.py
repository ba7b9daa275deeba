"""The decoder-only Transformer every run trains.

A modern pre-norm design in one file: RMSNorm, rotary position embeddings (RoPE, Su et al. 2021),
causal attention through `F.scaled_dot_product_attention`, a SwiGLU feed-forward (Shazeer 2020) with
d_ff ≈ 8/3·d_model so it costs what a 4·d_model GELU MLP would, no bias terms, optional tied
embeddings. The model's parameter, FLOP and memory accounting lives next door in `lm/accounting.py`,
computed from the same `ModelConfig` (it imports this module, never the reverse);
`lm.accounting.checked_param_counts(model)` checks its closed form against `numel()`.

Initialisation is scaled by fan-in (std = fan_in^-1/2), and the two projections that write into the
residual stream are further scaled by 1/sqrt(2·n_layers) (GPT-2, Radford et al. 2019), so the residual
stream's variance stays O(1) at any depth: the same rule trains 10^4- and 10^8-parameter models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lm.field_error import FieldError


def swiglu_hidden_size(d_model: int) -> int:
    """d_ff ≈ 8/3·d_model, rounded to a multiple of 8 (of 64 from d_model 512) for efficient matmuls.

    8/3 keeps SwiGLU's three matrices at the parameter count of a 4·d_model two-matrix MLP
    (Shazeer 2020; LLaMA, Touvron et al. 2023).
    """
    multiple = 64 if d_model >= 512 else 8
    return max(multiple, multiple * round(8 * d_model / 3 / multiple))


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Shape of a Transformer. Frozen and validated: a bad value raises ValueError naming the field."""

    vocab_size: int
    context_length: int
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int = 0  # 0 means "derive from d_model" (see swiglu_hidden_size)
    tie_embeddings: bool = False
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "n_layers", "d_model", "n_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise FieldError("ModelConfig", name, f"must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise FieldError("ModelConfig", "n_heads",
                             f"must divide d_model: {self.d_model} is not divisible by {self.n_heads}")
        if self.head_dim % 2:
            raise FieldError("ModelConfig", "n_heads",
                             f"head_dim = d_model / n_heads must be even for RoPE, got {self.head_dim}")
        if not isinstance(self.d_ff, int) or self.d_ff < 0:
            raise FieldError("ModelConfig", "d_ff", f"must be a non-negative integer (0 = derive), got {self.d_ff!r}")
        if self.d_ff == 0:
            object.__setattr__(self, "d_ff", swiglu_hidden_size(self.d_model))
        if not isinstance(self.tie_embeddings, bool):
            raise FieldError("ModelConfig", "tie_embeddings", f"must be true or false, got {self.tie_embeddings!r}")
        if not self.rope_theta > 0:
            raise FieldError("ModelConfig", "rope_theta", f"must be positive, got {self.rope_theta!r}")
        if not 0 < self.norm_eps < 1:
            raise FieldError("ModelConfig", "norm_eps", f"must be in (0, 1), got {self.norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {sorted(unknown)}")
        return cls(**d)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · g  (Zhang & Sennrich 2019); computed in fp32 for stability."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).type_as(x)


def rope_tables(head_dim: int, length: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position·θ^(-2i/head_dim), each (length, head_dim/2)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., i], x[..., i + hd/2]) by the position's angle. x: (B, nh, T, hd); cos/sin: (T, hd/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.type_as(x)


class KVCache:
    """Keys and values of the tokens seen so far, per layer, preallocated to the context length."""

    def __init__(self, config: ModelConfig, batch_size: int, *, device=None, dtype=torch.float32):
        shape = (config.n_layers, batch_size, config.n_heads, config.context_length, config.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # tokens already stored; advanced by Transformer.forward after all layers ran

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            past = cache.length
            k, v = cache.update(layer, k, v)
            if past == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # new query i sits at position past + i and may see keys 0 .. past + i
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    """FFN(x) = W_down (SiLU(W_gate x) ⊙ W_up x); gate and up share one matmul."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(config.d_model, 2 * config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x, cos, sin, cache=None, layer=0):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = RMSNorm(config.d_model, config.norm_eps)
        self.head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        cos, sin = rope_tables(config.head_dim, config.context_length, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        c = self.config
        residual_scale = 1 / math.sqrt(2 * c.n_layers)
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=c.d_model**-0.5)
            nn.init.normal_(block.attn.out.weight, std=c.d_model**-0.5 * residual_scale)
            nn.init.normal_(block.mlp.gate_up.weight, std=c.d_model**-0.5)
            nn.init.normal_(block.mlp.down.weight, std=c.d_ff**-0.5 * residual_scale)
        for module in self.modules():
            if isinstance(module, RMSNorm):
                module.weight.fill_(1.0)
        if self.head is None:  # tied: the table is also the output head, so it must be fan-in scaled
            nn.init.normal_(self.embedding.weight, std=c.d_model**-0.5)
        else:  # pre-norm means the embedding's scale only sets the residual stream's starting size
            nn.init.normal_(self.embedding.weight, std=1.0)
            nn.init.normal_(self.head.weight, std=c.d_model**-0.5)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *, cache: KVCache | None = None):
        """idx: (B, T) token ids. Returns (logits (B, T, V), mean cross-entropy in nats or None)."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.context_length:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds context_length={self.config.context_length}"
            )
        cos, sin = self.rope_cos[start : start + T], self.rope_sin[start : start + T]
        x = self.embedding(idx)
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, layer)
        if cache is not None:
            cache.length += T
        x = self.final_norm(x)
        logits = self.head(x) if self.head is not None else x @ self.embedding.weight.t()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
