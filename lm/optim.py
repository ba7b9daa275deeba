"""AdamW with the usual parameter groups, and learning-rate schedules over a run's own horizon.

Weight decay applies to the matrices only: RMSNorm gains and the embedding table are excluded, as in
GPT-3 and LLaMA practice (decaying a gain pulls it towards 0, not towards its neutral value 1).

Schedules (multipliers of the peak learning rate, a function of the step):
    cosine  linear warmup, then cosine decay to `min_lr_ratio` (10% of peak by default, Hoffmann et al.
            2022 §3) at the last step: each run decays over its own token horizon, which Chinchilla found
            necessary for honest IsoFLOP comparisons.
    wsd     warmup-stable-decay (Hu et al. 2024, MiniCPM): linear warmup, constant, then a cooldown to
            `min_lr_ratio` over the last `cooldown_fraction` of steps, shaped by `cooldown_shape`:
            "linear", or "1-sqrt" (1 - sqrt(progress)), which Hägele et al. 2024 ("Scaling Laws and
            Compute-Optimal Training Beyond Fixed Training Durations", §3) found to match or beat cosine
            where a linear cooldown falls slightly short.
    constant  linear warmup, then constant (a WSD trunk's stable phase).

`warmup_steps`, when given, fixes the warmup in steps instead of as a fraction of the run: a WSD trunk
and every cooldown branched off it must share one warmup, whatever their horizons (Hägele et al. 2024
also warm up for a fixed number of steps). Its default (None) leaves the schedule's identity as it was.

AdamW's β2 follows the batch (`beta2_for_batch`): the second-moment average keeps a constant half-life in
*tokens*, β2 = β2_ref^(B/B_ref) for B tokens per step (Marek et al. 2025, "Small Batch Size Training for
Language Models"), from the large-batch recipe β2_ref = 0.95 at B_ref = 2^19 ≈ 0.5M tokens (GPT-3's smallest
models, Brown et al. 2020, Table 2.1 and App. B), and kept within [0.95, 0.999]: Porian et al. 2024
("Resolving Discrepancies in Compute-Optimal Scaling of Language Models", §4) found 0.95 too low at small
batches, biasing the fitted exponent, and used up to 0.999 there. At 2,048 tokens per step the rule gives
0.9998 (a half-life of 3,500 steps, longer than most of our runs), so the upper bound, 0.999 (693 steps),
is what small CPU sweeps get; at 32k tokens per step 0.9968.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from lm.field_error import FieldError

SCHEDULES = ("cosine", "wsd", "constant")
COOLDOWN_SHAPES = ("linear", "1-sqrt")
BETA1 = 0.9
BETA2_REFERENCE = 0.95  # at BETA2_REFERENCE_TOKENS per step (GPT-3, Brown et al. 2020)
BETA2_REFERENCE_TOKENS = 2**19
BETA2_RANGE = (0.95, 0.999)  # the values Porian et al. 2024 tuned between


def beta2_for_batch(tokens_per_step: int) -> float:
    """AdamW β2 with the reference's half-life in tokens, BETA2_REFERENCE^(B / B_ref), clipped to BETA2_RANGE
    and rounded to 6 digits (it enters run ids); see the module docstring."""
    if not tokens_per_step >= 1:
        raise ValueError(f"tokens_per_step must be >= 1, got {tokens_per_step!r}")
    beta2 = BETA2_REFERENCE ** (tokens_per_step / BETA2_REFERENCE_TOKENS)
    return float(f"{min(max(beta2, BETA2_RANGE[0]), BETA2_RANGE[1]):.6g}")


@dataclass(frozen=True, kw_only=True)
class Schedule:
    kind: str = "cosine"
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    cooldown_fraction: float = 0.2  # wsd only
    cooldown_shape: str = "linear"  # wsd only: COOLDOWN_SHAPES
    warmup_steps: int | None = None  # a fixed warmup in steps, overriding warmup_fraction

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise FieldError("Schedule", "kind", f"must be one of {SCHEDULES}, got {self.kind!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise FieldError("Schedule", "warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise FieldError("Schedule", "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio!r}")
        if not 0 < self.cooldown_fraction <= 1:
            raise FieldError("Schedule", "cooldown_fraction", f"must be in (0, 1], got {self.cooldown_fraction!r}")
        if self.kind == "wsd" and self.warmup_fraction + self.cooldown_fraction > 1:
            raise FieldError("Schedule", "cooldown_fraction",
                             "warmup_fraction + cooldown_fraction must not exceed 1 for the wsd schedule")
        if self.cooldown_shape not in COOLDOWN_SHAPES:
            raise FieldError("Schedule", "cooldown_shape",
                             f"must be one of {COOLDOWN_SHAPES}, got {self.cooldown_shape!r}")
        if self.warmup_steps is not None and (isinstance(self.warmup_steps, bool)
                                              or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0):
            raise FieldError("Schedule", "warmup_steps", f"must be an integer >= 0 or None, got {self.warmup_steps!r}")

    def warmup(self, total_steps: int) -> int:
        """Warmup steps of a `total_steps` run."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return math.ceil(self.warmup_fraction * total_steps)

    def cooldown_start(self, total_steps: int) -> int:
        """The first cooldown step of a wsd run of `total_steps` (where a branch leaves its trunk)."""
        return total_steps - math.ceil(self.cooldown_fraction * total_steps)

    def multiplier(self, step: int, total_steps: int) -> float:
        """Learning-rate multiplier for 0-based `step` of a `total_steps` run (peak = 1)."""
        warmup = self.warmup(total_steps)
        if step < warmup:
            return (step + 1) / warmup
        if self.kind == "constant":
            return 1.0
        floor = self.min_lr_ratio
        last = max(total_steps - 1, 1)
        if self.kind == "cosine":
            progress = min(1.0, (step - warmup) / max(last - warmup, 1))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        cooldown_start = self.cooldown_start(total_steps)
        if step < cooldown_start:
            return 1.0
        progress = min(1.0, (step - cooldown_start) / max(last - cooldown_start, 1))
        if self.cooldown_shape == "1-sqrt":
            return 1 - (1 - floor) * math.sqrt(progress)
        return 1 - (1 - floor) * progress

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """`to_dict` without the fields added later while at their defaults, so checkpoints made before
        them still match."""
        d = self.to_dict()
        for name, default in (("cooldown_shape", "linear"), ("warmup_steps", None)):
            if d[name] == default:
                d.pop(name)
        return d


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, betas=(BETA1, BETA2_REFERENCE),
                   eps: float = 1e-8):
    """torch AdamW, fused on CUDA and foreach elsewhere; no decay on norms and embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and not name.startswith("embedding") else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    on_cuda = any(p.is_cuda for p in decay + no_decay)
    kind = {"fused": True} if on_cuda else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **kind)
