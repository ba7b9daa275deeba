"""One command from sweep to verdict: train the sweep, fit every law, plot, then test the prediction.

`run_study` launches the sweep (reusing every finished run in the store), fits Approaches 1-3 with
bootstrap intervals, and then tests the fit on validation runs it never saw: at the predicted
compute-optimal N and D for budgets at the sweep file's `validation.multiples` × its largest budget (4×
and 10× by default), with the predicted learning rate where the sweep fitted one, in the sweep's own
shape family (the planner's `_shape_for`) and with a seed no sweep run used (one more than the largest).
Before any of them trains, the study writes what it predicts to prediction.json with a hash of the fit
and the time (scaling/prediction_file.py). Then they train, the plots are drawn with them, and their
predicted and actual loss, the error and whether the actual lies inside the prediction interval close
the report.

The validation runs are trained in this process, one after another, on all local CPUs (or the GPU), not
through Ray; the store still guarantees each is trained once (a finished run is returned, not retrained).
The study plans the sweep once and hands the plan to the launch; the corpus the launch prepared (after
reaching Ray, so an unreachable cluster leaves the store untouched) is the one the validation runs read.

Which law designs and predicts it is fixed before it trains: the fit's headline predictor
(`analysis.prediction`: the one that erred less when the sweep's own largest budget was held out, ties to
Approach 3; docs/methods.md), the same rule `scaling predict` uses, or one named by `predictor`:
- "frontier": N_opt from Approach 2 (the IsoFLOP minima, measured directly) and the loss from the loss
  frontier through those minima (`analysis.frontier`);
- "approach3": N_opt and the loss from Approach 3's L(N, D).
Both predictors are evaluated at the run's *actual* N and D (after the shape and the whole-steps rounding),
each with a prediction interval (parameter uncertainty and run-to-run noise), and both are reported.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from analysis.prediction import PREDICTORS, Estimate, Headline, Prediction
from analysis.serialize import to_tree
from analysis.study_fit import StudyFit
from experiments.spec import ExperimentSpec
from scaling.prediction_file import FILENAME as PREDICTION_FILE, FixedPrediction, PlannedValidation
from sweeps.config import SweepConfig, ValidationSection

LARGER_BUDGETS = (10, 100, 1000)  # × the largest sweep budget, for the report's predictions


@dataclass(frozen=True)
class ValidationDesign:
    """The run that tests the fit, fixed before it trains: its spec, the prediction at its budget (whose
    headline names the predictor that designs and predicts it), where its learning rate came from, and
    each predictor's loss at the run's own N and D (after the shape and whole-step rounding)."""

    spec: ExperimentSpec
    budget: float
    prediction: Prediction
    lr_from: str
    predicted: tuple[tuple[str, Estimate], ...]

    @property
    def headline(self) -> Headline:
        return self.prediction.headline

    @property
    def n_opt_predicted(self) -> float:
        return self.prediction.best.n_opt.value

    def planned(self, multiple: float) -> PlannedValidation:
        """The run as prediction.json records it."""
        s = self.spec
        return PlannedValidation(multiple=multiple, budget=self.budget, run_id=s.run_id, N=s.n, D=s.tokens, lr=s.lr,
                                 batch_size=s.batch_size, seed=s.seed, n_layers=s.n_layers, d_model=s.d_model,
                                 n_heads=s.n_heads, predicted=self.predicted)


@dataclass(frozen=True)
class Comparison:
    """One predictor's loss for the validation run, at its actual N and D, against the actual loss."""

    predictor: str
    predicted: Estimate
    actual: float

    @property
    def relative_error(self) -> float:
        return (self.predicted.value - self.actual) / self.actual

    @property
    def inside_interval(self) -> bool | None:
        """Whether the actual loss fell inside the interval; None where there is none or it is unreliable (a
        bootstrap that does not mean its level is not scored: `Estimate.reliable`)."""
        lo, hi = self.predicted.interval
        return bool(lo <= self.actual <= hi) if self.predicted.has_interval and self.predicted.reliable else None

    @property
    def verdict(self) -> str:
        if not self.predicted.has_interval:
            return "no interval"
        if not self.predicted.reliable:
            return "interval unreliable (most bootstrap replicates dropped), not scored"
        return "inside the interval" if self.inside_interval else "OUTSIDE the interval"


