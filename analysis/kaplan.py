"""Kaplan-style single-variable scaling laws (Kaplan et al. 2020, §3 and eqs. 1.1 and 1.3).

L(N) = (N_c / N)^α_N over the best run of each model size (lowest final loss per N), and
L(C) = (C_c / C)^α_C along the compute-efficient frontier (the best run of each budget, kept when its
final loss is lower than every budget's of smaller C). Each is fitted twice: as Kaplan wrote it, and with an irreducible term,
L = E + (x_c / x)^α, the form Hoffmann et al. (2022) and later work use.

Notable choices: fits minimise squared error in log L (scipy.optimize.least_squares, trust-region
reflective with bounds E ∈ [0, min L), α ∈ (0, 5]); the pure power law starts from its exact log-log
regression, the irreducible form from several E starts (fractions of min L), each with α and x_c from the
regression of log(L − E) on log x; the lowest cost wins. A result names a parameter that ends on a bound.
C here is the table's C = 6·N·D, not Kaplan's 6·N_non-embedding·D in PF-days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from analysis.isoflop import assign_budgets, prepare_runs
from analysis.replicates import cell_means

ALPHA_MAX = 5.0
E_START_FRACTIONS = (0.0, 0.3, 0.6, 0.8, 0.95)


@dataclass(frozen=True)
class KaplanFit:
    """L(x) = E + (x_c / x)^alpha fitted to points (x, loss); E = 0 when `irreducible` is False.

    variable: "N" (parameters) or "C" (FLOPs). alpha_se: standard error from the Jacobian at the optimum.
    x_c is kept as its logarithm: with a flat trend (α → 0) it runs past any float.
    """

    variable: str
    irreducible: bool
    E: float
    log_x_c: float
    alpha: float
    alpha_se: float
    x: np.ndarray
    loss: np.ndarray
    run_ids: tuple[str, ...]
    success: bool
    message: str

    @property
    def x_c(self) -> float:
        return math.inf if self.log_x_c >= 700 else math.exp(self.log_x_c)  # NaN stays NaN

    def predict(self, x) -> np.ndarray:
        """Loss (nats/token) at x: E + exp(α·(log x_c − log x))."""
        return self.E + np.exp(self.alpha * (self.log_x_c - np.log(np.asarray(x, dtype=float))))


@dataclass(frozen=True)
class KaplanFits:
    """The four single-variable fits: L(N) and L(C), each without and with the irreducible term."""

    loss_vs_n: KaplanFit
    loss_vs_n_irreducible: KaplanFit
    loss_vs_c: KaplanFit
    loss_vs_c_irreducible: KaplanFit

    def all(self) -> tuple[KaplanFit, ...]:
        return (self.loss_vs_n, self.loss_vs_n_irreducible, self.loss_vs_c, self.loss_vs_c_irreducible)


def best_per_size(runs: pd.DataFrame) -> pd.DataFrame:
    """The run with the lowest final loss at each distinct N, sorted by N."""
    best = runs.loc[runs.groupby("N")["loss"].idxmin()]
    return best.sort_values("N")


def compute_frontier(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs on the lower envelope of final loss against C: the best run of each budget (runs of one
    IsoFLOP budget differ in C only by rounding), kept if it beats every budget of smaller C."""
    best = runs.loc[runs.groupby(assign_budgets(runs, fill_missing=True))["loss"].idxmin()].sort_values("C")
    running_min = best["loss"].cummin().shift(1, fill_value=np.inf)
    return best[best["loss"] < running_min]


