"""One command from sweep to verdict: train the sweep, fit every law, plot, then test the prediction.

`run_study` launches the sweep (reusing every finished run in the store), fits Approaches 1-3 with
bootstrap intervals, writes the plots, and then trains a validation run the fit never saw: at the
predicted compute-optimal N and D for a budget `validation_factor` × the sweep's largest (4× by default),
with the predicted learning rate where the sweep fitted one. Its predicted and actual validation loss,
the error and whether the actual lies inside the prediction interval close the report.

The validation run is trained in this process on all local CPUs (or the GPU), not through Ray: it is one
run, and the store still guarantees it is trained once (a finished run is returned, not retrained).

Which law designs and predicts it is fixed before it trains, by `predictor`:
- "frontier" (the default): N_opt from Approach 2 (the IsoFLOP minima, measured directly) and the loss from
  the loss frontier through those minima (`analysis.frontier`);
- "approach3": N_opt and the loss from Approach 3's L(N, D).
Each falls back to the other where its own fit is missing. Both predictors are evaluated at the run's
*actual* N and D (after the shape and the whole-steps rounding), each with a prediction interval (parameter
uncertainty and run-to-run noise), and both are reported; the headline is the one named in `predicted_by`.
Why the frontier by default: Approach 3 must also identify the floor E, which a sweep of small models over a
decade or two of compute pins poorly, and a wrong E bends its extrapolation. The frontier assumes no floor,
so near one (losses close to E, as in Chinchilla's regime) it predicts too low; the report's backtest scores
both predictors on the sweep's own largest budget, and says which to trust (docs/methods.md).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sweeps.config import SweepConfig

LARGER_BUDGETS = (10, 100, 1000)  # × the largest sweep budget, for the report's predictions


@dataclass(frozen=True)
class StudyResult:
    summary: dict  # what summary.json holds
    report_path: Path
    html_path: Path
    summary_path: Path


def _sweep_table(store: Path, run_ids: list[str]):
    """The sweep's runs and curves from the store (the store may hold other sweeps too)."""
    from analysis.table import read_curves, read_table  # noqa: PLC0415

    wanted = set(run_ids)
    with warnings.catch_warnings():  # the fit repeats the exclusion warning, naming each run
        warnings.simplefilter("ignore")
        runs = read_table(store)
        curves = read_curves(store)
    return runs[runs["run_id"].isin(wanted)].reset_index(drop=True), curves[curves["run_id"].isin(wanted)]


