"""Exact resource accounting for a `ModelConfig`: parameters, FLOPs, training memory, MFU.

Everything downstream (sweeps sizing runs, analysis fitting laws) takes its numbers from here.

Parameter groups (see docs/methods.md):
    embedding  vocab·d            the input table (a lookup: costs no FLOPs)
    head       vocab·d            the output projection (0 when tied: it reuses the embedding table)
    blocks     L·(4d² + 3·d·d_ff) attention (qkv, out) and SwiGLU matrices
    norms      (2L + 1)·d         RMSNorm gains
Conventions for "N":
    non_embedding  blocks + norms                 (Kaplan et al. 2020)
    total          every parameter, once          (Hoffmann et al. 2022)
    with_head      blocks + norms + vocab·d       (Porian et al. 2024: every parameter that does a
                                                   matmul per token, so 6·N·D tracks real compute even
                                                   for small models, whose output head dominates)
FLOPs per token (a multiply-add is 2 FLOPs; backward costs twice the forward, so training = 3× forward):
    "6N_<convention>"  6·N, the usual approximation
    "exact"            every matmul the model runs: 2·(blocks matrices + vocab·d) plus attention's
                       QKᵀ and AV, 4·T·d per layer and token, over the full T×T square, as
                       torch's FLOP counter sees `scaled_dot_product_attention` (a fused causal
                       kernel may skip the masked half; we count it, as Hoffmann et al. do).
                       Norms, softmax, activations and the optimizer step are not matmuls and are
                       not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from lm.conventions import (COMPUTE_CONVENTIONS, DEFAULT_COMPUTE, DEFAULT_N_CONVENTION, FLOP_CONVENTIONS,  # noqa: F401
                            N_CONVENTIONS, PRECISIONS)
from lm.model import ModelConfig, Transformer


@dataclass(frozen=True)
class ParamCounts:
    embedding: int
    head: int
    blocks: int
    norms: int
    vocab_times_width: int  # the head's matmul size, counted by `with_head` even when tied

    @property
    def total(self) -> int:
        return self.embedding + self.head + self.blocks + self.norms

    @property
    def non_embedding(self) -> int:
        return self.blocks + self.norms

    @property
    def with_head(self) -> int:
        return self.blocks + self.norms + self.vocab_times_width

    def n(self, convention: str) -> int:
        """The parameter count N under a named convention (see the module docstring)."""
        if convention not in N_CONVENTIONS:
            raise ValueError(f"unknown N convention {convention!r}; choose one of {N_CONVENTIONS}")
        return getattr(self, convention)

    def to_dict(self) -> dict:
        return {
            "embedding": self.embedding, "head": self.head, "blocks": self.blocks, "norms": self.norms,
            "total": self.total, "non_embedding": self.non_embedding, "with_head": self.with_head,
        }


def param_counts(cfg: ModelConfig) -> ParamCounts:
    d, L, V = cfg.d_model, cfg.n_layers, cfg.vocab_size
    return ParamCounts(
        embedding=V * d,
        head=0 if cfg.tie_embeddings else V * d,
        blocks=L * (4 * d * d + 3 * d * cfg.d_ff),
        norms=(2 * L + 1) * d,
        vocab_times_width=V * d,
    )


def checked_param_counts(model: Transformer) -> ParamCounts:
    """`param_counts(model.config)`, checked against the model's real tensors (AssertionError if they differ)."""
    counts = param_counts(model.config)
    actual = sum(p.numel() for p in model.parameters())
    if counts.total != actual:
        raise AssertionError(f"closed-form parameter count {counts.total} != sum(numel) {actual}")
    return counts


def forward_flops_per_token(cfg: ModelConfig, convention: str = "exact", *, context_length: int | None = None) -> float:
    """Forward-pass FLOPs per token; `context_length` defaults to the config's (the attention term)."""
    if convention not in FLOP_CONVENTIONS:
        raise ValueError(f"unknown FLOP convention {convention!r}; choose one of {FLOP_CONVENTIONS}")
    counts = param_counts(cfg)
    if convention != "exact":
        return 2.0 * counts.n(convention.removeprefix("6N_"))
    T = context_length or cfg.context_length
    matmul_params = counts.blocks + counts.vocab_times_width
    attention = 4 * cfg.n_layers * T * cfg.d_model
    return float(2 * matmul_params + attention)


