"""Fit a whole study at once: every approach, the loss frontier, the Kaplan fits, hyperparameter laws,
consistency, backtest.

`fit_all(runs, curves)` is what the CLI and the study report call. It cleans the table once (one
`ExcludedRunsWarning` naming every excluded run). Where learning rate or batch size vary, the scaling-law
fits (Approaches 1–3, Kaplan, backtest) see only the best run of each (budget, N) and its curve, while the
hyperparameter laws see every run. Each component runs independently: a component
that cannot be fitted (too few budgets, no curves, no lr axis, ...) is recorded in `skipped` with the
reason instead of failing the others. Warnings raised by the fits are collected in `warnings` (and
re-raised once each). `StudyFit.to_dict()` is the JSON form (NaN as null); `predict_at(C)` the
recommendation at a compute budget from every approach fitted.

Names follow the papers: Approach 3's E, A, B, alpha, beta (Hoffmann et al. 2022, eq. 2); exponents a
(N_opt ∝ C^a) and b (D_opt ∝ C^b); every estimate with its `<name>_interval` at `level`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.backtest import BacktestResult, backtest
from analysis.bootstrap import BootstrapResult, bootstrap_parametric
from analysis.consistency import ConsistencyResult, ExponentEstimate, check_consistency, exponents_of
from analysis.envelope import EnvelopeFit, fit_envelope
from analysis.frontier import FrontierFit, fit_frontier
from analysis.hyperparams import HyperparamFit, best_per_cell, fit_hyperparam_law, varies
from analysis.isoflop import IsoFlopFit, fit_isoflop
from analysis.kaplan import KaplanFits, fit_kaplan
from analysis.parametric import ParametricFit, fit_parametric
from analysis.powerlaw import percentile_interval
from analysis.table import usable_runs

APPROACH_NAMES = {1: "Approach 1 (envelope)", 2: "Approach 2 (IsoFLOP)", 3: "Approach 3 (parametric)"}
NAN_PAIR = (math.nan, math.nan)


@dataclass(frozen=True)
class StudyFit:
    """Every result of a study's fit; None where a component was not fitted (`skipped` says why)."""

    approach1: EnvelopeFit | None
    approach2: IsoFlopFit | None
    approach3: ParametricFit | None
    approach3_bootstrap: BootstrapResult | None
    frontier: FrontierFit | None
    kaplan: KaplanFits | None
    lr_law: HyperparamFit | None
    batch_law: HyperparamFit | None
    consistency: ConsistencyResult | None
    backtest: BacktestResult | None
    skipped: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    n_runs: int
    level: float
    n_bootstrap: int
    seed: int

    @property
    def has_parametric(self) -> bool:
        return self.approach3 is not None

    def predict_loss(self, N, D) -> np.ndarray:
        """Approach 3's L(N, D) (NaN where Approach 3 was not fitted)."""
        if self.approach3 is None:
            return np.full(np.broadcast(np.asarray(N), np.asarray(D)).shape, math.nan)
        return self.approach3.predict_loss(N, D)

    def predict_run(self, N: float, D: float, *, by: str = "approach3", seed: int = 0) -> tuple[float, tuple[float, float]]:
        """The loss of one run of N parameters on D tokens, with a prediction interval at `level`.

        by: "approach3" (L(N, D)) or "frontier" (the loss frontier through Approach 2's minima at C = 6·N·D,
        plus its curvature penalty). Either interval combines the bootstrap's parameter uncertainty with
        run-to-run noise, so it is the interval a single new run's loss should fall in, not only the law's.
        For Approach 3 each replicate is multiplied by a residual of the fit resampled in log space (as the
        backtest does). NaN where that fit is missing.
        """
        if by not in ("approach3", "frontier"):
            raise ValueError(f"by must be 'approach3' or 'frontier', got {by!r}")
        if by == "frontier":
            if self.frontier is None:
                return math.nan, NAN_PAIR
            compute = 6 * float(N) * float(D)
            return float(self.frontier.predict_loss(N, compute)), self.frontier.prediction_interval(N, compute, seed=seed)
        if self.approach3 is None:
            return math.nan, NAN_PAIR
        predicted = float(self.approach3.predict_loss(N, D))
        if self.approach3_bootstrap is None or self.approach3_bootstrap.n_converged < 2:
            return predicted, NAN_PAIR
        replicates = np.asarray(self.approach3_bootstrap.loss_samples(N, D), dtype=float).ravel()
        noise = np.exp(-np.random.default_rng(seed).choice(self.approach3.residuals, size=replicates.size))
        return predicted, tuple(percentile_interval(replicates * noise, self.level))

    def _approach3_optimum(self, compute: float) -> dict[str, tuple[float, tuple[float, float]]]:
        """N_opt, D_opt, D/N and the loss there at C: (value, interval) from Approach 3 and its bootstrap."""
        n_opt, d_opt = (float(v) for v in self.approach3.compute_optimal(compute))
        values = {"n_opt": n_opt, "d_opt": d_opt, "tokens_per_param": d_opt / n_opt,
                  "loss": float(self.approach3.predict_loss(n_opt, d_opt))}
        if self.approach3_bootstrap is None or self.approach3_bootstrap.n_converged < 2:
            return {k: (v, NAN_PAIR) for k, v in values.items()}
        samples = self.approach3_bootstrap.compute_optimal_samples(compute)
        samples["tokens_per_param"] = samples["d_opt"] / samples["n_opt"]
        return {k: (v, tuple(percentile_interval(samples[k], self.level))) for k, v in values.items()}

    def loss_at_optimum(self, compute) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(C, loss, lo, hi): Approach 3's loss at N_opt(C) with its interval, over an array of C; None without it."""
        if self.approach3 is None:
            return None
        compute = np.asarray(compute, dtype=float)
        rows = [self._approach3_optimum(c)["loss"] for c in compute]
        return compute, np.array([r[0] for r in rows]), np.array([r[1][0] for r in rows]), np.array([r[1][1] for r in rows])

    def allocation_band(self, compute, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(value, lo, hi) of Approach 3's `key` ("n_opt" or "d_opt") over an array of C; None without it."""
        if self.approach3 is None:
            return None
        rows = [self._approach3_optimum(c)[key] for c in np.asarray(compute, dtype=float)]
        return np.array([r[0] for r in rows]), np.array([r[1][0] for r in rows]), np.array([r[1][1] for r in rows])

    def exponents(self) -> dict[int, dict[str, float]]:
        """{approach: {"a": a, "b": b}} for every approach fitted successfully."""
        out = {}
        for number, result in ((1, self.approach1), (2, self.approach2), (3, self.approach3)):
            if result is not None and (number == 3 or result.success):
                out[number] = {"a": float(result.a), "b": float(result.b)}
        return out

    def predict_at(self, compute: float) -> dict:
        """The recommendation at compute C (FLOPs): per approach n_opt, d_opt, tokens_per_param (and Approach 3's
        loss), each with `<name>_interval`, and the fit's `success`; lr and batch_size from their laws where
        fitted. Approaches 1 and 2 appear only when their power law was fitted; Approach 2's loss is the loss
        frontier's L_opt(C). JSON-safe."""
        compute = float(compute)
        if not (math.isfinite(compute) and compute > 0):
            raise ValueError(f"compute must be a positive finite number of FLOPs, got {compute!r}")
        out: dict = {"compute": compute}
        for name, law in (("approach1", self.approach1), ("approach2", self.approach2)):
            if law is None or not law.success:
                continue
            n_opt = float(law.n_opt(compute))
            lo, hi = law.n_opt_interval(compute)
            out[name] = {
                "n_opt": n_opt, "n_opt_interval": [lo, hi],
                "d_opt": compute / (6 * n_opt), "d_opt_interval": [compute / (6 * hi), compute / (6 * lo)],
                "tokens_per_param": compute / (6 * n_opt**2),
                "tokens_per_param_interval": [compute / (6 * hi**2), compute / (6 * lo**2)], "success": True,
            }
        if "approach2" in out and self.frontier is not None:  # the loss there, from the frontier through its minima
            out["approach2"]["loss"] = float(self.frontier.loss_at_optimum(compute))
            out["approach2"]["loss_interval"] = list(self.frontier.loss_at_optimum_interval(compute))
        if self.approach3 is not None:
            out["approach3"] = {"success": self.approach3.success}
            for key, (value, interval) in self._approach3_optimum(compute).items():
                out["approach3"][key] = value
                out["approach3"][f"{key}_interval"] = list(interval)
        for name, law in (("lr", self.lr_law), ("batch_size", self.batch_law)):
            if law is not None and law.success:
                out[name] = float(law.predict(compute))
                out[f"{name}_interval"] = list(law.interval(compute))
        return json_safe(out)

    def to_dict(self) -> dict:
        """JSON-safe summary of every component (NaN and ±inf become None)."""
        return json_safe({
            "n_runs": self.n_runs, "level": self.level, "n_bootstrap": self.n_bootstrap, "seed": self.seed,
            "skipped": {name: reason for name, reason in self.skipped},
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "approach1": _law_dict(self.approach1, extra=_envelope_extra),
            "approach2": _law_dict(self.approach2, extra=_isoflop_extra),
            "approach3": _parametric_dict(self.approach3, self.approach3_bootstrap),
            "frontier": _frontier_dict(self.frontier),
            "kaplan": None if self.kaplan is None else {
                name: _kaplan_dict(getattr(self.kaplan, name)) for name in
                ("loss_vs_n", "loss_vs_n_irreducible", "loss_vs_c", "loss_vs_c_irreducible")},
            "lr_law": _hyper_dict(self.lr_law),
            "batch_size_law": _hyper_dict(self.batch_law),
            "consistency": None if self.consistency is None else {
                "estimates": [vars(e) for e in self.consistency.estimates],
                "disagreements": list(self.consistency.disagreements),
                "consistent": self.consistency.consistent, "message": self.consistency.message},
            "backtest": _backtest_dict(self.backtest),
        })


def json_safe(value):
    """Plain JSON types: dict/list/str/int/float/bool/None, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _law_dict(result, *, extra) -> dict | None:
    if result is None:
        return None
    return {"a": result.a, "a_interval": list(result.a_interval), "b": result.b, "b_interval": list(result.b_interval),
            "k_n": result.k_n, "k_d": result.k_d, "success": result.success, "message": result.message} | extra(result)


def _envelope_extra(fit: EnvelopeFit) -> dict:
    return {"n_levels": len(fit.levels), "sizes_on_envelope": sorted(set(float(n) for n in fit.n_opt_points))}


def _isoflop_extra(fit: IsoFlopFit) -> dict:
    return {"noise_scale": fit.noise_scale, "budgets": [
        {"budget": p.budget, "n_runs": len(p.run_ids), "n_opt": p.n_opt, "n_opt_interval": list(p.n_opt_interval),
         "d_opt": p.d_opt, "loss_opt": p.loss_opt, "status": p.status, "included": p.included,
         "dropped_run_id": p.dropped_run_id} for p in fit.profiles]}


def _parametric_dict(fit: ParametricFit | None, boot: BootstrapResult | None) -> dict | None:
    if fit is None:
        return None
    out = {}
    for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
        out[name] = getattr(fit, name)
        out[f"{name}_interval"] = list(boot.intervals[name]) if boot is not None else [None, None]
    return out | {"success": fit.success, "message": fit.message, "n_runs": fit.n_runs, "objective": fit.objective,
                  "bootstrap": None if boot is None else {"n_resamples": boot.n_resamples,
                                                           "n_converged": boot.n_converged, "message": boot.message}}


def _frontier_dict(fit: FrontierFit | None) -> dict | None:
    if fit is None:
        return None
    return {"G": fit.G, "gamma": fit.gamma, "gamma_interval": list(fit.gamma_interval), "kappa": fit.kappa,
            "E": fit.E, "E_interval": list(fit.E_interval), "has_floor": fit.has_floor,
            "budgets": list(fit.budgets), "loss_opt": list(fit.loss_opt), "n_converged": fit.n_converged,
            "success": fit.success, "message": fit.message}


def _kaplan_dict(fit) -> dict:
    return {"E": fit.E, "x_c": fit.x_c, "alpha": fit.alpha, "alpha_se": fit.alpha_se, "n_points": len(fit.x),
            "success": fit.success, "message": fit.message}


def _hyper_dict(fit: HyperparamFit | None) -> dict | None:
    if fit is None:
        return None
    return {"k": fit.k, "k_interval": list(fit.k_interval), "p": fit.p, "p_interval": list(fit.p_interval),
            "n_cells": len(fit.cells), "n_cells_used": sum(c.status == "ok" for c in fit.cells),
            "skipped": [{"cell": c, "reason": r} for c, r in fit.skipped], "success": fit.success, "message": fit.message}


def _backtest_dict(result: BacktestResult | None) -> dict | None:
    if result is None:
        return None
    return {"holdout_run_ids": list(result.holdout_run_ids), "holdout_budgets": list(result.holdout_budgets),
            "mean_abs_loss_error": result.mean_abs_loss_error, "mean_rel_loss_error": result.mean_rel_loss_error,
            "loss_coverage": result.loss_coverage,
            "loss_predictions": [vars(p) for p in result.loss_predictions],
            "frontier_mean_rel_loss_error": result.frontier_mean_rel_loss_error,
            "frontier_loss_coverage": result.frontier_loss_coverage,
            "frontier_loss_predictions": [vars(p) for p in result.frontier_loss_predictions],
            "n_opt_predictions": [vars(p) for p in result.n_opt_predictions],
            "success": result.success, "message": result.message}


def _approach3_estimate(fit: ParametricFit, boot: BootstrapResult | None) -> ExponentEstimate:
    a_interval = tuple(boot.intervals["a"]) if boot is not None else NAN_PAIR
    b_interval = tuple(boot.intervals["b"]) if boot is not None else NAN_PAIR
    return ExponentEstimate(APPROACH_NAMES[3], fit.a, a_interval, fit.b, b_interval)


def fit_all(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    approaches: Sequence[int] = (1, 2, 3),
    n_bootstrap: int = 1000,
    seed: int = 0,
    holdout: Sequence[str] | None = None,
    level: float = 0.95,
) -> StudyFit:
    """Fit every component the data supports; see the module docstring.

    approaches: which of 1 (envelope; needs `curves`), 2 (IsoFLOP) and 3 (parametric) to fit.
    holdout: run ids for the backtest; None holds out the largest budget; an empty sequence skips it.
    """
    unknown = set(approaches) - {1, 2, 3}
    if unknown:
        raise ValueError(f"approaches: unknown approach(es) {sorted(unknown)}; choose from 1, 2, 3")
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be ≥ 2, got {n_bootstrap}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    results: dict[str, object] = {}
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []

    def attempt(name: str, function, *args, **kwargs):
        try:
            results[name] = function(*args, **kwargs)
        except (ValueError, ArithmeticError) as error:  # recorded with its reason; the other fits go on
            skipped.append((name, f"{type(error).__name__}: {error}" if isinstance(error, ArithmeticError) else str(error)))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = usable_runs(runs, source="fit_all")
        scaling_runs = best_per_cell(runs)  # the best learning rate / batch size of each (budget, N)
        if len(scaling_runs) < len(runs):
            notes.append(f"scaling-law fits use the best run of each (budget, N) over the hyperparameter axes: "
                         f"{len(scaling_runs)} of {len(runs)} runs")
        if curves is not None and "run_id" in curves.columns and "run_id" in runs.columns:
            # the envelope sees the same runs: an excluded run's curve, or a poor learning rate's, is left out
            kept = curves["run_id"].astype(str).isin(set(scaling_runs["run_id"].astype(str)))
            if not kept.all():
                notes.append(f"Approach 1 uses the curves of those runs: "
                             f"{curves.loc[kept, 'run_id'].nunique()} of {curves['run_id'].nunique()} curves")
            curves = curves[kept]
        boot = dict(n_bootstrap=n_bootstrap, level=level, seed=seed)
        if 1 in approaches:
            if curves is None:
                skipped.append(("approach1", "no training curves given"))
            else:
                attempt("approach1", fit_envelope, curves, **boot)
        if 2 in approaches:
            attempt("approach2", fit_isoflop, scaling_runs, **boot)
            if "approach2" in results and results["approach2"].success:
                attempt("frontier", fit_frontier, results["approach2"], **boot)
        if 3 in approaches:
            attempt("approach3", fit_parametric, scaling_runs)
            if "approach3" in results:
                attempt("approach3_bootstrap", bootstrap_parametric, scaling_runs, n_resamples=n_bootstrap, seed=seed,
                        level=level, fit=results["approach3"])
        attempt("kaplan", fit_kaplan, scaling_runs)
        for column, name in (("lr", "lr_law"), ("batch_size", "batch_law")):
            if varies(runs, column):
                attempt(name, fit_hyperparam_law, runs, column, **boot)
        estimates = [exponents_of(results[f"approach{i}"], APPROACH_NAMES[i]) for i in (1, 2)
                     if f"approach{i}" in results and results[f"approach{i}"].success]
        if "approach3" in results:
            estimates.append(_approach3_estimate(results["approach3"], results.get("approach3_bootstrap")))
        if len(estimates) >= 2:
            results["consistency"] = check_consistency(estimates)
        else:
            skipped.append(("consistency", f"{len(estimates)} approach(es) fitted; need ≥ 2 to compare"))
        if 3 not in approaches:
            skipped.append(("backtest", "Approach 3 not requested"))
        elif holdout is not None and len(holdout) == 0:
            skipped.append(("backtest", "no holdout requested"))
        else:
            attempt("backtest", backtest, scaling_runs, holdout, n_bootstrap=n_bootstrap, level=level, seed=seed)
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    for message in messages:  # re-raise each once, now that the bundle records them too
        category = next(w.category for w in caught if str(w.message) == message)
        warnings.warn(message, category, stacklevel=2)
    return StudyFit(
        approach1=results.get("approach1"), approach2=results.get("approach2"), approach3=results.get("approach3"),
        approach3_bootstrap=results.get("approach3_bootstrap"), frontier=results.get("frontier"),
        kaplan=results.get("kaplan"),
        lr_law=results.get("lr_law"), batch_law=results.get("batch_law"), consistency=results.get("consistency"),
        backtest=results.get("backtest"), skipped=tuple(skipped), warnings=tuple(messages), notes=tuple(notes), n_runs=len(runs),
        level=level, n_bootstrap=n_bootstrap, seed=seed,
    )
