"""plan(sweep_config) -> SweepPlan: every run of a sweep as an ExperimentSpec, with its N, D, C, FLOPs,
memory and time estimates. Pure: no training, no files, no Ray.

IsoFLOP cells (Hoffmann et al. 2022, Approach 2): for each budget C, `sizes_per_budget` size targets
log-spaced around N_opt (sweeps/sections.py: Center), each resolved to a real shape by the sweep's shape
family (lm/family.py); then D = C / f with f the real shape's training FLOPs per token under the sweep's
`compute` convention (exact: lm.accounting's count, attention and head included; 6N: 6·N under the
sweep's n_convention), rounded to whole steps of batch_size·context_length. Choosing D after the shape
and after rounding keeps every run's compute f·D within 1% of its budget (asserted); a cell with fewer
than `planning.min_steps` steps is an error, never silently dropped. Grid runs: N targets or explicit
shapes × D (or tokens_per_param·N), rounded to whole steps the same way. Learning-rate and batch-size
axes multiply every cell, and `training.seeds` replicates every cell (sweeps/replicates.py).

Specs carry explicit shapes (n_layers, d_model, n_heads), so a run's id does not depend on how the shape
ladder rounds a target, and budgets from log ranges are rounded to 12 significant digits: extending a
sweep file with new budgets or sizes leaves the old runs' ids unchanged. Runs whose specs coincide (two
targets on one shape) are planned once.

Time estimate (documented assumptions, not a measurement):
    seconds = steps · step_overhead + (exact training FLOPs / k + evaluation FLOPs) / achieved FLOP/s + overhead
with k the run's data-parallel workers (resources.workers_per_run; each evaluates in full), whose memory
estimate is per worker, at batch_size/k (`SweepPlan.oversized` names GPU runs that exceed one GPU).
Small models are bound by the fixed cost of a step (Python, autograd, optimizer, kernel launches), bigger
ones by FLOPs. Defaults by device kind (override in `planning:` or as plan() arguments):
    cpu  10 ms per step and 1e10 FLOP/s: one run on one core of a 2-core x86 VM trains 10^4–3·10^5-parameter
         models (context 64, 16 sequences per step) at 10–20 ms per step, 7–33 GFLOP/s under the exact
         count (our measurement; the smallest models are the least efficient)
    gpu  5 ms per step (launch-bound small models, no torch.compile) and 1e14 FLOP/s: ~10–30% of a
         current datacenter GPU's dense bf16 peak, what models of 10^7–10^9 parameters typically reach.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from experiments.spec import ExperimentSpec
from lm.accounting import (compute_per_token, forward_flops_per_token, param_counts, training_flops_per_token,
                           training_memory)
from lm.model import ModelConfig
from sweeps import wsd
from sweeps.config import Shape, SweepConfig, SweepConfigError
from sweeps.replicates import replicates
from sweeps.run_fields import shared_fields
from sweeps.schedule import GPU_MEMORY_BYTES, MEMORY_SAFETY

DEFAULT_FLOPS_PER_SECOND = {"cpu": 1e10, "gpu": 1e14}
DEFAULT_STEP_OVERHEAD_SECONDS = {"cpu": 0.010, "gpu": 0.005}
MAX_BUDGET_ERROR = 0.01  # |f·D - C| / C for every IsoFLOP run, f the FLOPs per token under the sweep's convention
MAX_SIZE_ERROR = 1.1  # a size target this far beyond the family's smallest or largest model is out of its reach


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: its spec and what it will cost."""

    spec: ExperimentSpec
    N: int  # parameters of the real shape under the sweep's n_convention
    D: int  # training tokens: whole steps of batch_size·context_length
    C: float  # compute under the sweep's convention (exact FLOPs, or 6·N·D): what `budget` counts
    flops: float  # exact training FLOPs (lm.accounting "exact": matmuls incl. attention)
    memory_bytes: int  # lm.accounting.training_memory total per worker (its share of the batch), at the precision
    est_seconds: float  # see the module docstring
    n_target: float | None  # the size asked for; None for explicit grid shapes
    workers: int = 1  # data-parallel workers (resources.workers_per_run; sweeps/distributed.py)

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def steps(self) -> int:
        return self.spec.steps

    def to_row(self) -> dict:
        s = self.spec
        return {
            "run_id": self.run_id, "budget": s.budget, "compute": s.compute, "N": self.N, "D": self.D, "C": self.C,
            "flops_exact": self.flops, "tokens_per_param": self.D / self.N, "n_layers": s.n_layers,
            "d_model": s.d_model, "n_heads": s.n_heads, "head_size": s.d_model // s.n_heads,
            "batch_size": s.batch_size, "lr": s.lr, "seed": s.seed, "beta2": s.beta2, "steps": self.steps,
            "memory_bytes": self.memory_bytes,
            "est_seconds": self.est_seconds, "n_target": self.n_target, "workers": self.workers,
        }