def fit_single_power_law(x, loss, *, irreducible: bool, variable: str, run_ids=()) -> KaplanFit:
    """Fit L = (x_c/x)^α (or E + (x_c/x)^α) in log space. Too few points gives success=False, not an error."""
    x, loss = np.asarray(x, dtype=float), np.asarray(loss, dtype=float)
    run_ids = tuple(str(r) for r in run_ids)
    n_params = 3 if irreducible else 2
    if len(x) < n_params + 1 or len(np.unique(x)) < n_params + 1:
        return KaplanFit(variable, irreducible, math.nan, math.nan, math.nan, math.nan, x, loss, run_ids, False,
                         f"need ≥ {n_params + 1} distinct {variable} values for {n_params} parameters, got {len(np.unique(x))}")
    if np.any(x <= 0) or np.any(loss <= 0):
        raise ValueError(f"fit_single_power_law: {variable} and loss must be positive")
    log_x, log_loss = np.log(x), np.log(loss)

    def residuals(theta):
        e, log_xc, alpha = theta
        return np.log(e + np.exp(alpha * (log_xc - log_x))) - log_loss

    e_max = float(loss.min()) * (1 - 1e-6)
    best = None
    for fraction in E_START_FRACTIONS if irreducible else (0.0,):
        e0 = fraction * float(loss.min())
        slope, intercept = np.polyfit(log_x, np.log(loss - e0), 1)
        alpha0 = float(np.clip(-slope, 1e-3, ALPHA_MAX))
        start = np.array([e0, intercept / alpha0, alpha0])
        if irreducible:
            bounds = ([0.0, -np.inf, 1e-6], [e_max, np.inf, ALPHA_MAX])
            result = least_squares(residuals, start, bounds=bounds, method="trf", x_scale="jac")
        else:  # E fixed at 0: the two-parameter problem on (log x_c, α)
            result = least_squares(lambda t: residuals((0.0, t[0], t[1])), start[1:],
                                   bounds=([-np.inf, 1e-6], [np.inf, ALPHA_MAX]), method="trf")
        if best is None or result.cost < best.cost:
            best = result
    theta = best.x if irreducible else np.r_[0.0, best.x]
    e, log_xc, alpha = (float(t) for t in theta)
    alpha_se = _alpha_standard_error(best, len(x))
    notes = []
    if irreducible and e <= 1e-9 * loss.min():
        notes.append("E on its lower bound 0")
    if irreducible and e >= e_max * (1 - 1e-6):
        notes.append("E on its upper bound min(loss)")
    if alpha >= ALPHA_MAX * (1 - 1e-6) or alpha <= 2e-6:
        notes.append(f"alpha on a bound ({alpha:.3g})")
    if log_xc >= 700:
        notes.append(f"x_c = e^{log_xc:.4g} overflows: no trend in the data")
    message = best.message + ("; " + "; ".join(notes) if notes else "")
    return KaplanFit(variable, irreducible, e, log_xc, alpha, alpha_se, x, loss, run_ids,
                     bool(best.success) and not notes, message)


def _alpha_standard_error(result, n_points: int) -> float:
    """σ·sqrt((JᵀJ)⁻¹) for α, α being the last parameter; NaN without residual degrees of freedom."""
    jac, dof = result.jac, n_points - result.x.size
    if dof <= 0:
        return math.nan
    try:
        cov = np.linalg.inv(jac.T @ jac) * (2 * result.cost / dof)
    except np.linalg.LinAlgError:
        return math.nan
    return float(math.sqrt(max(cov[-1, -1], 0.0)))


def fit_kaplan(runs: pd.DataFrame) -> KaplanFits:
    """L(N) over the best run per size and L(C) over the compute frontier, each with and without E. Seed
    replicates enter as their cell's mean loss: a best run chosen among replicates is the luckiest seed."""
    runs = prepare_runs(runs, ("N", "C", "loss"), what="Kaplan fits")
    ids = "run_id" if "run_id" in runs.columns else None
    cells = cell_means(runs)
    by_size, frontier = best_per_size(cells), compute_frontier(cells)

    def fit(points, column, irreducible):
        run_ids = points[ids] if ids else points.index
        return fit_single_power_law(points[column], points["loss"], irreducible=irreducible, variable=column,
                                    run_ids=run_ids)

    return KaplanFits(fit(by_size, "N", False), fit(by_size, "N", True), fit(frontier, "C", False), fit(frontier, "C", True))
