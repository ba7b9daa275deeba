"""The sections of a sweep file (`training:`, `isoflop:`, `resources:`, ...) as frozen, keyword-only dataclasses.

Each checks at construction the rules it can decide alone and raises SweepConfigError under its own field
name (the reader re-keys it under the section's key). The fields a sweep gives every run (the corpus, and
training's schedule, optimiser and evaluation settings) are ExperimentSpec's: they take the spec's defaults
here, and the spec's rules when sweeps/run_fields.py builds one (so a file reports them as, say,
`training.warmup_fraction`). The schema is in sweeps/config.py's docstring.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from experiments.spec import ExperimentSpec
from lm.data import CorpusConfig
from lm.field_error import FieldError
from lm.model import ModelConfig
from lm.tokenizer import MIN_VOCAB_SIZE
from sweeps.errors import SweepConfigError, require, require_each
from sweeps.size_lattice import shared_targets

DEVICE_KINDS = ("cpu", "gpu")


@dataclass(frozen=True, kw_only=True)
class PowerRule:
    """value = k · x^p · D^q · multiplier for each multiplier, x = the run's N or its cell's C (`of`), D the run's
    training tokens. q = 0 (the default) leaves D out; a negative q is a learning rate that falls with the token
    horizon, lr_opt ∝ N^-α·D^-β (Bjorck et al. 2024, "Scaling Optimal LR Across Token Horizons")."""

    k: float
    p: float
    of: str = "N"
    q: float = 0.0
    multipliers: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        require(self.k > 0 and math.isfinite(self.k), "k", f"must be a positive number, got {self.k!r}")
        require(math.isfinite(self.p), "p", f"must be a finite number, got {self.p!r}")
        require(math.isfinite(self.q), "q", f"must be a finite number, got {self.q!r}")
        require(self.of in ("N", "C"), "of", f"must be N or C, got {self.of!r}")
        require(len(self.multipliers) > 0, "multipliers", "must not be empty")
        require_each(self.multipliers, "multipliers", lambda m: m > 0, "must be positive")
        require(len(set(self.multipliers)) == len(self.multipliers), "multipliers", "has duplicate values")

    def values(self, *, N: float, C: float, D: float | None = None) -> list[float]:
        x = N if self.of == "N" else C
        if self.q and D is None:
            raise ValueError("PowerRule with q != 0 needs the run's D")
        horizon = D**self.q if self.q else 1.0
        return [self.k * x**self.p * horizon * m for m in self.multipliers]


@dataclass(frozen=True, kw_only=True)
class CorpusSection:
    """`corpus:`, lm.data.CorpusConfig's fields (source and vocab_size required here), with the spec's defaults
    for them; their rules are checked with the other run fields (sweeps/run_fields.py)."""

    source: str
    vocab_size: int
    max_bytes: int | None = ExperimentSpec.corpus_max_bytes
    text_field: str = ExperimentSpec.corpus_text_field
    val_fraction: float = ExperimentSpec.corpus_val_fraction
    seed: int = ExperimentSpec.corpus_seed

    def corpus_config(self) -> CorpusConfig:
        return CorpusConfig(**dataclasses.asdict(self))


@dataclass(frozen=True, kw_only=True)
class Cooldown:
    """A wsd schedule's cooldown: its share of each run's steps, and its shape (lm.optim.Schedule checks it)."""

    fraction: float = ExperimentSpec.cooldown_fraction
    shape: str = ExperimentSpec.cooldown_shape

    def __post_init__(self):  # stricter than Schedule's (0, 1]: a branch needs a stable phase to leave its trunk at
        require(0 < self.fraction < 1, "fraction", f"must be in (0, 1), got {self.fraction!r}")


@dataclass(frozen=True, kw_only=True)
class WSDSection:
    """Trunks and cooldown branches (sweeps/wsd.py): the warmup they share, and optionally a limit on trunks."""

    warmup_tokens: int  # the fixed warmup of every trunk and branch, rounded to whole steps per batch size
    trunk_tokens: int | None = None  # the longest stable phase any trunk may train (a guard); None: no limit

    def __post_init__(self):
        require(self.warmup_tokens >= 0, "warmup_tokens", f"must be >= 0, got {self.warmup_tokens!r}")
        require(self.trunk_tokens is None or self.trunk_tokens >= 1, "trunk_tokens",
                f"must be a positive number of tokens, got {self.trunk_tokens!r}")


@dataclass(frozen=True, kw_only=True)
class TrainingSection:
    """`training:`. The axes (batch_size, lr), the replicates and the wsd cooldown are the sweep's own; every
    other field is an ExperimentSpec field, with the spec's default, its rule checked by building the spec
    (sweeps/run_fields.py)."""

    context_length: int
    batch_size: tuple[int, ...] | PowerRule  # sequences per step: one run per value, or a rule
    lr: tuple[float, ...] | PowerRule  # peak learning rate: one run per value, or a rule
    schedule: str = ExperimentSpec.schedule
    warmup_fraction: float = ExperimentSpec.warmup_fraction
    min_lr_ratio: float = ExperimentSpec.min_lr_ratio
    cooldown_fraction: float = ExperimentSpec.cooldown_fraction
    weight_decay: float = ExperimentSpec.weight_decay
    grad_clip: float = ExperimentSpec.grad_clip
    seed: int = ExperimentSpec.seed
    seeds: int = 1  # replicates of every cell, seeds seed .. seed+seeds-1 (sweeps/replicates.py)
    beta2: float | str = "auto"  # AdamW β2: "auto" (the spec's default, lm.optim.beta2_for_batch) or a number
    precision: str = ExperimentSpec.precision
    eval_tokens: int = ExperimentSpec.eval_tokens
    tie_embeddings: bool = ExperimentSpec.tie_embeddings
    cooldown: Cooldown | None = None  # wsd only; replaces cooldown_fraction

    def __post_init__(self):
        if isinstance(self.batch_size, PowerRule):
            require(self.batch_size.q == 0, "batch_size.q", "a horizon exponent applies to lr only (a batch size "
                    "is chosen before the run's D)")
        else:
            require(len(self.batch_size) > 0, "batch_size", "must not be empty")
            require_each(self.batch_size, "batch_size", lambda b: b >= 1, "must be a positive integer")
        if not isinstance(self.lr, PowerRule):
            require(len(self.lr) > 0, "lr", "must not be empty")
            require_each(self.lr, "lr", lambda v: v > 0, "must be positive")
        require(self.cooldown is None or self.schedule == "wsd", "cooldown", "is for the wsd schedule only")
        require(self.cooldown is None or self.cooldown_fraction == ExperimentSpec.cooldown_fraction, "cooldown",
                "give the fraction as cooldown.fraction, not also as cooldown_fraction")
        require(self.seeds >= 1, "seeds", f"must be an integer >= 1 (replicates per cell), got {self.seeds!r}")
        require(self.eval_tokens >= self.context_length, "eval_tokens",
                f"must be at least one window of context_length={self.context_length} tokens, got {self.eval_tokens}")

    def batch_sizes(self, *, N: float, C: float) -> list[int]:
        if isinstance(self.batch_size, PowerRule):
            return list(dict.fromkeys(max(1, round(b)) for b in self.batch_size.values(N=N, C=C)))
        return list(self.batch_size)

    def lrs(self, *, N: float, C: float, D: float | None = None) -> list[float]:
        if isinstance(self.lr, PowerRule):  # rounded so the run id does not hang on the last bit of pow()
            return [float(f"{v:.6g}") for v in self.lr.values(N=N, C=C, D=D)]
        return list(self.lr)


@dataclass(frozen=True, kw_only=True)
class Center:
    """The IsoFLOP cell's expected optimum: N_opt = sqrt(C / (6·tokens_per_param)), or k·C^p if k, p are set.

    tokens_per_param defaults to 20 (Hoffmann et al. 2022) when neither form is given.
    """

    tokens_per_param: float | None = None
    k: float | None = None
    p: float | None = None

    def __post_init__(self):
        if self.k is None and self.p is None:
            require(self.tokens_per_param is None or self.tokens_per_param > 0, "tokens_per_param",
                    f"must be a positive number, got {self.tokens_per_param!r}")
        else:
            require(self.tokens_per_param is None, "tokens_per_param", "give either tokens_per_param or k and p")
            require(self.k is not None and self.k > 0, "k", f"must be a positive number, got {self.k!r}")
            require(self.p is not None and 0 < self.p < 1, "p", f"must be in (0, 1), got {self.p!r}")

    def n_opt(self, C: float) -> float:
        if self.k is not None:
            return self.k * C**self.p
        return math.sqrt(C / (6 * (self.tokens_per_param or 20.0)))  # C = 6·N·D with D = r·N


@dataclass(frozen=True, kw_only=True)
class IsoFLOPSection:
    budgets: tuple[float, ...]  # nominal compute budgets C in FLOPs (6·N·D)
    sizes_per_budget: int = 5
    span: float = 4.0  # sizes from N_opt/span to N_opt·span
    center: Center = field(default_factory=Center)
    shared_sizes: bool = False  # targets from one lattice shared by every budget (sweeps/size_lattice.py)

    def __post_init__(self):
        require(len(self.budgets) > 0, "budgets", "must not be empty")
        require_each(self.budgets, "budgets", lambda c: c > 0, "must be a positive number of FLOPs")
        require(len(set(self.budgets)) == len(self.budgets), "budgets", "has duplicate values")
        require(self.sizes_per_budget >= 1, "sizes_per_budget", f"must be >= 1, got {self.sizes_per_budget!r}")
        require(self.span > 1, "span", f"must be > 1 (a factor either side of N_opt), got {self.span!r}")
        require(not self.shared_sizes or self.sizes_per_budget >= 2, "shared_sizes",
                f"a shared size lattice needs sizes_per_budget >= 2, got {self.sizes_per_budget!r}")

    def size_targets(self, C: float) -> list[float]:
        """`sizes_per_budget` targets log-spaced over [N_opt/span, N_opt·span]."""
        n_opt = self.center.n_opt(C)
        if self.shared_sizes:
            return shared_targets(n_opt, span=self.span, count=self.sizes_per_budget)
        if self.sizes_per_budget == 1:
            return [n_opt]
        return [n_opt * self.span**e for e in np.linspace(-1.0, 1.0, self.sizes_per_budget).tolist()]


@dataclass(frozen=True, kw_only=True)
class Shape:
    """An explicit model of a grid sweep: lm.model.ModelConfig's shape fields, with its rules."""

    n_layers: int
    d_model: int
    n_heads: int

    def __post_init__(self):  # positive sizes, heads that divide the width, an even head size for RoPE
        try:  # vocabulary and context are the sweep's, checked with them; any valid stand-in serves here
            ModelConfig(vocab_size=MIN_VOCAB_SIZE, context_length=1, n_layers=self.n_layers, d_model=self.d_model,
                        n_heads=self.n_heads)
        except FieldError as e:
            raise SweepConfigError(e.field, e.reason) from None


