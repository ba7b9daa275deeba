"""`train(config, corpus)`: one resumable, honest training run, returning a `TrainResult`.

Choices that keep the numbers downstream trustworthy:
- The run's length is whole steps: steps = tokens // (batch_size·context_length); the result reports
  the tokens and exact FLOPs actually trained, not the requested budget.
- Batch `s` is a pure function of (seed, s) (see lm/batches.py), and checkpoints are taken only at
  logging boundaries with the model, optimizer, RNG and curve so far; so a resumed run replays
  exactly the steps it missed, and on CPU its curve equals the uninterrupted run's bit for bit.
- Windows are drawn without replacement within each pass over the training split (lm/batches.py);
  the result says how many passes the run made, and a run planned past one pass (so it trains on some
  windows twice) warns with `RepeatedDataWarning` before it starts.
- Losses are read back once per logging window, not every step (a per-step `.item()` stalls GPUs);
  a non-finite or exploding loss anywhere in the window ends the run as `diverged` at the first bad step.
- A run may start from another run's checkpoint (`start_from`): a WSD cooldown branched off its trunk
  (lm/branch.py checks the two agree on everything up to the branch step), and a trunk keeps a
  checkpoint of its own at given steps (`checkpoint_steps`); so a branch's steps are the steps an
  independent WSD run to the same tokens would take, bit for bit on CPU. A wsd run also ends a
  logging window at its cooldown start, so its curve points after that step match a branch's.
- Validation loss (nats/token) is measured on a fixed set of held-out windows, identical at every
  evaluation, so points of the curve are comparable with each other and across runs.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from lm import branch, checkpoint
from lm.accounting import checked_param_counts, training_flops_per_token
from lm.batches import SAMPLERS, RepeatedDataWarning, windows_per_pass
from lm.conventions import PRECISION_CHOICES
from lm.device import measure_peak_flops, select, set_threads
from lm.field_error import FieldError
from lm.model import ModelConfig, Transformer
from lm.optim import BETA1, Schedule, beta2_for_batch, make_optimizer
from lm.parallel import DataParallel


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that determines a run's numbers (checkpoint location and callbacks do not)."""

    model: ModelConfig
    tokens: int  # training-token budget D; the run trains the whole steps that fit in it
    batch_size: int  # sequences per step
    lr: float  # peak learning rate
    schedule: Schedule = field(default_factory=Schedule)
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    seed: int = 0  # model initialisation and batch order
    beta2: float | None = None  # AdamW β2; None: lm.optim.beta2_for_batch(tokens per step), resolved here
    sampler: str = "permutation"  # lm.batches.SAMPLERS: without replacement per pass, or "replacement" (old runs)
    log_interval: int = 0  # steps per curve point; 0 = about 100 points per run
    eval_interval: int = 0  # steps between validation evaluations; 0 = about 5 per run
    eval_tokens: int = 32_768  # held-out tokens per validation evaluation
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    threads: int | None = None
    divergence_factor: float = 1.5  # loss above this × ln(vocab) (a uniform guess) counts as diverged

    def __post_init__(self):
        if not isinstance(self.model, ModelConfig):
            raise FieldError("TrainConfig", "model", f"must be a ModelConfig, got {type(self.model).__name__}")
        for name in ("tokens", "batch_size", "eval_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise FieldError("TrainConfig", name, f"must be a positive integer, got {value!r}")
        for name in ("log_interval", "eval_interval"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise FieldError("TrainConfig", name, "must be a non-negative integer (0 = automatic)")
        if self.tokens < self.tokens_per_step:
            raise FieldError("TrainConfig", "tokens", f"{self.tokens} is less than one step of batch_size × "
                             f"context_length = {self.tokens_per_step} tokens")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise FieldError("TrainConfig", "lr", f"must be a positive number, got {self.lr!r}")
        for name in ("weight_decay", "grad_clip"):  # grad_clip 0 disables clipping
            if not getattr(self, name) >= 0:
                raise FieldError("TrainConfig", name, f"must be >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise FieldError("TrainConfig", "seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.sampler not in SAMPLERS:
            raise FieldError("TrainConfig", "sampler", f"must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.precision not in PRECISION_CHOICES:
            raise FieldError("TrainConfig", "precision", f"must be one of {PRECISION_CHOICES}, got {self.precision!r}")
        if self.beta2 is None:
            object.__setattr__(self, "beta2", beta2_for_batch(self.tokens_per_step))
        if not 0 < self.beta2 < 1:
            raise FieldError("TrainConfig", "beta2", f"must be in (0, 1), got {self.beta2!r}")
        if self.divergence_factor <= 1:
            raise FieldError("TrainConfig", "divergence_factor", f"must exceed 1, got {self.divergence_factor!r}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.context_length

    @property
    def steps(self) -> int:
        return self.tokens // self.tokens_per_step

    @property
    def log_every(self) -> int:
        return self.log_interval or max(1, self.steps // 100)

    @property
    def eval_every(self) -> int:
        """Validation runs at multiples of this (rounded up to a logging boundary) and after the last step."""
        every = self.eval_interval or max(1, self.steps // 5)
        return math.ceil(every / self.log_every) * self.log_every

    def identity(self) -> dict:
        """The fields a checkpoint must share with a run that resumes from it."""
        d = asdict(self)
        for ignored in ("device", "compile", "threads"):  # where it runs does not change what it computes
            d.pop(ignored)
        d["schedule"] = self.schedule.identity()
        return d


@dataclass(frozen=True)
class CurvePoint:
    step: int  # steps completed
    tokens: int
    flops: float  # exact training FLOPs so far
    train_loss: float  # mean over the steps since the previous point
    val_loss: float | None
    lr: float


@dataclass(frozen=True)
class TrainResult:
    status: str  # "completed" or "diverged"
    message: str
    steps: int
    tokens: int  # tokens actually trained
    passes: float  # passes over the training split those tokens make (lm/batches.py); > 1 repeats data
    flops: float  # exact training FLOPs actually spent (see lm/accounting.py)
    final_train_loss: float
    final_val_loss: float | None  # nats/token on the held-out split; None if diverged
    diverged_at_step: int | None
    curve: tuple[CurvePoint, ...]
    wall_seconds: float  # whole run including evaluation and checkpoints, summed over resumptions
    train_seconds: float  # optimisation steps only
    tokens_per_second: float
    mfu: float
    peak_flops: float
    device: str
    precision: str
    resumed_from_step: int | None
    param_counts: dict
    workers: int = 1  # data-parallel ranks that trained it (lm/parallel.py); mfu is per device

    def to_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[CurvePoint, int], None]  # called with each curve point and the total step count


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, placement) -> float:
    """Mean cross-entropy (nats/token) over fixed validation batches."""
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        x, y = x.to(placement.device), y.to(placement.device)
        with torch.autocast(placement.device.type, dtype=placement.autocast_dtype, enabled=placement.autocast_dtype is not None):
            _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    model.train()
    return total / count


def train(
    config: TrainConfig,
    corpus,
    *,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    on_progress: Progress | None = None,
    stop_after_step: int | None = None,
    peak_flops: float | None = None,
    parallel: DataParallel | None = None,
    checkpoint_steps: tuple[int, ...] = (),
    start_from: str | Path | None = None,
) -> TrainResult:
    """Train `config.model` on `corpus` (a lm.data.TokenizedCorpus); resume from `checkpoint_dir` if it holds one.

    checkpoint_every: steps between checkpoints (rounded up to a logging boundary); 0 = only at the end.
    stop_after_step: stop early after this many steps (leaving a checkpoint), as an interruption would.
    peak_flops: the device's peak FLOP/s for MFU; measured by a matmul probe when not given.
    parallel: this process's rank when the run is data-parallel (lm/parallel.py); only rank 0 writes
        checkpoints and calls on_progress.
    checkpoint_steps: steps at which to keep a checkpoint of their own (lm.checkpoint.step_path), as a
        WSD trunk does at its last step, where its branches start; a logging window ends at each.
    start_from: a checkpoint of another run to start from when `checkpoint_dir` holds none (a WSD branch
        from its trunk's checkpoint at the branch step; lm.branch.check_start says if it may).
    """
    _check_inputs(config, corpus, parallel)
    _warn_if_repeating(config, corpus)
    set_threads(config.threads)
    placement = select(config.device, config.precision)
    val_batches = corpus.val_batches(
        batch_size=config.batch_size, context_length=config.model.context_length, max_tokens=config.eval_tokens
    )
    parts = _build(config, placement, parallel)
    ckpt_path = Path(checkpoint_dir) / checkpoint.FILENAME if checkpoint_dir else None
    start = _start(config, corpus, parts, ckpt_path, start_from)
    if parallel is not None and not parallel.is_writer:
        on_progress = None
    peak = peak_flops or measure_peak_flops(placement)

    clock = _Clock(start.wall_seconds, start.train_seconds)
    flops_per_step = training_flops_per_token(config.model) * config.tokens_per_step
    steps, log_every, step, curve = config.steps, config.log_every, start.step, list(start.curve)
    end_step = steps if stop_after_step is None else min(steps, stop_after_step)
    ckpt_every = math.ceil(checkpoint_every / log_every) * log_every if checkpoint_every else 0
    boundaries = _window_boundaries(config, checkpoint_steps)
    diverged = None
    parts.model.train()
    while step < end_step:
        window_end = min(end_step, (step // log_every + 1) * log_every, steps, *(b for b in boundaries if b > step))
        t0 = time.perf_counter()
        window, lr = _train_steps(parts, config, corpus, step, window_end)
        clock.train_time += time.perf_counter() - t0
        if (diverged := _divergence(window, step, config)) is not None:
            break
        step = window_end
        evaluating = step % config.eval_every == 0 or step == steps
        val = evaluate(parts.eval_model, val_batches, placement) if evaluating else None
        curve.append(point := CurvePoint(step=step, tokens=step * config.tokens_per_step, flops=step * flops_per_step,
                                         train_loss=float(window.mean()), val_loss=val, lr=lr))
        if on_progress is not None:
            on_progress(point, steps)
        if step in checkpoint_steps and ckpt_path is not None:
            _save(checkpoint.step_path(ckpt_path.parent, step), config, corpus, parts, step, curve, clock)
        if (ckpt_every and step % ckpt_every == 0) or step == end_step:
            _save(ckpt_path, config, corpus, parts, step, curve, clock)
    return _result(config, corpus, parts, step, diverged, curve, start, clock, peak)


def _check_inputs(config: TrainConfig, corpus, parallel: DataParallel | None) -> None:
    """Fail fast, before any work: a corpus the vocabulary cannot hold, a batch the ranks cannot split, or a
    context longer than the data."""
    if corpus.vocab_size > config.model.vocab_size:
        raise ValueError(
            f"corpus vocab_size {corpus.vocab_size} exceeds ModelConfig.vocab_size {config.model.vocab_size}"
        )
    if parallel is not None:
        parallel.check_batch(config.batch_size)
    corpus.get_batch("train", step=0, **_batch_args(config))


def _batch_args(config: TrainConfig) -> dict:
    """What picks training batch `s` besides `s` (lm/batches.py)."""
    return dict(batch_size=config.batch_size, context_length=config.model.context_length, seed=config.seed,
                sampler=config.sampler)


@dataclass(frozen=True)
class _Parts:
    """What one process trains: the model, the module a step calls (compiled, wrapped for data parallelism), the
    module evaluation calls, and the optimizer."""

    model: Transformer
    step_model: torch.nn.Module
    eval_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    placement: object  # lm.device.select's answer
    parallel: DataParallel | None
    param_counts: dict


def _build(config: TrainConfig, placement, parallel: DataParallel | None) -> _Parts:
    """The model initialised from `config.seed`, and its AdamW."""
    torch.manual_seed(config.seed)
    model = Transformer(config.model).to(placement.device)
    counts = checked_param_counts(model)
    optimizer = make_optimizer(model, lr=config.lr, weight_decay=config.weight_decay, betas=(BETA1, config.beta2))
    step_model = torch.compile(model) if config.compile else model
    eval_model = step_model
    if parallel is not None:
        step_model = parallel.wrap(step_model, placement.device)
    return _Parts(model, step_model, eval_model, optimizer, placement, parallel, counts.to_dict())


@dataclass(frozen=True)
class _Start:
    """Where a run starts: step 0, or a checkpoint (its own, or its trunk's for a WSD branch)."""

    step: int = 0
    curve: tuple[CurvePoint, ...] = ()
    wall_seconds: float = 0.0  # spent before this process
    train_seconds: float = 0.0
    resumed_from: int | None = None


def _start(config: TrainConfig, corpus, parts: _Parts, ckpt_path: Path | None, start_from) -> _Start:
    """Load the run's own checkpoint if it has one, else `start_from`'s, into the model, optimizer and RNG."""
    if ckpt_path is not None and ckpt_path.exists():
        state = checkpoint.load(ckpt_path)
        checkpoint.check_matches(ckpt_path, "training configuration", state["config"], _jsonable(config.identity()))
    elif start_from is not None:
        state = checkpoint.load(start_from)
        branch.check_start(start_from, state["config"], _jsonable(config.identity()), state["step"])
        state = {**state, "wall_seconds": 0.0, "train_seconds": 0.0}  # the trunk's time is the trunk's
    else:
        return _Start()
    if state["corpus"] != corpus.fingerprint:
        raise checkpoint.CheckpointError(f"checkpoint {ckpt_path or start_from} was made on a different corpus")
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return _Start(step=state["step"], curve=tuple(CurvePoint(**p) for p in state["curve"]),
                  wall_seconds=state["wall_seconds"], train_seconds=state["train_seconds"], resumed_from=state["step"])


@dataclass
class _Clock:
    """Seconds a run has spent: before this process (from its checkpoint) and in it (train_time: steps only)."""

    wall_before: float
    train_before: float
    t_start: float = field(default_factory=time.perf_counter)
    train_time: float = 0.0

    @property
    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start

    @property
    def train_seconds(self) -> float:
        return self.train_before + self.train_time


def _train_steps(parts: _Parts, config: TrainConfig, corpus, first: int, end: int) -> tuple[torch.Tensor, float]:
    """Optimisation steps `first` to `end - 1`; their losses, read back to the CPU once (a per-step `.item()`
    stalls GPUs), and the last step's learning rate."""
    model, step_model, optimizer = parts.model, parts.step_model, parts.optimizer
    placement, parallel = parts.placement, parts.parallel
    batch_args, steps = _batch_args(config), config.steps
    losses = torch.zeros(end - first, device=placement.device)
    lr = config.lr
    for i, s in enumerate(range(first, end)):
        lr = config.lr * config.schedule.multiplier(s, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = corpus.get_batch("train", step=s, **batch_args)
        if parallel is not None:
            x, y = parallel.shard(x, y)
        x, y = x.to(placement.device, non_blocking=True), y.to(placement.device, non_blocking=True)
        with torch.autocast(placement.device.type, dtype=placement.autocast_dtype, enabled=placement.autocast_dtype is not None):
            _, loss = step_model(x, y)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses[i] = loss.detach()
    return (losses if parallel is None else parallel.mean(losses)).cpu(), lr


def _window_boundaries(config: TrainConfig, checkpoint_steps: tuple[int, ...]) -> list[int]:
    """Steps besides the logging multiples where a logging window ends: the kept checkpoints and a wsd run's
    cooldown start (the branch steps), so a branch's curve points match its trunk's."""
    cooldown = [config.schedule.cooldown_start(config.steps)] if config.schedule.kind == "wsd" else []
    return sorted({*checkpoint_steps, *cooldown})

@dataclass(frozen=True)
class _Divergence:
    """The first step whose loss ended the run, and why."""

    step: int
    message: str


def _divergence(window: torch.Tensor, first: int, config: TrainConfig) -> _Divergence | None:
    """The window's first step whose loss is not finite or above divergence_factor × ln(vocab), if any."""
    limit = config.divergence_factor * math.log(config.model.vocab_size)
    bad = (~torch.isfinite(window)) | (window > limit)
    if not bad.any():
        return None
    i = int(bad.nonzero()[0])
    return _Divergence(first + i, f"loss {window[i].item():.4g} at step {first + i} is not finite or"
                                  f" above {config.divergence_factor} × ln(vocab) = {limit:.3f}")


def _save(path: Path | None, config: TrainConfig, corpus, parts: _Parts, step: int, curve: list, clock: _Clock):
    """A checkpoint of everything a resumed run needs to continue bit for bit; only the writing rank writes."""
    if path is None or (parts.parallel is not None and not parts.parallel.is_writer):
        return
    checkpoint.save(path, {
        "config": _jsonable(config.identity()), "corpus": corpus.fingerprint, "step": step,
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(), "rng": torch.get_rng_state(),
        "curve": [asdict(p) for p in curve],
        "wall_seconds": clock.wall_seconds, "train_seconds": clock.train_seconds,
    })


def _result(config: TrainConfig, corpus, parts: _Parts, step: int, diverged: _Divergence | None, curve: list,
            start: _Start, clock: _Clock, peak: float) -> TrainResult:
    """What the run trained (through its last good step), what it reached, and at what speed."""
    steps = config.steps
    if diverged is not None:
        status, message, step = "diverged", diverged.message, diverged.step
    elif step < steps:
        status, message = "interrupted", f"stopped after step {step} of {steps} (checkpoint saved)"
    else:
        status, message = "completed", f"trained {steps} steps"
    trained_tokens = step * config.tokens_per_step
    trained_here = trained_tokens - (start.resumed_from or 0) * config.tokens_per_step
    tokens_per_second = trained_here / max(clock.train_time, 1e-9)
    workers = parts.parallel.world_size if parts.parallel is not None else 1
    return TrainResult(
        status=status, message=message, steps=step,
        tokens=trained_tokens, flops=trained_tokens * training_flops_per_token(config.model),
        passes=corpus.passes(steps=step, batch_size=config.batch_size, context_length=config.model.context_length),
        final_train_loss=curve[-1].train_loss if curve else float("nan"),
        final_val_loss=curve[-1].val_loss if status == "completed" and curve else None,
        diverged_at_step=diverged.step if diverged is not None else None, curve=tuple(curve),
        wall_seconds=clock.wall_seconds, train_seconds=clock.train_seconds, tokens_per_second=tokens_per_second,
        mfu=tokens_per_second * training_flops_per_token(config.model) / (peak * workers),
        peak_flops=peak, device=parts.placement.name, precision=parts.placement.precision,
        resumed_from_step=start.resumed_from, param_counts=parts.param_counts, workers=workers,
    )


def _warn_if_repeating(config: TrainConfig, corpus) -> None:
    """RepeatedDataWarning when the planned run draws more windows than one pass over the train split holds."""
    T = config.model.context_length
    passes = corpus.passes(steps=config.steps, batch_size=config.batch_size, context_length=T)
    if passes > 1:
        draws, windows = config.steps * config.batch_size, windows_per_pass(corpus.train.size, T)
        warnings.warn(f"this run makes {passes:.2f} passes over the training split ({draws:,} windows drawn from "
                      f"{windows:,}): {1 - 1 / passes:.0%} of its training windows repeat earlier ones",
                      RepeatedDataWarning, stacklevel=3)


def _jsonable(d):
    """Configs as plain nested dicts/lists of primitives (what a weights_only checkpoint may hold)."""
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    return d