@dataclass(frozen=True)
class ValidationOutcome:
    """What the validation run gave: its row's figures and each predictor's comparison (none unless it completed)."""

    design: ValidationDesign
    status: str
    n: int | None
    d: int | None
    actual_loss: float | None
    compute: float | None  # the row's C
    flops: float | None
    wall_seconds: float | None
    error: str | None
    comparisons: tuple[Comparison, ...]
    shape_note: str | None
    trained_after_prediction: bool | None  # its (last) start time is not before prediction.json's; None: never started

    @property
    def headline(self) -> Comparison | None:
        return next((c for c in self.comparisons if c.predictor == self.design.headline.predictor), None)


@dataclass(frozen=True)
class RunCounts:
    planned: int
    used_in_fit: int
    trained_now: int
    already_done: int


@dataclass(frozen=True)
class StudySummary:
    """Everything the report says, typed; `to_dict()` is summary.json."""

    sweep: str
    source: str
    store: str
    n_convention: str
    compute: str  # what C and the budgets count: "exact" FLOPs or "6N" (6·N·D), the sweep's `compute`
    validation_multiples: tuple[float, ...]  # × the largest budget, one per validation run
    runs: RunCounts
    fit: StudyFit
    predictions: tuple[tuple[float, Prediction], ...]  # (× the largest budget, prediction there)
    prediction: FixedPrediction  # prediction.json, written before the validation runs trained
    validations: tuple[ValidationOutcome, ...]
    plots: tuple[str, ...]
    timings: dict[str, float]

    def to_dict(self) -> dict:
        tree = to_tree(self)
        for v, branch in zip(self.validations, tree["validations"]):  # the derived figures, next to the raw ones
            branch["comparisons"] = [
                to_tree(c) | {"relative_error": c.relative_error, "inside_interval": c.inside_interval}
                for c in v.comparisons]
        return tree


@dataclass(frozen=True)
class StudyResult:
    summary: StudySummary
    report_path: Path
    html_path: Path
    summary_path: Path


def _sweep_table(store: Path, run_ids: list[str]):
    """The sweep's runs and curves from the store (the store may hold other sweeps too)."""
    from analysis.table import load_curves, load_table  # noqa: PLC0415

    wanted = set(run_ids)
    # the quiet readers: their notes name every run of the store left out, other sweeps' too; the summary
    # counts the sweep's own (planned against used in the fit)
    runs, curves = load_table(store).table, load_curves(store).table
    return runs[runs["run_id"].isin(wanted)].reset_index(drop=True), curves[curves["run_id"].isin(wanted)]