@dataclass(frozen=True, kw_only=True)
class GridSection:
    """Models (N targets or explicit shapes) × token counts (D, or tokens_per_param·N per model)."""

    N: tuple[float, ...] | None = None
    shapes: tuple[Shape, ...] | None = None
    D: tuple[int, ...] | None = None
    tokens_per_param: tuple[float, ...] | None = None

    def __post_init__(self):
        require((self.N is None) != (self.shapes is None), "N", "give exactly one of N and shapes")
        require((self.D is None) != (self.tokens_per_param is None), "D", "give exactly one of D and tokens_per_param")
        for name in ("N", "shapes", "D", "tokens_per_param"):
            values = getattr(self, name)
            if values is not None:
                require(len(values) > 0, name, "must not be empty")
                if name != "shapes":
                    require_each(values, name, lambda v: v > 0, "must be positive")


@dataclass(frozen=True, kw_only=True)
class ResourcesSection:
    cpus_per_run: int = 1
    gpus_per_run: float | str = "auto"  # "auto" or a fraction in [0, 1]
    max_concurrent: int | None = None  # None: as many as the resources allow
    workers_per_run: int = 1  # data-parallel workers of one run (sweeps/distributed.py)
    workers_from_N: float | None = None  # runs with N >= this use workers_per_run; None: every run

    def __post_init__(self):
        require(self.cpus_per_run >= 1, "cpus_per_run", f"must be >= 1, got {self.cpus_per_run!r}")
        require(self.gpus_per_run == "auto" or (not isinstance(self.gpus_per_run, str) and 0 <= self.gpus_per_run <= 1),
                "gpus_per_run", f'must be "auto" or a number in [0, 1] (a run uses at most one GPU), '
                f"got {self.gpus_per_run!r}")
        require(self.max_concurrent is None or self.max_concurrent >= 1, "max_concurrent",
                f"must be >= 1 or null, got {self.max_concurrent!r}")
        require(self.workers_per_run >= 1, "workers_per_run", f"must be >= 1, got {self.workers_per_run!r}")
        require(self.workers_from_N is None or self.workers_from_N > 0, "workers_from_N",
                f"must be positive or null, got {self.workers_from_N!r}")

    def workers_for(self, N: float) -> int:
        """Data-parallel workers of a run of N parameters."""
        return self.workers_per_run if self.workers_from_N is None or N >= self.workers_from_N else 1


