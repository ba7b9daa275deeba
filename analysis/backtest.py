"""Backtest: fit on the smaller budgets, predict the largest, and check the predictions against the runs.

The point of a scaling law is the extrapolation, so we score it the only honest way: hold out the
largest budget(s) (or named runs), fit on the rest, and predict
- each held-out run's final loss with Approach 3 (`parametric.fit_parametric` + `bootstrap`) and with the
  loss frontier through Approach 2's minima (`frontier.fit_frontier`), and
- each held-out budget's compute-optimal size N_opt with Approaches 2 and 3,
reporting absolute and relative errors and whether the actual value lies inside the predicted interval.

Notable choices:
- A loss interval is a *prediction* interval: each bootstrap replicate's L(N, D) is multiplied by
  exp(−r), r a residual (log L̂ − log L) of the training fit drawn at random, so it carries run-to-run
  noise as well as parameter uncertainty; without it a correct law would miss most noisy runs.
- The "actual" N_opt of a held-out budget is the vertex of its own IsoFLOP parabola
  (`isoflop.fit_isoflop` on the held-out runs); a budget whose minimum is not bracketed has no actual and
  is named in `message`. Its predicted intervals come from Approach 2's parametric bootstrap and
  Approach 3's bootstrap, both fitted without the held-out runs.
- An interval whose fit marks it unreliable (the training fit failed, or most bootstrap replicates were
  dropped: `interval_reliable`) is shown with its prediction, `reliable` False, and not scored: the coverage
  counts only reliable intervals, as the calibration does (analysis/calibration.py). The errors of the point
  predictions are scored either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.bootstrap import bootstrap_parametric
from analysis.compute_per_token import from_runs
from analysis.frontier import fit_frontier
from analysis.isoflop import assign_budgets, fit_isoflop, prepare_runs
from analysis.parametric import fit_parametric
from analysis.powerlaw import percentile_interval
from analysis.replicates import cell_groups


@dataclass(frozen=True)
class Prediction:
    """One predicted quantity against its actual value: a held-out run's loss (`what` = "loss", `key` its
    run id) or a held-out budget's N_opt (`what` = "n_opt", `key` the approach)."""

    what: str
    key: str
    compute: float
    actual: float
    predicted: float
    interval: tuple[float, float]
    abs_error: float
    rel_error: float
    inside_interval: bool
    reliable: bool = True  # False: the interval's fit marks it unreliable (module docstring); not scored


@dataclass(frozen=True)
class BacktestResult:
    """Predictions for the held-out runs and budgets from fits on the rest.

    mean_abs_loss_error, mean_rel_loss_error and loss_coverage (share of actual losses inside their
    intervals, over the reliable ones; NaN where none is) summarise Approach 3's `loss_predictions`; the
    `frontier_` fields the same for the loss frontier (empty and NaN when Approach 2 could not be fitted on
    the training runs); `n_opt_predictions` hold Approach 2's and 3's N_opt.
    """

    train_run_ids: tuple[str, ...]
    holdout_run_ids: tuple[str, ...]
    holdout_budgets: tuple[float, ...]
    loss_predictions: tuple[Prediction, ...]
    n_opt_predictions: tuple[Prediction, ...]
    mean_abs_loss_error: float
    mean_rel_loss_error: float
    loss_coverage: float
    frontier_loss_predictions: tuple[Prediction, ...]
    frontier_mean_rel_loss_error: float
    frontier_loss_coverage: float
    level: float
    success: bool
    message: str


def _prediction(what, key, compute, actual, predicted, interval, reliable: bool) -> Prediction:
    lo, hi = (float(v) for v in interval)
    return Prediction(what=what, key=str(key), compute=float(compute), actual=float(actual),
                      predicted=float(predicted), interval=(lo, hi), abs_error=abs(float(predicted) - float(actual)),
                      rel_error=(float(predicted) - float(actual)) / float(actual),
                      inside_interval=bool(lo <= actual <= hi), reliable=bool(reliable))


def _coverage(predictions, intervals: str) -> tuple[float, str]:
    """(share of the reliable intervals holding their actual, NaN if none; how it reads in a message, the
    intervals named `intervals`)."""
    scored = [p.inside_interval for p in predictions if p.reliable]
    if not scored:
        return float("nan"), f"{intervals} unreliable (their fit failed or most replicates were dropped), not scored"
    unscored = len(predictions) - len(scored)
    return float(np.mean(scored)), (f"{np.mean(scored):.0%} inside {intervals}"
                                    + (f" ({unscored} unreliable, not scored)" if unscored else ""))


def split_holdout(runs: pd.DataFrame, holdout: Sequence[str] | None = None, *, n_budgets: int = 1):
    """(train, held-out) rows: the named run ids, or every run of the `n_budgets` largest budgets."""
    if holdout is not None:
        ids = {str(h) for h in holdout}
        unknown = ids - set(runs["run_id"].astype(str))
        if unknown:
            raise ValueError(f"holdout: run id(s) {sorted(unknown)} are not among the usable runs")
        held = runs["run_id"].astype(str).isin(ids)
    else:
        if n_budgets < 1:
            raise ValueError(f"n_budgets must be ≥ 1, got {n_budgets}")
        budgets = assign_budgets(runs, fill_missing=True)
        largest = np.sort(budgets.unique())[-n_budgets:]
        if len(largest) == budgets.nunique():
            raise ValueError(f"holdout: holding out {n_budgets} budget(s) leaves no budget to fit on "
                             f"({budgets.nunique()} in all)")
        held = budgets.isin(largest)
    if held.all() or not held.any():
        raise ValueError("holdout: must leave some runs to fit on and hold out at least one")
    return runs[~held], runs[held]