def training_flops_per_token(cfg: ModelConfig, convention: str = "exact", *, context_length: int | None = None) -> float:
    """Forward + backward FLOPs per token: 3× the forward (the backward computes two matmuls per forward one)."""
    return 3.0 * forward_flops_per_token(cfg, convention, context_length=context_length)


def flop_convention(compute: str, n_convention: str) -> str:
    """The FLOP convention a budget counts: "exact", or "6N_<n_convention>" for compute "6N"."""
    if compute not in COMPUTE_CONVENTIONS:
        raise ValueError(f"compute must be one of {COMPUTE_CONVENTIONS}, got {compute!r}")
    if n_convention not in N_CONVENTIONS:
        raise ValueError(f"n_convention must be one of {N_CONVENTIONS}, got {n_convention!r}")
    return "exact" if compute == "exact" else f"6N_{n_convention}"


def compute_per_token(cfg: ModelConfig, compute: str, n_convention: str) -> float:
    """Training FLOPs per token under a sweep's compute convention: what one token costs against its budget."""
    return training_flops_per_token(cfg, flop_convention(compute, n_convention))


def compute_columns(cfg: ModelConfig, tokens: int) -> dict[str, float]:
    """C of `tokens` training tokens under every FLOP convention, as the results table names them
    (C_exact, C_6N_total, C_6N_with_head, C_6N_non_embedding), so any convention can be refitted later."""
    return {f"C_{c}": tokens * training_flops_per_token(cfg, c) for c in FLOP_CONVENTIONS}


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory in bytes, by what holds it."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations

    def to_dict(self) -> dict:
        return {"parameters": self.parameters, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations, "total": self.total}


def activation_elements_per_token(cfg: ModelConfig, context_length: int | None = None) -> dict[str, int]:
    """Elements saved for the backward pass per token, split by where they are held.

    Per layer: the attention norm's input and output (2d), q/k/v (3d) and rotated q/k (2d), attention
    output (d), the MLP norm's input and output (2d), gate/up output (2·d_ff), SiLU(gate) and the product
    fed to the down projection (2·d_ff). Plus the final norm (2d), and the logits with their softmax
    (2·vocab, always fp32 for the loss). Attention itself keeps the T×T probabilities per head on the
    math kernel (CPU); fused kernels (flash/memory-efficient, used on GPU) keep only O(T) statistics.
    """
    d, L = cfg.d_model, cfg.n_layers
    T = context_length or cfg.context_length
    return {
        "layers": L * (12 * d + 4 * cfg.d_ff),
        "attention_matrix": L * cfg.n_heads * T,
        "final": 2 * d,
        "logits": 2 * cfg.vocab_size,
    }


def training_memory(
    cfg: ModelConfig, *, batch_size: int, precision: str = "fp32", context_length: int | None = None,
    fused_attention: bool | None = None,
) -> MemoryEstimate:
    """Bytes to train with AdamW at `batch_size` sequences of `context_length` tokens.

    fp32: 4-byte parameters, gradients and activations. bf16 mixed precision (autocast): parameters and
    gradients stay fp32 (the master copy), activations are 2 bytes except the fp32 logits. AdamW keeps two
    fp32 moments per parameter either way. `fused_attention` defaults to True for bf16 (GPU kernels).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    n = param_counts(cfg).total
    T = context_length or cfg.context_length
    act_bytes = 4 if precision == "fp32" else 2
    fused = (precision == "bf16") if fused_attention is None else fused_attention
    per_token = activation_elements_per_token(cfg, T)
    tokens = batch_size * T
    activations = tokens * (
        act_bytes * (per_token["layers"] + per_token["final"])
        + 4 * per_token["logits"]
        + (0 if fused else act_bytes * per_token["attention_matrix"])
    )
    return MemoryEstimate(parameters=4 * n, gradients=4 * n, optimizer=8 * n, activations=int(activations))


def mfu(tokens_per_second: float, cfg: ModelConfig, peak_flops: float, *, context_length: int | None = None) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s under the exact count, over the device's peak."""
    return tokens_per_second * training_flops_per_token(cfg, "exact", context_length=context_length) / peak_flops
