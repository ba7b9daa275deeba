"""Sweep files: YAML (yaml.safe_load rules) validated into frozen, keyword-only dataclasses.

Schema (commented IsoFLOP examples: the presets sweeps/*.yaml; a grid example closes this docstring):

    name: demo                      # required; [A-Za-z0-9][A-Za-z0-9._-]*, the store's sweep name
    kind: isoflop                   # required; isoflop | grid
    n_convention: with_head         # N that sizes models and that the laws are fitted in (lm.conventions.N_CONVENTIONS)
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
value raises SweepConfigError (sweeps/errors.py) naming the file, the key path (`training.batch_size`,
`grid.shapes[1].n_heads`) and the reason. Rules a file alone can decide live in the sections'
`__post_init__` (sweeps/sections.py; so configs built in Python are checked too); the fields every run
shares (the corpus, training's schedule, optimiser and evaluation settings) have ExperimentSpec's defaults
and rules, applied by building a spec (sweeps/run_fields.py); rules that need the model shapes (a budget
too small for the smallest model, D below one batch) are checked by sweeps.plan.plan, with the same
error type, before anything runs. YAML itself is read by sweeps/reading.py.

A grid sweep (2 sizes × 3 token counts × 2 learning rates = 12 runs):
    name: lr-grid
    kind: grid
    corpus: {source: stdlib, vocab_size: 257, max_bytes: 4_000_000}
    training: {context_length: 64, batch_size: 16, lr: [3.0e-3, 1.0e-2]}
    grid: {N: [2.0e4, 8.0e4], tokens_per_param: {log_range: [10, 160], num: 3}}
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from experiments.spec import ExperimentSpec
from experiments.store import check_name
from lm.family import FamilyError, ShapeFamily
from sweeps.errors import SweepConfigError, require
from sweeps.reading import MappingReader, boolean, integer, number, optional, read_yaml, string, values
from sweeps.run_fields import check_shared_fields
from sweeps.sections import (DEVICE_KINDS, Center, Cooldown, CorpusSection, GridSection,  # noqa: F401 (re-exported)
                             IsoFLOPSection, PlanningSection, PowerRule, ResourcesSection, Shape, TrainingSection,
                             ValidationSection, WSDSection)

KINDS = ("isoflop", "grid")
PRESET_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    name: str
    kind: str
    corpus: CorpusSection
    training: TrainingSection
    n_convention: str = ExperimentSpec.n_convention  # lm.conventions.DEFAULT_N_CONVENTION
    compute: str = ExperimentSpec.compute  # what budgets count: exact FLOPs or 6·N·D (lm.conventions)
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
        require(self.kind in KINDS, "kind", f"must be one of {KINDS}, got {self.kind!r}")
        for kind in KINDS:
            present = getattr(self, kind) is not None
            require(present == (self.kind == kind), kind,
                    f"a kind: {self.kind} sweep {'needs' if not present else 'must not have'} a `{kind}:` section")
        require(self.wsd is None or self.training.schedule == "wsd", "wsd",
                f"trunks and branches need training.schedule: wsd, got {self.training.schedule!r}")
        require(self.wsd is None or self.resources.workers_per_run == 1, "resources.workers_per_run",
                "WSD trunks and branches train on one worker each; data-parallel WSD runs are not supported yet")
        check_shared_fields(self)  # the corpus and training fields every run gets: the spec's rules

    @property
    def device_kind(self) -> str:
        """The device kind plans assume: planning.device, else cpu iff resources.gpus_per_run is 0."""
        return self.planning.device or ("cpu" if self.resources.gpus_per_run == 0 else "gpu")


# ---- YAML -> dataclasses ------------------------------------------------------------------------

def _build(cls, key: str, **kwargs):
    """cls(**kwargs), with a SweepConfigError from its validation re-keyed under `key`."""
    try:
        return cls(**kwargs)
    except SweepConfigError as e:
        raise e.located(prefix=key) from None


def _rule(v: dict, key: str) -> PowerRule:
    kind = v.get("rule")
    if kind != "power":
        raise SweepConfigError(f"{key}.rule", f"unknown or missing rule {kind!r}; the rule is 'power' (k·x^p)")
    return _section(PowerRule)({k: x for k, x in v.items() if k != "rule"}, key)


def _axis(convert):
    """A training axis: a value, a list of values, or a rule mapping."""
    return lambda v, key: _rule(v, key) if isinstance(v, dict) else values(v, key, convert)


def _gpus(v, key: str):
    return v if v == "auto" else number(v, key)


def _shapes(v, key: str) -> tuple[Shape, ...]:
    if not isinstance(v, list):
        raise SweepConfigError(key, f"expected a list of {{n_layers, d_model, n_heads}}, got {v!r}")
    return tuple(_section(Shape)(item, f"{key}[{i}]") for i, item in enumerate(v))


def _family(v, key: str) -> ShapeFamily:
    """The `family:` mapping into lm.family.ShapeFamily, its errors keyed `family.<field>`."""
    m = MappingReader(v, key)
    kw = {name: m.get(name, convert, None) for name, convert in
          (("head_size", integer), ("aspect", number), ("depth", integer), ("min_layers", integer))}
    m.finish()
    try:
        return ShapeFamily(**{name: value for name, value in kw.items() if value is not None})
    except FamilyError as e:
        raise SweepConfigError(f"{key}.{e.field}", e.reason) from None


def _section(cls):
    """A reader of one mapping into `cls`: every dataclass field is a key (required unless it has a
    default; null allowed where the default is None), converted by _READERS[cls]; other keys are errors."""
    def read(v, key: str):
        m = MappingReader(v, key)
        kw = {}
        for f in fields(cls):
            if cls is SweepConfig and f.name == "source":  # where the file is, not a key in it
                continue
            required = f.default is MISSING and f.default_factory is MISSING
            convert = _READERS[cls][f.name]
            if required or m.has(f.name):
                kw[f.name] = m.get(f.name, optional(convert) if f.default is None else convert)
            else:
                m.taken.append(f.name)
        m.finish()
        return _build(cls, key, **kw)
    return read


_READERS = {
    PowerRule: dict(k=number, p=number, of=string, q=number, multipliers=values),
    CorpusSection: dict(source=string, vocab_size=integer, max_bytes=integer, text_field=string,
                        val_fraction=number, seed=integer),
    TrainingSection: dict(context_length=integer, batch_size=_axis(integer), lr=_axis(number), schedule=string,
                          warmup_fraction=number, min_lr_ratio=number, cooldown_fraction=number,
                          weight_decay=number, grad_clip=number, seed=integer, seeds=integer,
                          beta2=lambda v, k: v if v == "auto" else number(v, k), precision=string,
                          eval_tokens=integer, tie_embeddings=boolean, cooldown=_section(Cooldown)),
    Cooldown: dict(fraction=number, shape=string),
    WSDSection: dict(warmup_tokens=integer, trunk_tokens=integer),
    Center: dict(tokens_per_param=number, k=number, p=number),
    IsoFLOPSection: dict(budgets=values, sizes_per_budget=integer, span=number, center=_section(Center),
                         shared_sizes=boolean),
    Shape: dict(n_layers=integer, d_model=integer, n_heads=integer),
    GridSection: dict(N=values, shapes=_shapes, D=lambda v, k: values(v, k, integer), tokens_per_param=values),
    ResourcesSection: dict(cpus_per_run=integer, gpus_per_run=_gpus, max_concurrent=integer,
                           workers_per_run=integer, workers_from_N=number),
    PlanningSection: dict(device=string, flops_per_second=number, step_overhead_seconds=number,
                          overhead_seconds=number, min_steps=integer),
    ValidationSection: dict(multiples=values),
    SweepConfig: dict(name=string, kind=string, n_convention=string, compute=string, family=_family,
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
        data = read_yaml(text)
    except SweepConfigError as e:
        raise e.located(source=str(path)) from None
    return parse_sweep(data, source=str(path))