def backtest(
    runs: pd.DataFrame,
    holdout: Sequence[str] | None = None,
    *,
    n_holdout_budgets: int = 1,
    n_bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> BacktestResult:
    """Fit Approaches 2 and 3 without the held-out runs and score their predictions of those runs.

    holdout: run ids to hold out; None holds out every run of the `n_holdout_budgets` largest budgets.
    Raises ValueError if the split leaves nothing to fit or the training runs cannot fit Approach 3.
    """
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be ≥ 2 for intervals, got {n_bootstrap}")
    runs = prepare_runs(runs, ("run_id", "N", "D", "loss"), what="backtest")
    train, held = split_holdout(runs, holdout, n_budgets=n_holdout_budgets)
    notes = []
    fit = fit_parametric(train)
    per_token = from_runs(train)  # C = f(N)·D, the split Approach 3's N_opt is taken under
    if not fit.success:
        notes.append(f"Approach 3 on the training runs: {fit.message}")
    grouped, group_col = cell_groups(train)  # seed replicates: resample whole cells (analysis/replicates.py)
    boot = bootstrap_parametric(grouped, n_resamples=n_bootstrap, seed=seed, level=level, fit=fit, group_col=group_col)
    rng = np.random.default_rng(seed)

    loss_predictions = []
    for row in held.itertuples():
        replicates = boot.loss_samples(row.N, row.D).ravel()
        noise = np.exp(-rng.choice(fit.noise_residuals, size=replicates.size))
        interval = percentile_interval(replicates * noise, level)
        predicted = float(fit.predict_loss(row.N, row.D))
        loss_predictions.append(_prediction("loss", row.run_id, row.C, row.loss, predicted, interval,
                                            boot.interval_reliable))

    n_opt_predictions = []
    held_budgets = assign_budgets(held, fill_missing=True)
    approach2 = _isoflop(train, n_bootstrap=n_bootstrap, level=level, seed=seed)
    approach2_ok = not isinstance(approach2, Exception) and approach2.success
    frontier_predictions = []
    if approach2_ok:
        frontier = fit_frontier(approach2, n_bootstrap=n_bootstrap, level=level, seed=seed)
        for row in held.itertuples():
            frontier_predictions.append(_prediction(
                "loss", row.run_id, row.C, row.loss, frontier.predict_loss(row.N, row.C),
                frontier.prediction_interval(row.N, row.C, seed=seed), frontier.success and frontier.interval_reliable))
    else:
        notes.append(f"Approach 2 on the training runs: {approach2 if isinstance(approach2, Exception) else approach2.message}")
    for budget in np.sort(held_budgets.unique()):
        members = held[held_budgets == budget]
        actual = _isoflop(members, n_bootstrap=0)
        if isinstance(actual, Exception) or not actual.profiles[0].included:
            status = "< 3 sizes" if isinstance(actual, Exception) else actual.profiles[0].status
            notes.append(f"held-out budget {budget:.3g}: no N_opt to compare ({status})")
            continue
        n_actual = actual.profiles[0].n_opt
        if approach2_ok:
            n_opt_predictions.append(_prediction("n_opt", "approach2", budget, n_actual, approach2.n_opt(budget),
                                                 approach2.n_opt_interval(budget), approach2.interval_reliable))
        n3, _ = fit.compute_optimal(budget, per_token)
        n3_interval = percentile_interval(boot.compute_optimal_samples(budget, per_token)["n_opt"], level)
        n_opt_predictions.append(_prediction("n_opt", "approach3", budget, n_actual, n3, n3_interval,
                                             boot.interval_reliable))

    abs_errors = [p.abs_error for p in loss_predictions]
    rel_errors = [abs(p.rel_error) for p in loss_predictions]
    coverage, covered = _coverage(loss_predictions, f"their {level:.0%} intervals")
    head = (f"held out {len(held)} run(s); Approach 3's loss mean |error| {np.mean(abs_errors):.4g} nats "
            f"({np.mean(rel_errors):.2%}), {covered}; {boot.message}")
    frontier_error = frontier_coverage = float("nan")
    if frontier_predictions:
        frontier_error = float(np.mean([abs(p.rel_error) for p in frontier_predictions]))
        frontier_coverage, covered = _coverage(frontier_predictions, "their intervals")
        head += f"; the loss frontier's mean |error| {frontier_error:.2%}, {covered}"
    return BacktestResult(
        train_run_ids=tuple(map(str, train["run_id"])), holdout_run_ids=tuple(map(str, held["run_id"])),
        holdout_budgets=tuple(float(b) for b in np.sort(held_budgets.unique())),
        loss_predictions=tuple(loss_predictions), n_opt_predictions=tuple(n_opt_predictions),
        mean_abs_loss_error=float(np.mean(abs_errors)), mean_rel_loss_error=float(np.mean(rel_errors)),
        loss_coverage=coverage, frontier_loss_predictions=tuple(frontier_predictions),
        frontier_mean_rel_loss_error=frontier_error, frontier_loss_coverage=frontier_coverage,
        level=level, success=fit.success, message="; ".join([head] + notes),
    )


def _isoflop(runs, **kwargs):
    """An IsoFLOP fit that does not warn (what matters here, a held-out budget without a bracketed minimum or
    Approach 2 failing on the training runs, goes into the backtest's message); an error is returned."""
    try:
        return fit_isoflop(runs, warn=False, **kwargs)
    except ValueError as error:
        return error