@dataclass(frozen=True, kw_only=True)
class PlanningSection:
    device: str | None = None  # the device kind the time estimate assumes; None: gpu unless gpus_per_run is 0
    flops_per_second: float | None = None  # achieved training FLOP/s per run; None: sweeps.plan defaults
    step_overhead_seconds: float | None = None  # fixed cost of one optimisation step; None: sweeps.plan defaults
    overhead_seconds: float = 1.0  # per-run start-up cost (process, model build, first evaluation)
    min_steps: int = 100  # fewest optimisation steps a planned run may have

    def __post_init__(self):
        require(self.device is None or self.device in DEVICE_KINDS, "device",
                f"must be one of {DEVICE_KINDS}, got {self.device!r}")
        require(self.flops_per_second is None or self.flops_per_second > 0, "flops_per_second",
                f"must be positive, got {self.flops_per_second!r}")
        require(self.step_overhead_seconds is None or self.step_overhead_seconds >= 0, "step_overhead_seconds",
                f"must be >= 0, got {self.step_overhead_seconds!r}")
        require(self.overhead_seconds >= 0, "overhead_seconds", f"must be >= 0, got {self.overhead_seconds!r}")
        require(self.min_steps >= 1, "min_steps", f"must be >= 1, got {self.min_steps!r}")


@dataclass(frozen=True, kw_only=True)
class ValidationSection:
    """The budgets of `scaling study`'s validation runs, as multiples of the sweep's largest budget: 4× and
    10× by default (issue 11: a test well outside the sweep, and a second one further out)."""

    multiples: tuple[float, ...] = (4.0, 10.0)

    def __post_init__(self):
        require(len(self.multiples) > 0, "multiples", "must not be empty")
        require_each(self.multiples, "multiples", lambda m: m > 1, "must be > 1 (a budget beyond the sweep's largest)")
        require(len(set(self.multiples)) == len(self.multiples), "multiples", "has duplicate values")