@dataclass(frozen=True)
class SweepPlan:
    config: SweepConfig
    runs: tuple[PlannedRun, ...]
    device_kind: str  # what the estimates assume: "cpu" or "gpu"
    flops_per_second: float  # assumed achieved training FLOP/s per run
    step_overhead_seconds: float  # assumed fixed cost of one step
    branching: wsd.Branching | None = None  # a wsd sweep's trunks and branches (sweeps/wsd.py)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def specs(self) -> list[ExperimentSpec]:
        return [r.spec for r in self.runs]

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    @property
    def total_flops(self) -> float:
        """Exact training FLOPs of the whole sweep."""
        return sum(r.flops for r in self.runs)

    @property
    def total_C(self) -> float | None:
        """C of every run summed under the sweep's convention; None for a WSD sweep, where a branch's C is its
        whole point's and so counts its trunk's share again (total_flops is what such a sweep spends)."""
        return None if self.branching else sum(r.C for r in self.runs)

    def spend(self) -> str:
        """What the sweep spends, in words, for the plan table and the study's log."""
        if self.branching:
            return f"{self.total_flops:.3e} exact FLOPs (trunks shared)"
        return f"total C = {self.total_C:.3e} FLOPs ({self.total_flops:.3e} exact)"

    @property
    def serial_seconds(self) -> float:
        """Estimated time to run every run one after another (see sweeps.schedule.makespan_seconds)."""
        return sum(r.est_seconds for r in self.runs)

    def est_seconds(self) -> dict[str, float]:
        return {r.run_id: r.est_seconds for r in self.runs}

    def oversized(self, gpu_memory_bytes: float = GPU_MEMORY_BYTES) -> list[PlannedRun]:
        """GPU runs whose per-worker memory estimate, with the scheduler's safety factor, exceeds one GPU:
        sizes that need (more) data-parallel workers, resources.workers_per_run, each with less of the batch."""
        if self.device_kind != "gpu":
            return []
        return [r for r in self.runs if r.memory_bytes * MEMORY_SAFETY > gpu_memory_bytes]

    @property
    def flops_if_separate(self) -> float:
        """Exact training FLOPs of the sweep's points trained as independent runs (= total_flops without WSD)."""
        return self.branching.flops_if_separate if self.branching else self.total_flops

    def to_rows(self) -> list[dict]:
        """One flat dict per run (PlannedRun.to_row; a wsd sweep's with sweeps.wsd.Branching.row), in plan order."""
        if self.branching is not None:
            return [{**r.to_row(), **self.branching.row(r.run_id)} for r in self.runs]
        return [r.to_row() for r in self.runs]

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.config.kind, "n_convention": self.config.n_convention,
            "compute": self.config.compute, "family": self.config.family.describe(),
            "source": self.config.source, "device_kind": self.device_kind, "flops_per_second": self.flops_per_second,
            "step_overhead_seconds": self.step_overhead_seconds,
            "totals": {"runs": len(self.runs), "C": self.total_C, "flops": self.total_flops,
                       "flops_total": self.total_flops, "flops_if_separate": self.flops_if_separate,
                       "serial_seconds": self.serial_seconds,
                       "max_memory_bytes": max((r.memory_bytes for r in self.runs), default=0),
                       "oversized_runs": len(self.oversized())},
            "runs": self.to_rows(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def plan(config: SweepConfig, *, device_kind: str | None = None, flops_per_second: float | None = None,
         step_overhead_seconds: float | None = None) -> SweepPlan:
    """Every run of the sweep, deduplicated by run id, in order (budget or model, then batch size, lr).

    Raises SweepConfigError (naming the file and key) for a cell that cannot be realised: a size below the
    smallest model shape, D below one batch or below planning.min_steps steps.
    """
    device_kind = device_kind or config.device_kind
    if device_kind not in DEFAULT_FLOPS_PER_SECOND:
        raise ValueError(f"device_kind must be one of {tuple(DEFAULT_FLOPS_PER_SECOND)}, got {device_kind!r}")
    fps = flops_per_second or config.planning.flops_per_second or DEFAULT_FLOPS_PER_SECOND[device_kind]
    step_seconds = next(v for v in (step_overhead_seconds, config.planning.step_overhead_seconds,
                                    DEFAULT_STEP_OVERHEAD_SECONDS[device_kind]) if v is not None)
    try:
        cells = _isoflop_cells(config) if config.kind == "isoflop" else _grid_cells(config)
        runs: dict[str, PlannedRun] = {}
        for cell, n_target in cells:
            for spec in replicates(cell, config.training.seeds):
                if spec.run_id not in runs:
                    runs[spec.run_id] = _planned(spec, n_target, config, device_kind, fps, step_seconds)
        planned, branching = list(runs.values()), None
        if config.wsd is not None:
            planned, branching = wsd.branched(planned, config, planned=lambda spec, n_target: _planned(
                spec, n_target, config, device_kind, fps, step_seconds))
    except SweepConfigError as e:
        raise e.located(source=config.source) from None
    return SweepPlan(config=config, runs=tuple(planned), device_kind=device_kind, flops_per_second=fps,
                     step_overhead_seconds=step_seconds, branching=branching)


# ---- cells --------------------------------------------------------------------------------------

def _shape_for(config: SweepConfig, n_target: float, key: str) -> ModelConfig:
    """The sweep's family member for a size target. Widths are whole heads, so between its smallest and
    largest models a family rounds a target to its nearest member (reported in the plan beside the target);
    beyond them by more than MAX_SIZE_ERROR it cannot reach it: an error naming `key` and the family."""
    t, family = config.training, config.family
    shape = dict(vocab_size=config.corpus.vocab_size, context_length=t.context_length,
                 convention=config.n_convention, tie_embeddings=t.tie_embeddings)
    model = family.shape_for(n_target, **shape)
    n = param_counts(model).n(config.n_convention)
    smallest, largest = family.reach(vocab_size=shape["vocab_size"], convention=config.n_convention,
                                     tie_embeddings=t.tie_embeddings)
    if not smallest / MAX_SIZE_ERROR <= n_target <= largest * MAX_SIZE_ERROR:
        raise SweepConfigError(key, f"model size N={n_target:.4g} is out of reach of the shape family "
                               f"({family.describe()}): the nearest member has N={n:,} (the smallest, with vocab_size "
                               f"{config.corpus.vocab_size}, has N={smallest:,} under {config.n_convention}); "
                               f"see family.head_size, family.min_layers")
    return model


def _explicit(config: SweepConfig, shape: Shape) -> ModelConfig:
    return ModelConfig(vocab_size=config.corpus.vocab_size, context_length=config.training.context_length,
                       n_layers=shape.n_layers, d_model=shape.d_model, n_heads=shape.n_heads,
                       tie_embeddings=config.training.tie_embeddings)


def whole_steps(tokens: float, tokens_per_step: int, *, min_steps: int = 1) -> int:
    """`tokens` rounded to whole steps of `tokens_per_step`; ValueError if under one step or `min_steps`."""
    if tokens < tokens_per_step:
        raise ValueError(f"D = {tokens:,.0f} tokens is less than one batch of batch_size × context_length = "
                         f"{tokens_per_step:,} tokens")
    steps = round(tokens / tokens_per_step)
    if steps < min_steps:
        raise ValueError(f"D = {tokens:,.0f} tokens is only {steps} steps of {tokens_per_step:,} tokens, fewer "
                         f"than planning.min_steps = {min_steps}")
    return steps * tokens_per_step


def tokens_for(compute: float, n: int, tokens_per_step: int, *, min_steps: int = 1,
               flops_per_token: float | None = None) -> int:
    """D for a model at compute C: C / f in whole steps, f its training FLOPs per token under the budget's
    convention (`flops_per_token`, lm.accounting.compute_per_token; default 6·N, Kaplan et al. 2020), chosen
    after the shape so that f·D lands within MAX_BUDGET_ERROR of C; ValueError when whole steps cannot."""
    f = 6 * n if flops_per_token is None else flops_per_token
    tokens = whole_steps(compute / f, tokens_per_step, min_steps=min_steps)
    if abs(f * tokens - compute) > MAX_BUDGET_ERROR * compute:  # only possible with few steps
        raise ValueError(f"whole steps give compute {f * tokens:.4g}, more than {MAX_BUDGET_ERROR:.0%} from "
                         f"the budget {compute:.4g}; raise planning.min_steps")
    return tokens


def _whole_steps(tokens: float, tokens_per_step: int, config: SweepConfig, key: str, what: str) -> int:
    try:
        return whole_steps(tokens, tokens_per_step, min_steps=config.planning.min_steps)
    except ValueError as error:
        raise SweepConfigError(key, f"{what}: {error}") from None


def _isoflop_cells(config: SweepConfig):
    iso, t, common = config.isoflop, config.training, shared_fields(config)
    for i, C in enumerate(iso.budgets):
        key = f"isoflop.budgets[{i}]" if len(iso.budgets) > 1 else "isoflop.budgets"
        models = {}
        for n_target in iso.size_targets(C):
            try:
                model = _shape_for(config, n_target, key)
            except SweepConfigError as e:
                raise SweepConfigError(key, f"budget C={C:.4g}, sizes from span {iso.span:g} around "
                                       f"N_opt={iso.center.n_opt(C):.4g}: {e.reason}") from None
            models.setdefault((model.n_layers, model.d_model), (model, n_target))
        for model, n_target in models.values():
            N = param_counts(model).n(config.n_convention)
            f = compute_per_token(model, config.compute, config.n_convention)
            for B in t.batch_sizes(N=N, C=C):
                try:
                    D = tokens_for(C, N, B * t.context_length, min_steps=config.planning.min_steps, flops_per_token=f)
                except ValueError as error:
                    raise SweepConfigError(key, f"budget C={C:.4g}, N={N:,}, batch_size {B}: {error}") from None
                for lr in t.lrs(N=N, C=C, D=D):
                    yield ExperimentSpec(n_layers=model.n_layers, d_model=model.d_model, n_heads=model.n_heads,
                                         tokens=D, batch_size=B, lr=lr, budget=C, **common), n_target


def _grid_cells(config: SweepConfig):
    grid, t, common = config.grid, config.training, shared_fields(config)
    if grid.N is not None:
        key = lambda i: f"grid.N[{i}]" if len(grid.N) > 1 else "grid.N"  # noqa: E731
        models = [(_shape_for(config, n, key(i)), n) for i, n in enumerate(grid.N)]
    else:
        models = [(_explicit(config, s), None) for s in grid.shapes]
    d_name, d_values = ("D", grid.D) if grid.D is not None else ("tokens_per_param", grid.tokens_per_param)
    for model, n_target in models:
        N = param_counts(model).n(config.n_convention)
        f = compute_per_token(model, config.compute, config.n_convention)  # C of a token, for rules of C
        for j, value in enumerate(d_values):
            key = f"grid.{d_name}[{j}]" if len(d_values) > 1 else f"grid.{d_name}"
            target = value if d_name == "D" else value * N
            for B in t.batch_sizes(N=N, C=f * target):
                D = _whole_steps(target, B * t.context_length, config, key, f"N={N:,}, batch_size {B}")
                for lr in t.lrs(N=N, C=f * D, D=D):
                    yield ExperimentSpec(n_layers=model.n_layers, d_model=model.d_model, n_heads=model.n_heads,
                                         tokens=D, batch_size=B, lr=lr, **common), n_target


# ---- estimates ----------------------------------------------------------------------------------

def _planned(spec: ExperimentSpec, n_target, config: SweepConfig, device_kind: str, fps: float,
             step_seconds: float) -> PlannedRun:
    model = spec.model_config()
    N = param_counts(model).n(spec.n_convention)
    precision = spec.precision if spec.precision != "auto" else ("bf16" if device_kind == "gpu" else "fp32")
    flops = spec.tokens * training_flops_per_token(model)
    train_config = spec.train_config()
    evals = spec.steps // train_config.eval_every + (spec.steps % train_config.eval_every != 0)
    eval_tokens = spec.eval_tokens // spec.context_length * spec.context_length
    eval_flops = evals * eval_tokens * forward_flops_per_token(model)
    k = config.resources.workers_for(N)  # k workers share each step's FLOPs; each evaluates in full
    if spec.batch_size % k:
        raise SweepConfigError("resources.workers_per_run", f"{k} workers cannot split batch_size {spec.batch_size}"
                               f" of the run of N={N:,} evenly; choose a batch size divisible by {k}")
    return PlannedRun(
        spec=spec, N=N, D=spec.tokens, C=spec.tokens * compute_per_token(model, spec.compute, spec.n_convention),
        flops=flops,
        memory_bytes=training_memory(model, batch_size=spec.batch_size // k, precision=precision).total,
        est_seconds=spec.steps * step_seconds + (flops / k + eval_flops) / fps + config.planning.overhead_seconds,
        n_target=n_target, workers=k,
    )
