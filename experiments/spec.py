"""ExperimentSpec: everything that determines one run's numbers, and the run id hashed from it.

A spec is frozen, keyword-only and flat (one level of plain values), so it serialises to one JSON
object and hashes simply. The model is given one of two ways:
    n_params                       a target parameter count N under `n_convention`, resolved to the
                                   nearest shape of lm.shapes' ladder (`shape_for_params`)
    n_layers, d_model, n_heads     an explicit shape (sweep plans always write this form, so a run's
                                   identity never depends on how the ladder rounds a target)
`n_convention` (default lm.conventions.DEFAULT_N_CONVENTION, "with_head": N = blocks + norms + vocab·d,
every parameter that does a matmul per token, Porian et al. 2024; see lm/accounting.py) also names the N
the results table reports.
`beta2` (AdamW's) defaults to lm.optim.beta2_for_batch(batch_size·context_length), resolved at
construction, so the spec, and its id, hold the number the run uses.

Each training, model and corpus field takes its default from the lm config that owns it (TrainConfig,
Schedule, ModelConfig, CorpusConfig), and construction builds those configs, so their rules are the spec's:
a field they reject raises lm.field_error.FieldError under the spec's name for it (Schedule's `kind` is
the spec's `schedule`, CorpusConfig's `val_fraction` its `corpus_val_fraction`). The spec adds only its own
rules: floats stored as floats, the model form, the N and compute conventions, the budget, the WSD roles.

run_id = the first 16 hex digits of blake2s over the sorted-key compact JSON of `to_dict()`. JSON
writes floats with `repr` (shortest round-trip form, so 3e-3 is always "0.003"), and float fields are
stored as floats (lr=1 and lr=1.0 are one spec), so the id is the same in every process and on every
machine; changing any field changes it. The fields added for WSD trunks and branches (`_LATER_FIELDS`)
are left out of `to_dict` while at their defaults, so every spec written before them keeps its id and
its spec.json. Left out on purpose: the sweep's name (the same run requested
by two sweeps is trained once) and where it executes (device, threads, compile: see `train_config`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields

from lm.accounting import ParamCounts, param_counts
from lm.conventions import COMPUTE_CONVENTIONS, DEFAULT_COMPUTE, DEFAULT_N_CONVENTION, N_CONVENTIONS
from lm.data import CorpusConfig
from lm.field_error import FieldError
from lm.model import ModelConfig
from lm.optim import Schedule
from lm.shapes import shape_for_params
from lm.train import TrainConfig

RUN_ID_LENGTH = 16  # hex digits: 64 bits, no collision in any sweep we could ever run

_SHAPE_FIELDS = ("n_layers", "d_model", "n_heads")
# lm.data.CorpusConfig's fields -> the spec's (flat, so prefixed: `seed` would clash with the training seed)
CORPUS_FIELDS = {"source": "corpus_source", "text_field": "corpus_text_field", "vocab_size": "vocab_size",
                 "max_bytes": "corpus_max_bytes", "val_fraction": "corpus_val_fraction", "seed": "corpus_seed"}
# (lm config, its field) -> the spec's field, where the names differ
_SPEC_NAMES = {("Schedule", "kind"): "schedule", **{("CorpusConfig", k): v for k, v in CORPUS_FIELDS.items()}}
_FLOATS = ("n_params", "lr", "beta2", "warmup_fraction", "min_lr_ratio", "cooldown_fraction", "weight_decay",
           "grad_clip", "corpus_val_fraction", "budget")


@dataclass(frozen=True, kw_only=True)
class ExperimentSpec:
    """One training run. A bad field raises ValueError naming it (`ExperimentSpec.<field>`) and the rule."""

    # model: n_params, or all of n_layers / d_model / n_heads
    n_params: float | None = None  # target N under n_convention
    n_layers: int | None = None
    d_model: int | None = None
    n_heads: int | None = None
    n_convention: str = DEFAULT_N_CONVENTION  # which N sizes the model and is reported (lm.conventions.N_CONVENTIONS)
    tie_embeddings: bool = ModelConfig.tie_embeddings
    # data and optimisation: defaults and rules are lm.train.TrainConfig's and lm.optim.Schedule's
    tokens: int  # training tokens D; the run trains the whole steps of batch_size·context_length that fit
    batch_size: int  # sequences per step
    context_length: int
    lr: float  # peak learning rate
    schedule: str = Schedule.kind
    warmup_fraction: float = Schedule.warmup_fraction
    min_lr_ratio: float = Schedule.min_lr_ratio
    cooldown_fraction: float = Schedule.cooldown_fraction  # wsd only
    weight_decay: float = TrainConfig.weight_decay
    grad_clip: float = TrainConfig.grad_clip
    seed: int = TrainConfig.seed  # initialisation and batch order
    # AdamW β2; None (the default) becomes lm.optim.beta2_for_batch(batch_size·context_length) at
    # construction, so the spec, and the id hashed from it, always hold the number the run uses.
    beta2: float | None = TrainConfig.beta2
    # which windows each step reads (lm.batches.SAMPLERS). A field of its own so that runs trained with
    # the old with-replacement sampler, whose specs had no such field, keep ids of their own.
    sampler: str = TrainConfig.sampler
    precision: str = TrainConfig.precision  # auto | fp32 | bf16 (auto: bf16 on CUDA, else fp32)
    eval_tokens: int = TrainConfig.eval_tokens  # held-out tokens per validation evaluation
    # corpus: lm.data.CorpusConfig's fields (CORPUS_FIELDS), its defaults and rules; vocab_size is also the model's
    corpus_source: str = CorpusConfig.source
    vocab_size: int = CorpusConfig.vocab_size
    corpus_max_bytes: int | None = CorpusConfig.max_bytes
    corpus_text_field: str = CorpusConfig.text_field
    corpus_val_fraction: float = CorpusConfig.val_fraction
    corpus_seed: int = CorpusConfig.seed  # seeds the train/val document split
    # the nominal compute budget of the run's IsoFLOP cell; None for grid runs
    budget: float | None = None
    # what the budget counts (lm.accounting.COMPUTE_CONVENTIONS): exact FLOPs, or 6·N·D under n_convention
    compute: str = DEFAULT_COMPUTE
    # warmup-stable-decay trunks and branches (experiments/wsd.py; Hägele et al. 2024)
    cooldown_shape: str = Schedule.cooldown_shape  # wsd only: lm.optim.COOLDOWN_SHAPES
    # a fixed warmup, overriding warmup_fraction (shared by a trunk and its branches)
    warmup_steps: int | None = Schedule.warmup_steps
    trunk: bool = False  # a WSD trunk: the stable phase, checkpointed at its branches' steps; not a point to fit
    trunk_id: str | None = None  # a WSD branch: the run id of the trunk it starts from ...
    branch_step: int | None = None  # ... at this step, its cooldown start

    def __post_init__(self):
        self._check_types()
        explicit = [getattr(self, f) for f in _SHAPE_FIELDS]
        if self.n_params is None and any(v is None for v in explicit):
            raise ValueError("ExperimentSpec: give the model as n_params, or as all of n_layers, d_model and "
                             f"n_heads (got n_layers={self.n_layers}, d_model={self.d_model}, n_heads={self.n_heads})")
        if self.n_params is not None and any(v is not None for v in explicit):
            raise ValueError("ExperimentSpec.n_params: give either n_params or an explicit shape "
                             "(n_layers, d_model, n_heads), not both")
        # The lm configs own every other rule (ranges, choices, vocab bounds, RoPE's even head_dim, one step of
        # tokens, β2): build them, naming a field they reject by this spec's name for it.
        train = _owned(self.train_config)
        _owned(self.corpus_config)
        if self.beta2 is None:  # as TrainConfig resolved it: lm.optim.beta2_for_batch(batch_size·context_length)
            object.__setattr__(self, "beta2", train.beta2)
        self._check_wsd_role()

    def _check_wsd_role(self) -> None:
        if not isinstance(self.trunk, bool):
            raise ValueError(f"ExperimentSpec.trunk must be true or false, got {self.trunk!r}")
        if self.trunk and (self.schedule != "constant" or self.warmup_steps is None or self.trunk_id is not None):
            raise ValueError("ExperimentSpec.trunk: a trunk trains the stable phase: schedule 'constant', a "
                             "warmup_steps, and no trunk_id of its own")
        if (self.trunk_id is None) != (self.branch_step is None):
            raise ValueError("ExperimentSpec.branch_step: a branch names both trunk_id and branch_step")
        if self.trunk_id is None:
            return
        if not isinstance(self.trunk_id, str) or len(self.trunk_id) != RUN_ID_LENGTH or \
                any(c not in "0123456789abcdef" for c in self.trunk_id):
            raise ValueError(f"ExperimentSpec.trunk_id must be a run id ({RUN_ID_LENGTH} hex digits), "
                             f"got {self.trunk_id!r}")
        if self.schedule != "wsd" or self.warmup_steps is None:
            raise ValueError("ExperimentSpec.trunk_id: a branch needs schedule 'wsd' and a warmup_steps")
        start = math.ceil(self.cooldown_fraction * self.steps)
        if not _is_int(self.branch_step) or self.branch_step != self.steps - start:
            raise ValueError(f"ExperimentSpec.branch_step must be the cooldown start, step {self.steps - start} of "
                             f"{self.steps}, got {self.branch_step!r}")
        if self.warmup_steps > self.branch_step:
            raise ValueError(f"ExperimentSpec.warmup_steps={self.warmup_steps} ends after the branch step "
                             f"{self.branch_step}")

    def _check_types(self) -> None:
        """The spec's own rules: floats stored as floats (one id for lr=1 and lr=1.0), its N and compute."""
        for name in _FLOATS:
            value = getattr(self, name)
            if value is None and name in ("n_params", "budget", "beta2"):
                continue
            if not _is_number(value) or not math.isfinite(value):
                raise FieldError("ExperimentSpec", name, f"must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))  # lr=1 and lr=1.0 are the same spec, one id
        for name in ("n_params", "budget"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise FieldError("ExperimentSpec", name, f"must be positive, got {getattr(self, name)!r}")
        for name, allowed in (("n_convention", N_CONVENTIONS), ("compute", COMPUTE_CONVENTIONS)):
            if getattr(self, name) not in allowed:
                raise FieldError("ExperimentSpec", name, f"must be one of {allowed}, got {getattr(self, name)!r}")

    # ---- identity and serialisation -------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """Stable content hash of the spec (see the module docstring)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.blake2s(text.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in _LATER_FIELDS:
            if d[name] == _DEFAULTS[name]:
                d.pop(name)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ExperimentSpec:
        """The inverse of `to_dict`; unknown or missing keys are a ValueError naming them."""
        if not isinstance(d, dict):
            raise ValueError(f"ExperimentSpec.from_dict needs a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"ExperimentSpec: unknown field(s) {unknown}")
        missing = sorted(f.name for f in fields(cls) if f.name not in d and f.default is MISSING)
        if missing:
            raise ValueError(f"ExperimentSpec: missing required field(s) {missing}")
        return cls(**d)

    # ---- what the spec means to lm ---------------------------------------------------------------

    def model_config(self) -> ModelConfig:
        if self.n_params is not None:
            return shape_for_params(self.n_params, vocab_size=self.vocab_size, context_length=self.context_length,
                                    convention=self.n_convention, tie_embeddings=self.tie_embeddings)
        return ModelConfig(vocab_size=self.vocab_size, context_length=self.context_length, n_layers=self.n_layers,
                           d_model=self.d_model, n_heads=self.n_heads, tie_embeddings=self.tie_embeddings)

    def param_counts(self) -> ParamCounts:
        return param_counts(self.model_config())

    @property
    def n(self) -> int:
        """The model's parameter count N under `n_convention` (of the resolved shape, not the target)."""
        return self.param_counts().n(self.n_convention)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context_length

    @property
    def steps(self) -> int:
        return self.tokens // self.tokens_per_step

    def schedule_config(self) -> Schedule:
        return Schedule(kind=self.schedule, warmup_fraction=self.warmup_fraction, min_lr_ratio=self.min_lr_ratio,
                        cooldown_fraction=self.cooldown_fraction, cooldown_shape=self.cooldown_shape,
                        warmup_steps=self.warmup_steps)

    def corpus_config(self) -> CorpusConfig:
        return CorpusConfig(**{name: getattr(self, mine) for name, mine in CORPUS_FIELDS.items()})

    def train_config(self, *, device: str = "auto", threads: int | None = None, compile: bool = False) -> TrainConfig:
        """The lm TrainConfig; device, threads and compile say where it runs, not what it computes."""
        return TrainConfig(
            model=self.model_config(), tokens=self.tokens, batch_size=self.batch_size, lr=self.lr,
            schedule=self.schedule_config(), weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            seed=self.seed, beta2=self.beta2, sampler=self.sampler, eval_tokens=self.eval_tokens, device=device,
            precision=self.precision, compile=compile, threads=threads,
        )


_LATER_FIELDS = ("cooldown_shape", "warmup_steps", "trunk", "trunk_id", "branch_step")
_DEFAULTS = {f.name: f.default for f in fields(ExperimentSpec)}


def _owned(build):
    """build(): an lm config of the spec's fields, a field it rejects re-keyed to the spec's name for it."""
    try:
        return build()
    except FieldError as e:
        raise FieldError("ExperimentSpec", _SPEC_NAMES.get((e.owner, e.field), e.field), e.reason) from None
    except ValueError as e:  # a target N no shape of the ladder reaches
        raise ValueError(f"ExperimentSpec: invalid model: {e}") from None


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
