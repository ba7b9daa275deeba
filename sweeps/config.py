"""Sweep files: YAML (yaml.safe_load rules) validated into frozen, keyword-only dataclasses.

Schema (commented IsoFLOP examples: the presets sweeps/*.yaml; a grid example closes this docstring):

    name: demo                      # required; [A-Za-z0-9][A-Za-z0-9._-]*, the store's sweep name
    kind: isoflop                   # required; isoflop | grid
    n_convention: with_head         # N that sizes models and that the laws are fitted in (lm.accounting.N_CONVENTIONS)
    compute: exact                  # what budgets count: exact (lm.accounting's FLOPs) or 6N (6·N·D, N as above)
    family:    {head_size: 16, aspect: 32 | depth, min_layers: 2}   # the one shape family (lm/family.py)
    corpus:    {source, vocab_size (required); max_bytes, text_field, val_fraction, seed}
    training:  {context_length, batch_size, lr (required); schedule, warmup_fraction, min_lr_ratio,
                cooldown_fraction, weight_decay, grad_clip, seed, precision, eval_tokens, tie_embeddings,
                seeds: 1 (replicates of every cell, seeds seed..seed+seeds-1, each its own run),
                beta2: auto (AdamW β2 for the batch's tokens, lm.optim.beta2_for_batch; or a number),
                cooldown: {fraction: 0.2, shape: linear | 1-sqrt} (wsd: the cooldown, instead of cooldown_fraction)}
    isoflop:   {budgets (required); sizes_per_budget: 5, span: 4, center: {tokens_per_param: 20},
                shared_sizes: false (true: every budget's targets from one lattice, sweeps/size_lattice.py)}
    wsd:       {warmup_tokens (required); trunk_tokens} (schedule wsd: one line of trunks per model, lr, batch
                size and seed, with a cooldown branch per token count; sweeps/wsd.py)
    grid:      {N or shapes (required); D or tokens_per_param (required)}
    resources: {cpus_per_run: 1, gpus_per_run: auto, max_concurrent: null, workers_per_run: 1, workers_from_N: null}
    planning:  {device, flops_per_second, step_overhead_seconds, overhead_seconds: 1, min_steps: 100}
    validation: {multiples: [4, 10]} (the study's validation runs, × the largest budget; each > 1)

Value forms:
    numbers      1e-3 and 1e11 are accepted although YAML 1.1 reads them as strings (no dot)
    lists        budgets, N, D, tokens_per_param: a number, a list, or {log_range: [low, high], num: k}
                 (k log-spaced values, rounded to 12 significant digits so that extending a range
                 reproduces the shared points, and hence the run ids, exactly)
    axes         training.lr and training.batch_size: a value, a list (one run per value in every cell),
                 or a rule {rule: power, k, p, of: N | C, q: 0, multipliers: [1]}: value = k·x^p·D^q·multiplier,
                 x the run's N or its cell's C (the budget; for grid runs the run's compute under `compute`),
                 D the run's tokens (q is for learning rates only; batch sizes are chosen before D).
                 Rule learning rates are rounded to 6 significant digits, batch sizes to the nearest integer >= 1.
    isoflop.center  {tokens_per_param: r}: N_opt = sqrt(C / (6r)), r = 20 by default (Hoffmann et al.
                 2022, Approach 3's ~20 tokens per parameter); or {k, p}: N_opt = k·C^p (e.g. a fitted
                 law). Sizes: `sizes_per_budget` log-spaced targets from N_opt/span to N_opt·span.
    grid.shapes  explicit models [{n_layers, d_model, n_heads}, ...] instead of N targets.
    resources.gpus_per_run  "auto" (a fraction of a GPU sized from the memory estimate, see
                 sweeps/schedule.py) or a number in [0, 1]; one worker never spans GPUs.
    resources.workers_per_run  k > 1 trains each run of N >= workers_from_N (every run when null)
                 data-parallel on k Ray Train workers (sweeps/distributed.py), each with cpus_per_run CPUs
                 and, on GPU, one whole GPU; batch_size must divide by k. It changes where a run trains,
                 not its numbers, so not its run id.

Errors: any unknown key (at any level), missing required key, duplicated key, wrong type or impossible
value raises SweepConfigError naming the file, the key path (`training.batch_size`,
`grid.shapes[1].n_heads`) and the reason. Rules a file alone can decide live in the dataclasses'
`__post_init__` (so configs built in Python are checked too); rules that need the model shapes (a budget
too small for the smallest model, D below one batch) are checked by sweeps.plan.plan, with the same
error type, before anything runs.

A grid sweep (2 sizes × 3 token counts × 2 learning rates = 12 runs):
    name: lr-grid
    kind: grid
    corpus: {source: stdlib, vocab_size: 257, max_bytes: 4_000_000}
    training: {context_length: 64, batch_size: 16, lr: [3.0e-3, 1.0e-2]}
    grid: {N: [2.0e4, 8.0e4], tokens_per_param: {log_range: [10, 160], num: 3}}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from experiments.store import check_name
from lm.accounting import COMPUTE_CONVENTIONS, DEFAULT_COMPUTE, DEFAULT_N_CONVENTION, N_CONVENTIONS
from lm.data import CorpusConfig
from lm.family import FamilyError, ShapeFamily
from lm.device import PRECISIONS
from lm.optim import COOLDOWN_SHAPES, SCHEDULES
from lm.tokenizer import MIN_VOCAB_SIZE
from sweeps.size_lattice import shared_targets

KINDS = ("isoflop", "grid")
DEVICE_KINDS = ("cpu", "gpu")
PRESET_DIR = Path(__file__).resolve().parent


class SweepConfigError(ValueError):
    """A sweep file or config that cannot be run: `source` (file), `key` (dotted path) and `reason`."""

    def __init__(self, key: str | None, reason: str, *, source: str | None = None):
        self.key, self.reason, self.source = key, reason, source
        super().__init__(": ".join(str(p) for p in (source, key, reason) if p))

    def located(self, *, prefix: str | None = None, source: str | None = None) -> SweepConfigError:
        """The same error with its key under `prefix` and/or its file named."""
        key = self.key
        if prefix:
            key = prefix if not key else f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"
        return SweepConfigError(key, self.reason, source=source or self.source)


def _require(ok: bool, key: str, reason: str) -> None:
    if not ok:
        raise SweepConfigError(key, reason)


def _each(values, key: str, ok, reason: str) -> None:
    for i, v in enumerate(values):
        _require(ok(v), f"{key}[{i}]" if len(values) > 1 else key, f"{reason}, got {v!r}")


# ---- the config dataclasses ---------------------------------------------------------------------

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
        _require(self.k > 0 and math.isfinite(self.k), "k", f"must be a positive number, got {self.k!r}")
        _require(math.isfinite(self.p), "p", f"must be a finite number, got {self.p!r}")
        _require(math.isfinite(self.q), "q", f"must be a finite number, got {self.q!r}")
        _require(self.of in ("N", "C"), "of", f"must be N or C, got {self.of!r}")
        _require(len(self.multipliers) > 0, "multipliers", "must not be empty")
        _each(self.multipliers, "multipliers", lambda m: m > 0, "must be positive")
        _require(len(set(self.multipliers)) == len(self.multipliers), "multipliers", "has duplicate values")

    def values(self, *, N: float, C: float, D: float | None = None) -> list[float]:
        x = N if self.of == "N" else C
        if self.q and D is None:
            raise ValueError("PowerRule with q != 0 needs the run's D")
        horizon = D**self.q if self.q else 1.0
        return [self.k * x**self.p * horizon * m for m in self.multipliers]


@dataclass(frozen=True, kw_only=True)
class CorpusSection:
    source: str
    vocab_size: int
    max_bytes: int | None = None
    text_field: str = "text"
    val_fraction: float = 0.05
    seed: int = 0

    def __post_init__(self):
        _require(bool(self.source), "source", "must be a non-empty string")
        _require(self.vocab_size >= MIN_VOCAB_SIZE, "vocab_size",
                 f"must be >= {MIN_VOCAB_SIZE} (256 bytes + END_OF_TEXT), got {self.vocab_size!r}")
        _require(self.max_bytes is None or self.max_bytes >= 1, "max_bytes", f"must be >= 1, got {self.max_bytes!r}")
        _require(0 < self.val_fraction < 1, "val_fraction", f"must be in (0, 1), got {self.val_fraction!r}")
        _require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed!r}")
        try:
            self.corpus_config()
        except ValueError as e:
            raise SweepConfigError(None, str(e)) from None

    def corpus_config(self) -> CorpusConfig:
        return CorpusConfig(source=self.source, text_field=self.text_field, vocab_size=self.vocab_size,
                            max_bytes=self.max_bytes, val_fraction=self.val_fraction, seed=self.seed)


@dataclass(frozen=True, kw_only=True)
class Cooldown:
    """A wsd schedule's cooldown: its share of each run's steps, and its shape (lm.optim)."""

    fraction: float = 0.2
    shape: str = "linear"

    def __post_init__(self):
        _require(0 < self.fraction < 1, "fraction", f"must be in (0, 1), got {self.fraction!r}")
        _require(self.shape in COOLDOWN_SHAPES, "shape", f"must be one of {COOLDOWN_SHAPES}, got {self.shape!r}")


@dataclass(frozen=True, kw_only=True)
class WSDSection:
    """Trunks and cooldown branches (sweeps/wsd.py): the warmup they share, and optionally a limit on trunks."""

    warmup_tokens: int  # the fixed warmup of every trunk and branch, rounded to whole steps per batch size
    trunk_tokens: int | None = None  # the longest stable phase any trunk may train (a guard); None: no limit

    def __post_init__(self):
        _require(self.warmup_tokens >= 0, "warmup_tokens", f"must be >= 0, got {self.warmup_tokens!r}")
        _require(self.trunk_tokens is None or self.trunk_tokens >= 1, "trunk_tokens",
                 f"must be a positive number of tokens, got {self.trunk_tokens!r}")


@dataclass(frozen=True, kw_only=True)
class TrainingSection:
    context_length: int
    batch_size: tuple[int, ...] | PowerRule  # sequences per step: one run per value, or a rule
    lr: tuple[float, ...] | PowerRule  # peak learning rate: one run per value, or a rule
    schedule: str = "cosine"
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    cooldown_fraction: float = 0.2
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    seeds: int = 1  # replicates of every cell, seeds seed .. seed+seeds-1 (sweeps/replicates.py)
    beta2: float | str = "auto"  # AdamW β2: "auto" (lm.optim.beta2_for_batch, by tokens per step) or a number
    precision: str = "auto"
    eval_tokens: int = 32_768
    tie_embeddings: bool = False
    cooldown: Cooldown | None = None  # wsd only; replaces cooldown_fraction

    def __post_init__(self):
        _require(self.context_length >= 1, "context_length", f"must be >= 1, got {self.context_length!r}")
        if isinstance(self.batch_size, PowerRule):
            _require(self.batch_size.q == 0, "batch_size.q", "a horizon exponent applies to lr only (a batch size "
                     "is chosen before the run's D)")
        else:
            _require(len(self.batch_size) > 0, "batch_size", "must not be empty")
            _each(self.batch_size, "batch_size", lambda b: b >= 1, "must be a positive integer")
        if not isinstance(self.lr, PowerRule):
            _require(len(self.lr) > 0, "lr", "must not be empty")
            _each(self.lr, "lr", lambda v: v > 0, "must be positive")
        _require(self.schedule in SCHEDULES, "schedule", f"must be one of {SCHEDULES}, got {self.schedule!r}")
        _require(0 <= self.warmup_fraction < 1, "warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction!r}")
        _require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio!r}")
        _require(0 < self.cooldown_fraction <= 1, "cooldown_fraction",
                 f"must be in (0, 1], got {self.cooldown_fraction!r}")
        _require(self.schedule != "wsd" or self.warmup_fraction + self.cooldown_fraction <= 1, "cooldown_fraction",
                 "warmup_fraction + cooldown_fraction must not exceed 1 for the wsd schedule")
        _require(self.cooldown is None or self.schedule == "wsd", "cooldown", "is for the wsd schedule only")
        _require(self.cooldown is None or self.cooldown_fraction == 0.2, "cooldown",
                 "give the fraction as cooldown.fraction, not also as cooldown_fraction")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        _require(self.grad_clip >= 0, "grad_clip", f"must be >= 0 (0 disables clipping), got {self.grad_clip!r}")
        _require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed!r}")
        _require(self.seeds >= 1, "seeds", f"must be an integer >= 1 (replicates per cell), got {self.seeds!r}")
        _require(self.beta2 == "auto" or (not isinstance(self.beta2, str) and 0 < self.beta2 < 1), "beta2",
                 f'must be "auto" or a number in (0, 1), got {self.beta2!r}')
        _require(self.precision in PRECISIONS, "precision", f"must be one of {PRECISIONS}, got {self.precision!r}")
        _require(self.eval_tokens >= self.context_length, "eval_tokens",
                 f"must be at least one window of context_length={self.context_length} tokens, got {self.eval_tokens}")

    def cooldown_fields(self) -> dict:
        """The ExperimentSpec fields of the cooldown (cooldown_fraction, cooldown_shape)."""
        if self.cooldown is None:
            return {"cooldown_fraction": self.cooldown_fraction}
        return {"cooldown_fraction": self.cooldown.fraction, "cooldown_shape": self.cooldown.shape}

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
            _require(self.tokens_per_param is None or self.tokens_per_param > 0, "tokens_per_param",
                     f"must be a positive number, got {self.tokens_per_param!r}")
        else:
            _require(self.tokens_per_param is None, "tokens_per_param", "give either tokens_per_param or k and p")
            _require(self.k is not None and self.k > 0, "k", f"must be a positive number, got {self.k!r}")
            _require(self.p is not None and 0 < self.p < 1, "p", f"must be in (0, 1), got {self.p!r}")

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
        _require(len(self.budgets) > 0, "budgets", "must not be empty")
        _each(self.budgets, "budgets", lambda c: c > 0, "must be a positive number of FLOPs")
        _require(len(set(self.budgets)) == len(self.budgets), "budgets", "has duplicate values")
        _require(self.sizes_per_budget >= 1, "sizes_per_budget", f"must be >= 1, got {self.sizes_per_budget!r}")
        _require(self.span > 1, "span", f"must be > 1 (a factor either side of N_opt), got {self.span!r}")
        _require(not self.shared_sizes or self.sizes_per_budget >= 2, "shared_sizes",
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
    n_layers: int
    d_model: int
    n_heads: int

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads"):
            _require(getattr(self, name) >= 1, name, f"must be a positive integer, got {getattr(self, name)!r}")
        _require(self.d_model % self.n_heads == 0, "n_heads",
                 f"must divide d_model: {self.d_model} is not divisible by {self.n_heads}")
        _require((self.d_model // self.n_heads) % 2 == 0, "n_heads",
                 f"head size d_model/n_heads = {self.d_model // self.n_heads} must be even (RoPE rotates pairs)")


@dataclass(frozen=True, kw_only=True)
class GridSection:
    """Models (N targets or explicit shapes) × token counts (D, or tokens_per_param·N per model)."""

    N: tuple[float, ...] | None = None
    shapes: tuple[Shape, ...] | None = None
    D: tuple[int, ...] | None = None
    tokens_per_param: tuple[float, ...] | None = None

    def __post_init__(self):
        _require((self.N is None) != (self.shapes is None), "N", "give exactly one of N and shapes")
        _require((self.D is None) != (self.tokens_per_param is None), "D", "give exactly one of D and tokens_per_param")
        for name in ("N", "shapes", "D", "tokens_per_param"):
            values = getattr(self, name)
            if values is not None:
                _require(len(values) > 0, name, "must not be empty")
                if name != "shapes":
                    _each(values, name, lambda v: v > 0, "must be positive")


@dataclass(frozen=True, kw_only=True)
class ResourcesSection:
    cpus_per_run: int = 1
    gpus_per_run: float | str = "auto"  # "auto" or a fraction in [0, 1]
    max_concurrent: int | None = None  # None: as many as the resources allow
    workers_per_run: int = 1  # data-parallel workers of one run (sweeps/distributed.py)
    workers_from_N: float | None = None  # runs with N >= this use workers_per_run; None: every run

    def __post_init__(self):
        _require(self.cpus_per_run >= 1, "cpus_per_run", f"must be >= 1, got {self.cpus_per_run!r}")
        _require(self.gpus_per_run == "auto" or (not isinstance(self.gpus_per_run, str) and 0 <= self.gpus_per_run <= 1),
                 "gpus_per_run", f'must be "auto" or a number in [0, 1] (a run uses at most one GPU), '
                 f"got {self.gpus_per_run!r}")
        _require(self.max_concurrent is None or self.max_concurrent >= 1, "max_concurrent",
                 f"must be >= 1 or null, got {self.max_concurrent!r}")
        _require(self.workers_per_run >= 1, "workers_per_run", f"must be >= 1, got {self.workers_per_run!r}")
        _require(self.workers_from_N is None or self.workers_from_N > 0, "workers_from_N",
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
        _require(self.device is None or self.device in DEVICE_KINDS, "device",
                 f"must be one of {DEVICE_KINDS}, got {self.device!r}")
        _require(self.flops_per_second is None or self.flops_per_second > 0, "flops_per_second",
                 f"must be positive, got {self.flops_per_second!r}")
        _require(self.step_overhead_seconds is None or self.step_overhead_seconds >= 0, "step_overhead_seconds",
                 f"must be >= 0, got {self.step_overhead_seconds!r}")
        _require(self.overhead_seconds >= 0, "overhead_seconds", f"must be >= 0, got {self.overhead_seconds!r}")
        _require(self.min_steps >= 1, "min_steps", f"must be >= 1, got {self.min_steps!r}")


@dataclass(frozen=True, kw_only=True)
class ValidationSection:
    """The budgets of `scaling study`'s validation runs, as multiples of the sweep's largest budget: 4× and
    10× by default (issue 11: a test well outside the sweep, and a second one further out)."""

    multiples: tuple[float, ...] = (4.0, 10.0)

    def __post_init__(self):
        _require(len(self.multiples) > 0, "multiples", "must not be empty")
        _each(self.multiples, "multiples", lambda m: m > 1, "must be > 1 (a budget beyond the sweep's largest)")
        _require(len(set(self.multiples)) == len(self.multiples), "multiples", "has duplicate values")


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    name: str
    kind: str
    corpus: CorpusSection
    training: TrainingSection
    n_convention: str = DEFAULT_N_CONVENTION
    compute: str = DEFAULT_COMPUTE  # what budgets count: exact FLOPs or 6·N·D (lm.accounting.COMPUTE_CONVENTIONS)
    family: ShapeFamily = field(default_factory=ShapeFamily)
    isoflop: IsoFLOPSection | None = None
    grid: GridSection | None = None
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    planning: PlanningSection = field(default_factory=PlanningSection)
    validation: ValidationSection = field(default_factory=ValidationSection)
    wsd: WSDSection | None = None
    source: str | None = None  # the file it came from, for messages

    def __post_init__(self):
        try:
            check_name(self.name, "sweep name")
        except ValueError as e:
            raise SweepConfigError("name", str(e)) from None
        _require(self.kind in KINDS, "kind", f"must be one of {KINDS}, got {self.kind!r}")
        _require(self.n_convention in N_CONVENTIONS, "n_convention",
                 f"must be one of {N_CONVENTIONS}, got {self.n_convention!r}")
        _require(self.compute in COMPUTE_CONVENTIONS, "compute",
                 f"must be one of {COMPUTE_CONVENTIONS}, got {self.compute!r}")
        for kind in KINDS:
            present = getattr(self, kind) is not None
            _require(present == (self.kind == kind), kind,
                     f"a kind: {self.kind} sweep {'needs' if not present else 'must not have'} a `{kind}:` section")
        _require(self.wsd is None or self.training.schedule == "wsd", "wsd",
                 f"trunks and branches need training.schedule: wsd, got {self.training.schedule!r}")
        _require(self.wsd is None or self.resources.workers_per_run == 1, "resources.workers_per_run",
                 "WSD trunks and branches train on one worker each; data-parallel WSD runs are not supported yet")

    @property
    def device_kind(self) -> str:
        """The device kind plans assume: planning.device, else cpu iff resources.gpus_per_run is 0."""
        return self.planning.device or ("cpu" if self.resources.gpus_per_run == 0 else "gpu")


# ---- YAML -> dataclasses ------------------------------------------------------------------------

_REQUIRED = object()


def _number(v, key: str) -> float:
    if isinstance(v, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            v = float(v.strip())
        except ValueError:
            raise SweepConfigError(key, f"expected a number, got {v!r}") from None
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise SweepConfigError(key, f"expected a number, got {v!r}")
    if not math.isfinite(v):
        raise SweepConfigError(key, f"expected a finite number, got {v!r}")
    return float(v)


def _integer(v, key: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    x = _number(v, key)
    if not x.is_integer():
        raise SweepConfigError(key, f"expected an integer, got {v!r}")
    return int(x)


def _string(v, key: str) -> str:
    if not isinstance(v, str):
        raise SweepConfigError(key, f"expected a string, got {v!r}")
    return v


def _boolean(v, key: str) -> bool:
    if not isinstance(v, bool):
        raise SweepConfigError(key, f"expected true or false, got {v!r}")
    return v


def _optional(convert):
    return lambda v, key: None if v is None else convert(v, key)


class _Mapping:
    """One YAML mapping being read: remembers the keys taken so leftovers are reported as unknown."""

    def __init__(self, data, key: str):
        if not isinstance(data, dict):
            raise SweepConfigError(key or None, f"expected a mapping of keys, got {data!r}")
        self.data, self.key, self.taken = data, key, []

    def path(self, k: str) -> str:
        return f"{self.key}.{k}" if self.key else k

    def get(self, k: str, convert, default=_REQUIRED):
        self.taken.append(k)
        if k not in self.data:
            if default is _REQUIRED:
                raise SweepConfigError(self.path(k), "missing required key")
            return default
        return convert(self.data[k], self.path(k))

    def has(self, k: str) -> bool:
        return k in self.data

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.taken)
        if unknown:
            raise SweepConfigError(self.path(unknown[0]), f"unknown key{'s' if len(unknown) > 1 else ''} "
                                   f"{', '.join(unknown)} (allowed here: {', '.join(self.taken)})")


def _build(cls, key: str, **kwargs):
    """cls(**kwargs), with a SweepConfigError from its validation re-keyed under `key`."""
    try:
        return cls(**kwargs)
    except SweepConfigError as e:
        raise e.located(prefix=key) from None


def _values(v, key: str, convert=_number) -> tuple:
    """A number, a list of numbers, or {log_range: [low, high], num: k}."""
    if isinstance(v, dict):
        m = _Mapping(v, key)
        bounds = m.get("log_range", lambda x, k: x)
        num = m.get("num", _integer)
        m.finish()
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise SweepConfigError(f"{key}.log_range", f"expected [low, high], got {bounds!r}")
        low, high = (_number(b, f"{key}.log_range[{i}]") for i, b in enumerate(bounds))
        if not 0 < low < high:
            raise SweepConfigError(f"{key}.log_range", f"needs 0 < low < high, got [{low:g}, {high:g}]")
        if num < 2:
            raise SweepConfigError(f"{key}.num", f"must be >= 2, got {num}")
        points = np.logspace(math.log10(low), math.log10(high), num).tolist()
        return tuple(convert(float(f"{x:.12g}"), key) for x in points)
    if isinstance(v, list):
        return tuple(convert(x, f"{key}[{i}]") for i, x in enumerate(v))
    return (convert(v, key),)


def _rule(v: dict, key: str) -> PowerRule:
    kind = v.get("rule")
    if kind != "power":
        raise SweepConfigError(f"{key}.rule", f"unknown or missing rule {kind!r}; the rule is 'power' (k·x^p)")
    return _section(PowerRule)({k: x for k, x in v.items() if k != "rule"}, key)


def _axis(convert):
    """A training axis: a value, a list of values, or a rule mapping."""
    return lambda v, key: _rule(v, key) if isinstance(v, dict) else _values(v, key, convert)


def _gpus(v, key: str):
    return v if v == "auto" else _number(v, key)


def _shapes(v, key: str) -> tuple[Shape, ...]:
    if not isinstance(v, list):
        raise SweepConfigError(key, f"expected a list of {{n_layers, d_model, n_heads}}, got {v!r}")
    return tuple(_section(Shape)(item, f"{key}[{i}]") for i, item in enumerate(v))


def _family(v, key: str) -> ShapeFamily:
    """The `family:` mapping into lm.family.ShapeFamily, its errors keyed `family.<field>`."""
    m = _Mapping(v, key)
    kw = {name: m.get(name, convert, None) for name, convert in
          (("head_size", _integer), ("aspect", _number), ("depth", _integer), ("min_layers", _integer))}
    m.finish()
    try:
        return ShapeFamily(**{name: value for name, value in kw.items() if value is not None})
    except FamilyError as e:
        raise SweepConfigError(f"{key}.{e.field}", e.reason) from None


def _section(cls):
    """A reader of one mapping into `cls`: every dataclass field is a key (required unless it has a
    default; null allowed where the default is None), converted by _READERS[cls]; other keys are errors."""
    def read(v, key: str):
        m = _Mapping(v, key)
        kw = {}
        for f in fields(cls):
            if cls is SweepConfig and f.name == "source":  # where the file is, not a key in it
                continue
            required = f.default is MISSING and f.default_factory is MISSING
            convert = _READERS[cls][f.name]
            if required or m.has(f.name):
                kw[f.name] = m.get(f.name, _optional(convert) if f.default is None else convert)
            else:
                m.taken.append(f.name)
        m.finish()
        return _build(cls, key, **kw)
    return read


_READERS = {
    PowerRule: dict(k=_number, p=_number, of=_string, q=_number, multipliers=_values),
    CorpusSection: dict(source=_string, vocab_size=_integer, max_bytes=_integer, text_field=_string,
                        val_fraction=_number, seed=_integer),
    TrainingSection: dict(context_length=_integer, batch_size=_axis(_integer), lr=_axis(_number), schedule=_string,
                          warmup_fraction=_number, min_lr_ratio=_number, cooldown_fraction=_number,
                          weight_decay=_number, grad_clip=_number, seed=_integer, seeds=_integer,
                          beta2=lambda v, k: v if v == "auto" else _number(v, k), precision=_string,
                          eval_tokens=_integer, tie_embeddings=_boolean, cooldown=_section(Cooldown)),
    Cooldown: dict(fraction=_number, shape=_string),
    WSDSection: dict(warmup_tokens=_integer, trunk_tokens=_integer),
    Center: dict(tokens_per_param=_number, k=_number, p=_number),
    IsoFLOPSection: dict(budgets=_values, sizes_per_budget=_integer, span=_number, center=_section(Center),
                         shared_sizes=_boolean),
    Shape: dict(n_layers=_integer, d_model=_integer, n_heads=_integer),
    GridSection: dict(N=_values, shapes=_shapes, D=lambda v, k: _values(v, k, _integer), tokens_per_param=_values),
    ResourcesSection: dict(cpus_per_run=_integer, gpus_per_run=_gpus, max_concurrent=_integer,
                           workers_per_run=_integer, workers_from_N=_number),
    PlanningSection: dict(device=_string, flops_per_second=_number, step_overhead_seconds=_number,
                          overhead_seconds=_number, min_steps=_integer),
    ValidationSection: dict(multiples=_values),
    SweepConfig: dict(name=_string, kind=_string, n_convention=_string, compute=_string, family=_family,
                      corpus=_section(CorpusSection),
                      training=_section(TrainingSection), isoflop=_section(IsoFLOPSection), grid=_section(GridSection),
                      resources=_section(ResourcesSection), planning=_section(PlanningSection),
                      validation=_section(ValidationSection), wsd=_section(WSDSection)),
}


def parse_sweep(data, *, source: str | None = None) -> SweepConfig:
    """A SweepConfig from the YAML's parsed mapping; SweepConfigError naming `source` and the key otherwise."""
    try:
        config = _section(SweepConfig)(data, "")
    except SweepConfigError as e:
        raise e.located(source=source) from None
    return dataclasses.replace(config, source=source)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects a key given twice in one mapping (safe_load keeps the last silently)."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise SweepConfigError(str(key), f"key given twice in one mapping (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def sweep_path(name_or_path: str | Path) -> Path:
    """A sweep file's path: an existing path as given, else the preset of that name (sweeps/<name>.yaml)."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.suffix in (".yaml", ".yml") or str(name_or_path) not in preset_names():
        return path
    return PRESET_DIR / f"{name_or_path}.yaml"


def load_sweep(name_or_path: str | Path) -> SweepConfig:
    """Read and validate a sweep file (or a preset by name); SweepConfigError naming the file and key."""
    path = sweep_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SweepConfigError(None, f"cannot read sweep file ({e.strerror or e})", source=str(path)) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except SweepConfigError as e:
        raise e.located(source=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SweepConfigError(None, f"not valid YAML: {getattr(e, 'problem', None) or e}{where}",
                               source=str(path)) from None
    return parse_sweep(data, source=str(path))
