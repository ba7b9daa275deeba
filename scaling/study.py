"""One command from sweep to verdict: train the sweep, fit every law, plot, then test the prediction.

`run_study` launches the sweep (reusing every finished run in the store), fits Approaches 1-3 with
bootstrap intervals, writes the plots, and then trains a validation run the fit never saw: at the
predicted compute-optimal N and D for a budget `validation_factor` × the sweep's largest (4× by default),
with the predicted learning rate where the sweep fitted one. Its predicted and actual validation loss,
the error and whether the actual lies inside the prediction interval close the report.

The validation run is trained in this process on all local CPUs (or the GPU), not through Ray: it is one
run, and the store still guarantees it is trained once (a finished run is returned, not retrained).

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
from pathlib import Path
from typing import Callable

from analysis.prediction import PREDICTORS, Estimate, Headline, Prediction
from analysis.serialize import to_tree
from analysis.study_fit import StudyFit
from experiments.spec import ExperimentSpec
from sweeps.config import SweepConfig

LARGER_BUDGETS = (10, 100, 1000)  # × the largest sweep budget, for the report's predictions


@dataclass(frozen=True)
class ValidationDesign:
    """The run that tests the fit, fixed before it trains: its spec, the prediction at its budget (whose
    headline names the predictor that designs and predicts it) and where its learning rate came from."""

    spec: ExperimentSpec
    budget: float
    prediction: Prediction
    lr_from: str

    @property
    def headline(self) -> Headline:
        return self.prediction.headline

    @property
    def n_opt_predicted(self) -> float:
        return self.prediction.best.n_opt.value


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
        lo, hi = self.predicted.interval
        return bool(lo <= self.actual <= hi) if self.predicted.has_interval else None


@dataclass(frozen=True)
class ValidationOutcome:
    """What the validation run gave: its row's figures and each predictor's comparison (none unless it completed)."""

    design: ValidationDesign
    status: str
    n: int | None
    d: int | None
    actual_loss: float | None
    flops: float | None
    wall_seconds: float | None
    error: str | None
    comparisons: tuple[Comparison, ...]
    shape_note: str | None

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
    validation_factor: float
    runs: RunCounts
    fit: StudyFit
    predictions: tuple[tuple[float, Prediction], ...]  # (× the largest budget, prediction there)
    validation: ValidationOutcome
    plots: tuple[str, ...]
    timings: dict[str, float]

    def to_dict(self) -> dict:
        tree = to_tree(self)
        v = self.validation  # the derived figures a reader of summary.json wants, next to the raw ones
        tree["validation"]["comparisons"] = [
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
    import warnings  # noqa: PLC0415

    from analysis.table import read_curves, read_table  # noqa: PLC0415

    wanted = set(run_ids)
    with warnings.catch_warnings():  # the fit records the exclusions, naming each run
        warnings.simplefilter("ignore")
        runs = read_table(store)
        curves = read_curves(store)
    return runs[runs["run_id"].isin(wanted)].reset_index(drop=True), curves[curves["run_id"].isin(wanted)]


def _middle(values: list):
    """The middle of an axis (the rule's own value when multipliers surround it)."""
    return sorted(values)[len(values) // 2]


def _check_predictor(predictor: str) -> None:
    if predictor not in ("auto", *PREDICTORS):
        raise ValueError(f"predictor must be 'auto' or one of {PREDICTORS}, got {predictor!r}")


def validation_spec(config: SweepConfig, template: ExperimentSpec, fit: StudyFit, budget: float,
                    predictor: str = "auto") -> ValidationDesign:
    """The run that tests the fit: the headline predictor's compute-optimal N at `budget` (`fit.predict_at`),
    built with the sweep's own shape rule, D from `sweeps.plan.tokens_for`, the predicted lr where fitted."""
    _check_predictor(predictor)
    from lm.accounting import param_counts  # noqa: PLC0415
    from lm.shapes import shape_for_params  # noqa: PLC0415
    from sweeps.plan import tokens_for  # noqa: PLC0415

    prediction = fit.predict_at(budget, predictor=predictor)
    shape = shape_for_params(prediction.best.n_opt.value, vocab_size=template.vocab_size,
                             context_length=template.context_length, convention=template.n_convention,
                             tie_embeddings=template.tie_embeddings, aspect=config.training.aspect)
    n_actual = param_counts(shape).n(template.n_convention)
    batch = round(prediction.batch_size.value) if prediction.batch_size.known else _middle(
        config.training.batch_sizes(N=n_actual, C=budget))
    lr = prediction.lr.value if prediction.lr.known else _middle(config.training.lrs(N=n_actual, C=budget))
    tokens = tokens_for(budget, n_actual, batch * template.context_length, min_steps=config.planning.min_steps)
    spec = dataclasses.replace(
        template, n_params=None, n_layers=shape.n_layers, d_model=shape.d_model, n_heads=shape.n_heads,
        tokens=tokens, batch_size=batch, lr=float(f"{lr:.6g}"), budget=float(budget))
    return ValidationDesign(spec=spec, budget=float(budget), prediction=prediction,
                            lr_from="lr law" if prediction.lr.known else "sweep")


def run_study(
    config: SweepConfig,
    *,
    store: str | Path,
    out_dir: str | Path,
    address: str | None = None,
    n_bootstrap: int = 1000,
    validation_factor: float = 4.0,
    predictor: str = "auto",
    on_progress: Callable | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> StudyResult:
    """Sweep, fit, plot, validate, report. Returns the summary and where the report was written."""
    from analysis.plots import save_all_plots  # noqa: PLC0415
    from analysis.study_fit import fit_all  # noqa: PLC0415
    from scaling.report import write_report  # noqa: PLC0415
    from sweeps.launch import launch  # noqa: PLC0415
    from sweeps.plan import plan  # noqa: PLC0415

    _check_predictor(predictor)  # before the sweep, not after it
    if validation_factor < 4:
        raise ValueError(f"validation_factor must be at least 4 (a prediction well outside the sweep), got {validation_factor}")
    store, out_dir = Path(store).resolve(), Path(out_dir)
    timings = {}
    started = time.monotonic()

    sweep_plan = plan(config)
    log(f"sweep {sweep_plan.name}: {len(sweep_plan.runs)} runs, C = {sweep_plan.total_C:.3g} FLOPs in all")
    launched = launch(config, store=store, address=address, on_progress=on_progress)
    if launched.interrupted:
        raise KeyboardInterrupt
    timings["sweep_seconds"] = time.monotonic() - started
    log(f"sweep: {launched.message}")

    t = time.monotonic()
    points = [r for r in sweep_plan.runs if not r.spec.trunk]  # a WSD sweep's trunks are not points
    runs, curves = _sweep_table(store, [r.run_id for r in points])
    fit = fit_all(runs, curves, n_bootstrap=n_bootstrap, seed=0)
    timings["fit_seconds"] = time.monotonic() - t
    log(f"fitted {fit.n_runs} runs in {timings['fit_seconds']:.1f} s; headline: {fit.headline_for(predictor).name}")

    t = time.monotonic()
    plots = save_all_plots(fit, runs, curves, out_dir / "plots")
    timings["plot_seconds"] = time.monotonic() - t

    largest = max(r.spec.budget or r.C for r in sweep_plan.runs)
    template = dataclasses.replace(points[0].spec, trunk_id=None, branch_step=None)  # a WSD branch: trained alone
    design = validation_spec(config, template, fit, validation_factor * largest, predictor)
    t = time.monotonic()
    validation = _validate(config, design, fit, store, sweep_plan, log)
    timings["validation_seconds"] = time.monotonic() - t
    timings["total_seconds"] = time.monotonic() - started

    summary = StudySummary(
        sweep=config.name, source=config.source, store=str(store), n_convention=config.n_convention,
        validation_factor=validation_factor,
        runs=RunCounts(planned=len(sweep_plan.runs), used_in_fit=fit.n_runs, trained_now=len(launched.rows),
                       already_done=launched.already_done),
        fit=fit, validation=validation, timings=timings,
        predictions=tuple((factor, fit.predict_at(factor * largest, predictor=predictor))
                          for factor in (validation_factor, *LARGER_BUDGETS)),
        plots=tuple(sorted(str(p.relative_to(out_dir)) for p in plots)),
    )
    paths = write_report(summary, out_dir)
    return StudyResult(summary=summary, report_path=paths["md"], html_path=paths["html"], summary_path=paths["json"])


def _validate(config: SweepConfig, design: ValidationDesign, fit: StudyFit, store: Path, sweep_plan, log) -> ValidationOutcome:
    """Train the validation run (once: a finished run is returned from the store) and compare the predictors."""
    from experiments.runner import run_experiment  # noqa: PLC0415
    from sweeps.launch import prepare_sweep_corpus  # noqa: PLC0415

    spec = design.spec
    log(f"validation run at C = {design.budget:.3g}: {spec.n_layers} layers × {spec.d_model} wide (N_opt from "
        f"{design.prediction.best.name}), D = {spec.tokens:,} tokens, lr {spec.lr:.3g} ({spec.run_id})")
    corpus = prepare_sweep_corpus(config, store)
    row = run_experiment(spec, store=store, corpus_path=corpus.path, sweep=f"{config.name}-validation",
                         device="auto", threads=os.cpu_count())
    completed = row["status"] == "completed" and row["D"] is not None
    comparisons = tuple(
        Comparison(name, estimate, row["loss"]) for name in PREDICTORS
        for estimate in [fit.predict_run(row["N"], row["D"], by=name)] if completed and estimate.known)
    note = depth_note(spec.n_layers, [(r.N, r.spec.n_layers) for r in sweep_plan.runs])
    if note:
        log(f"note: {note}")
    return ValidationOutcome(design=design, status=row["status"], n=row["N"], d=row["D"], actual_loss=row["loss"],
                             flops=row["flops"], wall_seconds=row["wall_seconds"], error=row.get("error"),
                             comparisons=comparisons, shape_note=note)


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