def _middle(values: list):
    """The middle of an axis (the rule's own value when multipliers surround it)."""
    return sorted(values)[len(values) // 2]


def _check_predictor(predictor: str) -> None:
    if predictor not in ("auto", *PREDICTORS):
        raise ValueError(f"predictor must be 'auto' or one of {PREDICTORS}, got {predictor!r}")


def validation_seed(sweep_plan) -> int:
    """A seed no sweep run used (initialisation and batch order): one more than the largest in the plan, so
    the validation's noise is independent of the runs the fit saw."""
    return 1 + max(r.spec.seed for r in sweep_plan.runs)


def validation_spec(config: SweepConfig, template: ExperimentSpec, fit: StudyFit, budget: float,
                    predictor: str = "auto", *, seed: int) -> ValidationDesign:
    """The run that tests the fit: the headline predictor's compute-optimal N at `budget` (`fit.predict_at`),
    built in the sweep's shape family (the planner's own shape choice), D from `sweeps.plan.tokens_for` under
    the sweep's compute convention, the predicted lr where fitted, and `seed` (`validation_seed`); each
    predictor's loss at its N and D."""
    _check_predictor(predictor)
    from lm.accounting import compute_per_token, param_counts  # noqa: PLC0415
    from sweeps.plan import _shape_for, tokens_for  # noqa: PLC0415  (the sweep's shape family, one rule)

    prediction = fit.predict_at(budget, predictor=predictor)
    shape = _shape_for(config, prediction.best.n_opt.value, "validation.multiples")
    n_actual = param_counts(shape).n(template.n_convention)
    batch = round(prediction.batch_size.value) if prediction.batch_size.known else _middle(
        config.training.batch_sizes(N=n_actual, C=budget))
    tokens = tokens_for(budget, n_actual, batch * template.context_length, min_steps=config.planning.min_steps,
                        flops_per_token=compute_per_token(shape, config.compute, template.n_convention))
    lr = prediction.lr.value if prediction.lr.known else _middle(config.training.lrs(N=n_actual, C=budget, D=tokens))
    spec = dataclasses.replace(
        template, n_params=None, n_layers=shape.n_layers, d_model=shape.d_model, n_heads=shape.n_heads,
        tokens=tokens, batch_size=batch, lr=float(f"{lr:.6g}"), budget=float(budget), seed=seed,
        beta2=None if config.training.beta2 == "auto" else config.training.beta2)  # None: the rule for this batch
    predicted = tuple((name, estimate) for name in PREDICTORS
                      for estimate in [fit.predict_run(n_actual, tokens, by=name)] if estimate.known)
    return ValidationDesign(spec=spec, budget=float(budget), prediction=prediction,
                            lr_from="lr law" if prediction.lr.known else "sweep", predicted=predicted)


def run_study(
    config: SweepConfig,
    *,
    store: str | Path,
    out_dir: str | Path,
    address: str | None = None,
    n_bootstrap: int = 1000,
    validation_multiples: tuple[float, ...] | None = None,
    predictor: str = "auto",
    on_progress: Callable | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> StudyResult:
    """Sweep, fit, fix the prediction, validate, plot, report. Returns the summary and where the report was
    written. `validation_multiples` (× the largest budget) overrides the sweep file's `validation.multiples`."""
    from analysis.plots import save_all_plots  # noqa: PLC0415
    from analysis.study_fit import fit_all  # noqa: PLC0415
    from scaling.report import write_report  # noqa: PLC0415

    _check_predictor(predictor)  # before the sweep, not after it
    multiples = _multiples(config, validation_multiples)
    store, out_dir = Path(store).resolve(), Path(out_dir)
    timings = {}
    started = time.monotonic()
    sweep_plan, launched, corpus = _sweep(config, store, address=address, on_progress=on_progress, log=log)
    timings["sweep_seconds"] = time.monotonic() - started

    t = time.monotonic()
    points = [r for r in sweep_plan.runs if not r.spec.trunk]  # a WSD sweep's trunks are not points
    runs, curves = _sweep_table(store, [r.run_id for r in points])
    fit = fit_all(runs, curves, n_bootstrap=n_bootstrap, seed=0)
    timings["fit_seconds"] = time.monotonic() - t
    log(f"fitted {fit.n_runs} runs in {timings['fit_seconds']:.1f} s; headline: {fit.headline_for(predictor).name}")

    largest = max(r.spec.budget or r.C for r in sweep_plan.runs)
    designs, fixed = _fix_validation(config, sweep_plan, fit, [m * largest for m in multiples], multiples,
                                     predictor, out_dir / PREDICTION_FILE)
    log(f"{fixed.path}: {fixed.message}")  # written (or kept) before any validation run trains
    t = time.monotonic()
    validations = tuple(_validate(config, d, store, corpus.path, sweep_plan, fixed.record.created, log)
                        for d in designs)
    timings["validation_seconds"] = time.monotonic() - t

    t = time.monotonic()
    plots = save_all_plots(fit, runs, curves, out_dir / "plots", validation=validation_points(validations))
    timings["plot_seconds"] = time.monotonic() - t
    timings["total_seconds"] = time.monotonic() - started

    summary = StudySummary(
        sweep=config.name, source=config.source, store=str(store), n_convention=config.n_convention,
        compute=config.compute,
        validation_multiples=tuple(multiples),
        runs=RunCounts(planned=len(sweep_plan.runs), used_in_fit=fit.n_runs, trained_now=len(launched.rows),
                       already_done=launched.already_done),
        fit=fit, prediction=fixed, validations=validations, timings=timings,
        predictions=tuple((factor, fit.predict_at(factor * largest, predictor=predictor))
                          for factor in sorted({*multiples, *LARGER_BUDGETS})),
        plots=tuple(sorted(str(p.relative_to(out_dir)) for p in plots)),
    )
    paths = write_report(summary, out_dir)
    return StudyResult(summary=summary, report_path=paths["md"], html_path=paths["html"], summary_path=paths["json"])


def _multiples(config: SweepConfig, validation_multiples: tuple[float, ...] | None) -> tuple[float, ...]:
    """The validation budgets as multiples of the largest: the caller's, checked as the sweep file's are, or
    the sweep file's `validation.multiples`."""
    if validation_multiples is None:
        return config.validation.multiples
    try:
        return ValidationSection(multiples=tuple(validation_multiples)).multiples
    except ValueError as e:
        raise ValueError(f"validation_multiples: {e}") from None


def _sweep(config: SweepConfig, store: Path, *, address: str | None, on_progress, log):
    """Plan the sweep once (the launch, the validation seed and the depth note read the same plan), train
    what is not done, and return (plan, launch report, the corpus every run trains on)."""
    from sweeps.launch import launch, prepare_sweep_corpus  # noqa: PLC0415
    from sweeps.plan import plan  # noqa: PLC0415

    sweep_plan = plan(config)
    log(f"sweep {sweep_plan.name}: {len(sweep_plan.runs)} runs, {sweep_plan.spend()}")
    launched = launch(config, store=store, sweep_plan=sweep_plan, address=address, on_progress=on_progress)
    if launched.interrupted:
        raise KeyboardInterrupt
    # once: the launch prepared the corpus after reaching Ray and checking every node sees the store
    # (nothing written before); only a sweep with nothing left to train leaves it to the study
    corpus = launched.corpus or prepare_sweep_corpus(config, store)
    log(f"corpus: {'opened from the cache' if corpus.from_cache else 'tokenized'} at {corpus.path}")
    log(f"sweep: {launched.message}")
    return sweep_plan, launched, corpus


def _fix_validation(config: SweepConfig, sweep_plan, fit, budgets: list[float], multiples: tuple[float, ...],
                    predictor: str, path: Path):
    """Design the validation runs (the sweep's family, a seed no sweep run used) and write down what they are
    predicted to reach, before any trains. Returns (designs, the fixed prediction file)."""
    from scaling.prediction_file import fix_prediction  # noqa: PLC0415

    seed = validation_seed(sweep_plan)
    points = [r for r in sweep_plan.runs if not r.spec.trunk]
    template = dataclasses.replace(points[0].spec, trunk_id=None, branch_step=None)  # a WSD branch: trained alone
    designs = [validation_spec(config, template, fit, budget, predictor, seed=seed) for budget in budgets]
    fixed = fix_prediction(path, fit=fit, headline=designs[0].headline,
                           runs=tuple(d.planned(m) for d, m in zip(designs, multiples)))
    return designs, fixed


def _validate(config: SweepConfig, design: ValidationDesign, store: Path, corpus_path: Path, sweep_plan,
              fixed_at: datetime, log) -> ValidationOutcome:
    """Train the validation run (once: a finished run is returned from the store) and compare each predictor's
    loss, recorded before it trained (`design.predicted`), with the actual loss."""
    from experiments.runner import run_experiment  # noqa: PLC0415
    from experiments.store import read_status  # noqa: PLC0415

    spec = design.spec
    log(f"validation run at C = {design.budget:.3g}: {spec.n_layers} layers × {spec.d_model} wide (N_opt from "
        f"{design.prediction.best.name}), D = {spec.tokens:,} tokens, lr {spec.lr:.3g} ({spec.run_id})")
    row = run_experiment(spec, store=store, corpus_path=corpus_path, sweep=f"{config.name}-validation",
                         device="auto", threads=os.cpu_count())
    completed = row.success and (row.N, row.D) == (spec.n, spec.tokens)
    comparisons = tuple(Comparison(name, estimate, row.loss) for name, estimate in design.predicted if completed)
    note = depth_note(spec.n_layers, [(r.N, r.spec.n_layers) for r in sweep_plan.runs])
    if note:
        log(f"note: {note}")
    started_at = (read_status(store, spec.run_id) or {}).get("started_at")
    after = None if started_at is None else datetime.fromisoformat(started_at) >= fixed_at.replace(microsecond=0)
    if after is False:
        log(f"note: validation run {spec.run_id} was trained before this prediction was recorded")
    return ValidationOutcome(design=design, status=row.status, n=row.N, d=row.D, actual_loss=row.loss,
                             compute=row.C, flops=row.flops, wall_seconds=row.wall_seconds,
                             error=row.error, comparisons=comparisons, shape_note=note,
                             trained_after_prediction=after)


def validation_points(validations) -> list:
    """The completed validation runs as the plots draw them (`analysis.validation.ValidationPoint`)."""
    from analysis.validation import ValidationPoint  # noqa: PLC0415

    return [ValidationPoint(compute=v.compute, N=v.n, D=v.d, actual=v.actual_loss, predicted=v.design.predicted,
                            headline=v.design.headline.predictor if v.headline is not None else None)
            for v in validations if v.comparisons]


def depth_note(validation_layers: int, sweep_models: list[tuple[int, int]]) -> str | None:
    """A warning when the validation model's depth differs from that of the sweep's largest models (N at
    least half the largest): at small sizes depth alone moves the loss by several percent (2 against 3-4
    layers at 2e5-4e5 parameters: 3-7%, docs/performance.md), so the law is then tested on a shape family
    it was not fitted on."""
    largest = max(n for n, _ in sweep_models)
    depths = sorted({layers for n, layers in sweep_models if n >= largest / 2})
    if validation_layers in depths:
        return None
    return (f"the validation model has {validation_layers} layers, the sweep's largest models "
            f"{' or '.join(map(str, depths))}: at small sizes depth alone can move the loss by several percent, "
            f"so part of the error may be the change of shape family")