def _middle(values: list):
    """The middle of an axis (the rule's own value when multipliers surround it)."""
    return sorted(values)[len(values) // 2]


PREDICTORS = ("frontier", "approach3")
NO_PREDICTION = {"predicted_loss": None, "interval": None, "relative_error": None, "inside_interval": None}


def _check_predictor(predictor: str) -> None:
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")


def validation_spec(config: SweepConfig, template, fit, budget: float, predictor: str = "frontier"):
    """The run that tests the fit: compute-optimal N and D at `budget`, the predicted lr where fitted.

    predictor "frontier" takes N_opt from Approach 2 and predicts with its loss frontier; "approach3" takes
    both from Approach 3. Each falls back to the other approach (then Approach 1) where its own is missing."""
    _check_predictor(predictor)
    from lm.accounting import param_counts  # noqa: PLC0415
    from lm.shapes import shape_for_params  # noqa: PLC0415

    prediction = fit.predict_at(budget)
    order = ("approach2", "approach3", "approach1") if predictor == "frontier" else ("approach3", "approach2", "approach1")
    source = next((name for name in order
                   if prediction.get(name, {}).get("n_opt") is not None), None)
    if source is None:
        raise ValueError("no approach produced a compute-optimal N, so there is nothing to validate; "
                         "see the fit's messages in the report")
    n_opt = prediction[source]["n_opt"]
    shape = shape_for_params(n_opt, vocab_size=template.vocab_size, context_length=template.context_length,
                             convention=template.n_convention, tie_embeddings=template.tie_embeddings,
                             aspect=config.training.aspect)  # the sweep's own shape rule
    n_actual = param_counts(shape).n(template.n_convention)
    batch = round(prediction["batch_size"]) if prediction.get("batch_size") else _middle(
        config.training.batch_sizes(N=n_actual, C=budget))
    lr = prediction["lr"] if prediction.get("lr") else _middle(config.training.lrs(N=n_actual, C=budget))
    tokens_per_step = batch * template.context_length
    steps = max(1, round(budget / (6 * n_actual * tokens_per_step)))
    spec = dataclasses.replace(
        template, n_params=None, n_layers=shape.n_layers, d_model=shape.d_model, n_heads=shape.n_heads,
        tokens=steps * tokens_per_step, batch_size=batch, lr=float(f"{lr:.6g}"), budget=float(budget))
    predictor = "frontier" if source == "approach2" and fit.frontier is not None else "approach3"
    return spec, {"n_opt_predicted": n_opt, "from": source, "predicted_by": predictor,
                  "lr_from": "lr law" if prediction.get("lr") else "sweep"}


def run_study(
    config: SweepConfig,
    *,
    store: str | Path,
    out_dir: str | Path,
    address: str | None = None,
    n_bootstrap: int = 1000,
    validation_factor: float = 4.0,
    predictor: str = "frontier",
    on_progress: Callable | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> StudyResult:
    """Sweep, fit, plot, validate, report. Returns the summary and where the report was written."""
    from analysis.plots import save_all_plots  # noqa: PLC0415
    from analysis.study_fit import fit_all  # noqa: PLC0415
    from experiments.runner import run_experiment  # noqa: PLC0415
    from scaling.report import write_report  # noqa: PLC0415
    from sweeps.launch import launch, prepare_sweep_corpus  # noqa: PLC0415
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
    runs, curves = _sweep_table(store, sweep_plan.run_ids)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_all(runs, curves, n_bootstrap=n_bootstrap, seed=0)
    fit_warnings = sorted({str(w.message) for w in caught})
    timings["fit_seconds"] = time.monotonic() - t
    log(f"fitted {fit.n_runs} runs in {timings['fit_seconds']:.1f} s")

    t = time.monotonic()
    plots = save_all_plots(fit, runs, curves, out_dir / "plots")
    timings["plot_seconds"] = time.monotonic() - t

    largest = max(r.spec.budget or r.C for r in sweep_plan.runs)
    budget = validation_factor * largest
    spec, how = validation_spec(config, sweep_plan.runs[0].spec, fit, budget, predictor)
    log(f"validation run at C = {budget:.3g}: {spec.n_layers} layers × {spec.d_model} wide (N_opt from "
        f"{how['from']}), D = {spec.tokens:,} tokens, lr {spec.lr:.3g} ({spec.run_id})")
    t = time.monotonic()
    corpus = prepare_sweep_corpus(config, store)
    row = run_experiment(spec, store=store, corpus_path=corpus.path, sweep=f"{config.name}-validation",
                         device="auto", threads=os.cpu_count())
    timings["validation_seconds"] = time.monotonic() - t
    validation = _validation(fit, spec, row, budget, how)
    validation["shape_note"] = depth_note(spec.n_layers, [(r.N, r.spec.n_layers) for r in sweep_plan.runs])
    if validation["shape_note"]:
        log(f"note: {validation['shape_note']}")
    timings["total_seconds"] = time.monotonic() - started

    summary = {
        "sweep": config.name, "source": config.source, "store": str(store), "n_convention": config.n_convention,
        "validation_factor": validation_factor,
        "runs": {"planned": len(sweep_plan.runs), "used_in_fit": fit.n_runs,
                 "trained_now": len(launched.rows), "already_done": launched.already_done},
        "fits": fit.to_dict(), "fit_warnings": fit_warnings,
        "predictions": {f"{factor}x": fit.predict_at(factor * largest) for factor in (validation_factor, *LARGER_BUDGETS)},
        "validation": validation,
        "plots": sorted(str(p.relative_to(out_dir)) for p in plots),
        "timings": timings,
    }
    paths = write_report(summary, out_dir)
    return StudyResult(summary=summary, report_path=paths["md"], html_path=paths["html"], summary_path=paths["json"])


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


def _validation(fit, spec, row: dict, budget: float, how: dict) -> dict:
    out = {"budget": budget, "run_id": spec.run_id, "status": row["status"], "n": row["N"], "d": row["D"],
           "n_opt_predicted": how["n_opt_predicted"], "n_opt_from": how["from"], "lr": spec.lr, "lr_from": how["lr_from"],
           "batch_size": spec.batch_size, "shape": {"n_layers": spec.n_layers, "d_model": spec.d_model,
                                                    "n_heads": spec.n_heads},
           "flops": row["flops"], "wall_seconds": row["wall_seconds"], "actual_loss": row["loss"]}
    out["predicted_by"] = how["predicted_by"]
    if row["status"] != "completed" or row["D"] is None:
        return out | NO_PREDICTION | {"by_predictor": {}, "error": row.get("error")}
    by_predictor = {}
    for name in PREDICTORS:
        predicted, (lo, hi) = fit.predict_run(row["N"], row["D"], by=name)
        if not math.isnan(predicted):
            by_predictor[name] = _compared(predicted, lo, hi, row["loss"])
    return out | by_predictor.get(how["predicted_by"], NO_PREDICTION) | {"by_predictor": by_predictor}


def _compared(predicted: float, lo: float, hi: float, actual: float) -> dict:
    known = not (math.isnan(lo) or math.isnan(hi))
    return {"predicted_loss": predicted, "interval": [lo, hi] if known else None,
            "relative_error": (predicted - actual) / actual,
            "inside_interval": bool(lo <= actual <= hi) if known else None}
