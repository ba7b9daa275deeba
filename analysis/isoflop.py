"""Approach 2 of Hoffmann et al. (2022): IsoFLOP profiles.

For each compute budget C the runs that spent C FLOPs at different model sizes N trace a valley of
final loss against log N. We fit a parabola L ≈ c0 + c1·u + c2·u² (u = log N − its mean) to the bottom of
each valley: the lowest run and up to 2 sizes on each side of it (`profile_window`; a quadratic is the
valley's expansion at its minimum, and published sweeps sample far up its walls); its vertex is that
budget's compute-optimal size N*(C), and D*(C) = C / f(N*), f the table's compute per token (6·N under
C = 6·N·D; analysis/compute_per_token.py). Power laws N_opt = k·C^a and D_opt = k'·C^b across budgets follow
(b = 1 − a when f = 6·N, as D* = C/(6·N*) at every budget). The module also holds the helpers every fit of the
results table shares: `prepare_table` (clean, check columns, fill C; `prepare_runs` warns its note) and
`assign_budgets` (which IsoFLOP budget).

Notable choices:
- Robust to one outlier per budget by externally studentized residuals: the deleted (leave-one-out)
  residual of point i is r_i / (1 − h_ii) for least squares, with standard deviation σ / sqrt(1 − h_ii);
  the point with the largest |r_i| / (σ·sqrt(1 − h_ii)) is dropped, and the parabola refitted, when that
  ratio exceeds `outlier_threshold` (default 5) and the budget has ≥ 5 points, so ≥ 4 remain.
  σ is pooled over all budgets' windows (1.4826·median of |r_i / sqrt(1 − h_ii)|, a MAD that one bad
  point per budget cannot inflate): a single window has too few residual degrees of freedom alone.
  Where every window is 3 sizes (each lowest run one size from an end of its profile: a sweep centred off
  the optimum), no window leaves a residual, and σ is pooled the same way over the quadratics through each
  budget's whole profile, edge budgets included (the noise does not need a bracketed minimum). That is an
  upper estimate: the walls' departure from a parabola counts as noise, so the intervals err wide, and the
  fit's notes say so. The alternative, no interval at all, left such sweeps with none.
- N* interval by the delta method: the vertex u* = −c1 / (2·c2) has gradient (0, −1/(2c2), c1/(2c2²)) in
  the coefficients, whose covariance is σ²(XᵀX)⁻¹ with the pooled σ; the interval is symmetric in log N.
- Exclusion: a budget enters the power law only if its lowest observed loss is at an interior size (the
  sampled sizes bracket the minimum), its parabola opens upward (c2 > 0) and its vertex lies inside the
  window's range of N. Otherwise it is kept in the result with its status and named in `message`.
- No law in noise: `success` is False when the profiles are no better than a flat loss per budget (a pooled
  F-test at 1%, `analysis.significance`).
- Power-law intervals by a parametric bootstrap: each budget's log N* is redrawn from its delta-method
  normal and the power law refitted, `n_bootstrap` times; percentile intervals. This carries the
  per-budget uncertainty; where the budgets' log N* scatter about the law more than it explains, the draws are
  widened by `lack_of_fit` (`analysis.lack_of_fit`), the law's misfit.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
# scipy.special, not scipy.stats: the same values without scipy.stats' import (~1 s of `scaling fit` under load)
from scipy.special import ndtri

from analysis.compute_per_token import SIX_N, ComputePerToken, from_runs
from analysis.lack_of_fit import lack_of_fit_factor
from analysis.powerlaw import AllocationLaw, PowerLawFit, fit_power_law, fit_power_law_rows, percentile_interval
from analysis.significance import SignificanceTest, profiles_against_constant
from analysis.table import CleanTable, clean_table, compute_column, warn_excluded

# 1.4826·MAD estimates a normal's standard deviation (the MAD of N(0, 1) is Φ⁻¹(3/4) ≈ 0.6745).
MAD_TO_SIGMA = 1.4826
STATUS_OK = "ok"
# A budget's parabola sees its lowest run and at most 2 runs on each side: 5 points, the fewest that leave
# residual degrees of freedom (2) for the noise scale and the outlier test; a quadratic is the expansion of
# the profile at its minimum, so runs far from it (losses of 8 at a budget whose best is 4) must not bend it.
# The window is symmetric in count, so a side sampled more densely does not tilt the vertex.
WINDOW_HALF_WIDTH = 2


@dataclass(frozen=True)
class Parabola:
    """y = c0 + c1·u + c2·u² with u = x − x_center, fitted by least squares (one outlier possibly dropped).

    `vertex` is the stationary point in x (a minimum only when c2 > 0); `vertex_se` its delta-method
    standard error under noise `noise_scale`. `dropped` is the index (into the input) of the removed
    outlier, or None. `residuals` are y − fit over the points kept.
    """

    x_center: float
    c0: float
    c1: float
    c2: float
    vertex: float
    vertex_se: float
    noise_scale: float
    n_points: int
    dropped: int | None
    residuals: np.ndarray

    def __call__(self, x) -> np.ndarray:
        u = np.asarray(x, dtype=float) - self.x_center
        return self.c0 + self.c1 * u + self.c2 * u * u

    @property
    def minimum(self) -> float:
        """The fitted value at the vertex."""
        return float(self(self.vertex)) if math.isfinite(self.vertex) else math.nan


def _least_squares(u: np.ndarray, y: np.ndarray):
    """Quadratic least squares in u: coefficients, residuals, hat-matrix diagonal, (XᵀX)⁻¹."""
    design = np.column_stack([np.ones_like(u), u, u * u])
    q, r = np.linalg.qr(design)
    coef = np.linalg.solve(r, q.T @ y)
    leverage = np.sum(q * q, axis=1)
    r_inv = np.linalg.inv(r)
    return coef, y - design @ coef, leverage, r_inv @ r_inv.T


def leave_one_out_scales(x, y) -> np.ndarray:
    """r_i / sqrt(1 − h_ii) of a quadratic least-squares fit: each has standard deviation σ under the model.

    Points with leverage ≈ 1 (an exact fit through them) carry no information and are omitted.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(np.unique(x)) < 3 or len(x) <= 3:
        return np.empty(0)
    _, resid, leverage, _ = _least_squares(x - x.mean(), y)
    keep = leverage < 1 - 1e-9
    return resid[keep] / np.sqrt(1 - leverage[keep])


def pooled_noise_scale(groups) -> float:
    """Robust σ pooled over several (x, y) groups: 1.4826·median|r_i / sqrt(1 − h_ii)| (NaN if none)."""
    scaled = [leave_one_out_scales(x, y) for x, y in groups]
    scaled = np.concatenate(scaled) if scaled else np.empty(0)
    if scaled.size == 0:
        return math.nan
    return float(MAD_TO_SIGMA * np.median(np.abs(scaled)))


def residual_dof(groups) -> int:
    """The residual degrees of freedom a pooled σ rests on: n − 3 for each group's quadratic (≥ 4 points)."""
    return int(sum(max(len(x) - 3, 0) for x, _ in groups if len(np.unique(x)) >= 3))


def fit_parabola(x, y, *, noise_scale: float | None = None, outlier_threshold: float | None = 5.0) -> Parabola:
    """Fit y ≈ c0 + c1·u + c2·u² (u = x − mean x), dropping one outlier if its studentized residual is large.

    noise_scale: σ of y's noise (pooled over groups by the caller); None estimates it from this fit
    (robust MAD when ≥ 6 points, else the residual standard error). outlier_threshold: None disables
    the outlier test; it runs only with ≥ 5 points so that ≥ 4 remain for 3 coefficients.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"fit_parabola: x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("fit_parabola: x and y must be finite")
    if len(np.unique(x)) < 3:
        raise ValueError(f"fit_parabola: need ≥ 3 distinct x values, got {len(np.unique(x))}")
    center = float(x.mean())
    coef, resid, leverage, xtx_inv = _least_squares(x - center, y)
    sigma = noise_scale
    if sigma is None or not math.isfinite(sigma):
        sigma = _own_noise_scale(x, y, resid)
    dropped = None
    if outlier_threshold is not None and len(x) >= 5 and math.isfinite(sigma):
        spread = max(sigma, 1e-12) * np.sqrt(np.clip(1 - leverage, 1e-12, None))
        studentized = np.abs(resid) / spread
        worst = int(np.argmax(studentized))
        keep = np.arange(len(x)) != worst
        if studentized[worst] > outlier_threshold and len(np.unique(x[keep])) >= 3:
            dropped = worst
            center = float(x[keep].mean())
            coef, resid, leverage, xtx_inv = _least_squares(x[keep] - center, y[keep])
            if noise_scale is None or not math.isfinite(noise_scale):
                sigma = _own_noise_scale(x[keep], y[keep], resid)
    c0, c1, c2 = (float(c) for c in coef)
    vertex_u = -c1 / (2 * c2) if c2 != 0 else math.nan
    gradient = np.array([0.0, -1 / (2 * c2), c1 / (2 * c2 * c2)]) if c2 != 0 else np.full(3, np.nan)
    vertex_se = float(sigma * math.sqrt(max(gradient @ xtx_inv @ gradient, 0.0))) if c2 != 0 else math.nan
    return Parabola(
        x_center=center, c0=c0, c1=c1, c2=c2, vertex=center + vertex_u, vertex_se=vertex_se,
        noise_scale=float(sigma), n_points=len(resid), dropped=dropped, residuals=resid,
    )


def _own_noise_scale(x, y, resid) -> float:
    """σ from one group alone: the robust MAD form with ≥ 6 points, else the residual standard error."""
    if len(x) >= 6:
        return MAD_TO_SIGMA * float(np.median(np.abs(leave_one_out_scales(x, y))))
    if len(x) > 3:
        return float(math.sqrt(np.sum(resid**2) / (len(x) - 3)))
    return math.nan


def prepare_runs(runs: pd.DataFrame, required, *, what: str) -> pd.DataFrame:
    """`prepare_table`'s rows for a fit called by a library user: its note raised as an ExcludedRunsWarning."""
    prepared = prepare_table(runs, required, what=what)
    warn_excluded(prepared.notes, stacklevel=3)
    return prepared.table


def prepare_table(runs: pd.DataFrame, required, *, what: str) -> CleanTable:
    """The usable runs for a fit: `table.clean_table` (a note naming each excluded run), the `required`
    columns checked (ValueError naming them), C = 6·N·D filled where the column is absent."""
    if not isinstance(runs, pd.DataFrame):
        raise TypeError(f"{what}: runs must be a pandas DataFrame, got {type(runs).__name__}")
    missing = [c for c in required if c not in runs.columns and not (c == "C" and {"N", "D"} <= set(runs.columns))]
    if missing:
        raise ValueError(f"runs: missing column(s) {missing} needed for {what}; columns are {list(runs.columns)}")
    cleaned = clean_table(runs, source=what)
    runs = cleaned.table
    if "C" not in runs.columns or runs["C"].isna().any():
        runs = runs.assign(C=compute_column(runs))
    if runs.empty:
        raise ValueError(f"{what}: no usable runs")
    return CleanTable(runs, cleaned.notes)


def assign_budgets(runs: pd.DataFrame, *, tolerance_decades: float = 0.05, fill_missing: bool = False) -> pd.Series:
    """Each run's IsoFLOP budget (FLOPs): the `budget` column where present, else clusters of C (C = 6·N·D
    where the table has no C column).

    Without a usable `budget` column, runs are sorted by log10 C and a new budget starts wherever the
    gap to the previous run exceeds `tolerance_decades` (0.05 ≈ 12%); a cluster's budget is the geometric
    mean of its C. Rows with NaN budget beside rows with one (grid-sweep runs) get NaN, or with
    `fill_missing` their own C clusters.
    """
    if "budget" in runs.columns and runs["budget"].notna().any():
        budget = runs["budget"].astype(float)
        if fill_missing and budget.isna().any():
            budget = budget.fillna(assign_budgets(runs.drop(columns="budget"), tolerance_decades=tolerance_decades))
        return budget
    if "C" not in runs.columns and not {"N", "D"} <= set(runs.columns):
        raise ValueError("runs: need a 'budget' or a 'C' column (or N and D) to group runs into IsoFLOP budgets")
    compute = runs["C"] if "C" in runs.columns else compute_column(runs)  # a table of N, D and loss: C = 6·N·D
    log_c = np.log10(compute.to_numpy(dtype=float))
    order = np.argsort(log_c, kind="stable")
    cluster = np.cumsum(np.r_[0, np.diff(log_c[order]) > tolerance_decades])
    budgets = np.empty(len(runs))
    for label in np.unique(cluster):
        members = order[cluster == label]
        budgets[members] = 10 ** log_c[members].mean()
    return pd.Series(budgets, index=runs.index, name="budget")


@dataclass(frozen=True)
class BudgetProfile:
    """One IsoFLOP budget: its runs, parabola, optimum N* (with interval) and whether it enters the law.

    status: "ok", "too_few" (< 3 distinct N in the window), "edge" (the lowest observed loss is at the smallest
    or largest N: the minimum is not bracketed), "downward" (c2 ≤ 0), or "outside" (vertex outside the window).
    `window` marks the runs around the lowest one that the parabola was fitted to (`profile_window`), `fitted`
    those of them it kept (the window less a dropped outlier); both are boolean masks over `n`.
    """

    budget: float
    run_ids: tuple[str, ...]
    n: np.ndarray
    loss: np.ndarray
    parabola: Parabola | None
    n_opt: float
    n_opt_interval: tuple[float, float]
    d_opt: float
    loss_opt: float
    status: str
    dropped_run_id: str | None
    window: np.ndarray
    fitted: np.ndarray

    @property
    def included(self) -> bool:
        return self.status == STATUS_OK


@dataclass(frozen=True)
class IsoFlopFit(AllocationLaw):
    """Approach 2's result: per-budget profiles and N_opt = k_n·C^a, D_opt = k_d·C^b across included budgets.

    `law_samples` holds the bootstrap's (k_n, a) pairs, shape (n_bootstrap, 2), for prediction intervals.
    """

    profiles: tuple[BudgetProfile, ...]
    n_law: PowerLawFit | None
    d_law: PowerLawFit | None
    a: float
    a_interval: tuple[float, float]
    b: float
    b_interval: tuple[float, float]
    k_n: float
    k_d: float
    law_samples: np.ndarray
    noise_scale: float
    level: float
    success: bool
    message: str
    significance: SignificanceTest | None = None
    lack_of_fit: float = 1.0
    per_token: ComputePerToken = SIX_N  # C = f(N)·D: D* = C / f(N*) (analysis/compute_per_token.py)
    notes: tuple[str, ...] = ()  # what the fit left out (runs, budgets), each a message `fit_isoflop` can warn with
    noise_dof: int = 0  # the residual degrees of freedom `noise_scale` was pooled from (`residual_dof`)

    @property
    def interval_reliable(self) -> bool:
        """Whether N_opt's interval means its level: a successful fit with bootstrap draws (this parametric
        bootstrap drops none: every budget's log N* is redrawn from its delta-method normal)."""
        return self.success and len(self.law_samples) >= 2


def profile_window(n, loss, half_width: int = WINDOW_HALF_WIDTH) -> np.ndarray:
    """The runs a budget's parabola is fitted to, as a boolean mask over its runs: every run at the size of the
    lowest observed loss and at the same number of sizes on each side of it, up to `half_width` (fewer where
    the profile ends), so that the quadratic is centred on the minimum and neither side outweighs the other.
    A lowest loss at the smallest or largest size gives a window of one size (the minimum is not bracketed).
    With several runs at a size (seed replicates) the lowest is the size of the lowest mean loss, not of the
    luckiest single run (analysis/replicates.py)."""
    size, sizes, lowest = _lowest_size(n, loss)
    side = min(half_width, lowest, len(sizes) - 1 - lowest)
    return (size >= sizes[lowest - side]) & (size <= sizes[lowest + side])


def _lowest_size(n, loss) -> tuple[np.ndarray, np.ndarray, int]:
    """(each run's size key, the distinct sizes in order, the index of the size with the lowest mean loss)."""
    # sizes within 0.1% are one size (several runs of one model, or the same model read from two budgets)
    size = np.round(np.log(np.asarray(n, dtype=float)), 3)
    sizes, of_run = np.unique(size, return_inverse=True)
    of_run = of_run.reshape(-1)
    mean = np.bincount(of_run, weights=np.asarray(loss, dtype=float)) / np.bincount(of_run)
    return size, sizes, int(np.argmin(mean))


def _at_edge(n, loss) -> bool:
    """Whether the lowest (mean) loss is at the smallest or largest size (the sizes do not bracket it)."""
    _, sizes, lowest = _lowest_size(n, loss)
    return lowest in (0, len(sizes) - 1)


def _profile(budget: float, group: pd.DataFrame, sigma: float, threshold: float | None, level: float,
             per_token: ComputePerToken) -> BudgetProfile:
    group = group.sort_values("N")
    run_ids = tuple(str(r) for r in group["run_id"]) if "run_id" in group.columns else tuple(str(i) for i in group.index)
    n, loss = group["N"].to_numpy(float), group["loss"].to_numpy(float)
    nan_pair = (math.nan, math.nan)
    window = profile_window(n, loss)
    if len(np.unique(n)) < 3 or len(np.unique(n[window])) < 3:
        status = "edge" if len(np.unique(n)) >= 3 and _at_edge(n, loss) else "too_few"
        return BudgetProfile(budget, run_ids, n, loss, None, math.nan, nan_pair, math.nan, math.nan, status, None,
                             window, np.zeros(len(n), bool))
    parabola = fit_parabola(np.log(n[window]), loss[window], noise_scale=sigma, outlier_threshold=threshold)
    fitted = window.copy()
    if parabola.dropped is not None:
        fitted[np.flatnonzero(window)[parabola.dropped]] = False
    log_n = np.log(n[fitted])
    if _at_edge(n, loss):
        status = "edge"  # the lowest run is the smallest or the largest: the sizes do not bracket the minimum
    elif parabola.c2 <= 0:
        status = "downward"
    elif not log_n.min() <= parabola.vertex <= log_n.max():
        status = "outside"
    else:
        status = STATUS_OK
    half = ndtri(0.5 + level / 2) * parabola.vertex_se
    with np.errstate(over="ignore"):  # a nearly flat profile puts its vertex far away: inf, flagged "outside"
        n_opt = float(np.exp(parabola.vertex)) if math.isfinite(parabola.vertex) else math.nan
        interval = ((float(np.exp(parabola.vertex - half)), float(np.exp(parabola.vertex + half)))
                    if math.isfinite(half) else nan_pair)
    dropped = run_ids[int(np.flatnonzero(window)[parabola.dropped])] if parabola.dropped is not None else None
    return BudgetProfile(
        budget=budget, run_ids=run_ids, n=n, loss=loss, parabola=parabola, n_opt=n_opt, n_opt_interval=interval,
        d_opt=float(per_token.tokens(budget, n_opt)), loss_opt=parabola.minimum, status=status, dropped_run_id=dropped,
        window=window, fitted=fitted,
    )


def fit_isoflop(
    runs: pd.DataFrame,
    *,
    outlier_threshold: float | None = 5.0,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    per_token: ComputePerToken | None = None,
    warn: bool = True,
) -> IsoFlopFit:
    """Approach 2: a parabola in log N per budget, then N_opt = k·C^a and D_opt = C / f(N_opt) ≈ k'·C^b.

    runs: the results table (needs N, loss, and budget or C). Unusable rows are dropped (`prepare_table`),
    runs without a budget beside runs with one too, and budgets excluded from the law are named in `message`;
    each of these is a message in `notes`, raised as a warning as well unless `warn` is False (for callers
    that report the notes themselves: `fit_all`, the backtest, the calibration).
    per_token: f, the compute per token that turns a budget into tokens; None fits it to the runs' C/D.
    Raises ValueError if no budget has ≥ 3 distinct sizes.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be ≥ 0, got {n_bootstrap}")
    prepared = prepare_table(runs, ("N", "D", "loss"), what="IsoFLOP profiles")
    if warn:
        warn_excluded(prepared.notes)
    notes = list(prepared.notes)

    def note(message: str) -> None:
        notes.append(message)
        if warn:
            warnings.warn(message, stacklevel=3)

    runs = prepared.table.assign(budget=assign_budgets(prepared.table))
    no_budget = runs["budget"].isna()
    if no_budget.any():
        note(f"IsoFLOP fit: {int(no_budget.sum())} run(s) without a budget (grid sweep) excluded")
        runs = runs[~no_budget]
    groups = [(float(b), g) for b, g in runs.groupby("budget", sort=True)]
    if not any(g["N"].nunique() >= 3 for _, g in groups):
        raise ValueError("IsoFLOP fit: no budget has ≥ 3 distinct model sizes N; cannot fit a parabola")
    noise_groups = [_windowed(g) for _, g in groups]
    sigma = pooled_noise_scale(noise_groups)
    if not math.isfinite(sigma):  # every window is exactly 3 sizes: take σ from the whole profiles (docstring)
        noise_groups = [_whole(g) for _, g in groups]
        sigma = pooled_noise_scale(noise_groups)
        if math.isfinite(sigma):
            note(f"IsoFLOP fit: noise scale {sigma:.3g} from the whole profiles, as no window of 3 sizes leaves a "
                 "residual: an upper estimate (a profile's departure from a parabola counts as noise)")
    per_token = from_runs(runs) if per_token is None else per_token
    profiles = tuple(_profile(b, g, sigma, outlier_threshold, level, per_token) for b, g in groups)
    excluded = [f"budget {p.budget:.3g}: {p.status}" for p in profiles if not p.included]
    if excluded:
        note("IsoFLOP fit: " + "; ".join(excluded) + " (excluded from the power law)")
    significance = profiles_against_constant((np.log(g["N"].to_numpy(float)), g["loss"].to_numpy(float))
                                             for _, g in groups)
    fit = _fit_laws(profiles, sigma, per_token, n_bootstrap=n_bootstrap, level=level, seed=seed)
    if significance.failed:  # analysis.significance: no law in noise
        return dataclasses.replace(fit, success=False, significance=significance, notes=tuple(notes), message=(
            f"the runs show no significant scaling: the IsoFLOP profiles are no better than a flat loss per budget "
            f"({significance.message}); {fit.message}"))
    return dataclasses.replace(fit, significance=significance, notes=tuple(notes),
                               noise_dof=residual_dof(noise_groups) if math.isfinite(sigma) else 0)


def _windowed(group: pd.DataFrame):
    """(log N, loss) of a budget's window, the points its parabola sees (sorted by N)."""
    log_n, loss = _whole(group)
    window = profile_window(np.exp(log_n), loss)
    return log_n[window], loss[window]


def _whole(group: pd.DataFrame):
    """(log N, loss) of all a budget's runs, sorted by N."""
    group = group.sort_values("N")
    return np.log(group["N"].to_numpy(float)), group["loss"].to_numpy(float)


def _fit_laws(profiles, sigma: float, per_token: ComputePerToken, *, n_bootstrap: int, level: float,
              seed: int) -> IsoFlopFit:
    excluded = [f"budget {p.budget:.3g}: {p.status}" for p in profiles if not p.included]
    notes = excluded + [f"budget {p.budget:.3g}: outlier run {p.dropped_run_id} dropped"
                        for p in profiles if p.dropped_run_id]
    used = [p for p in profiles if p.included]
    nan_pair = (math.nan, math.nan)
    if len(used) < 2:
        message = f"need ≥ 2 budgets with a bracketed minimum, got {len(used)}" + "".join(f"; {n}" for n in notes)
        return IsoFlopFit(profiles, None, None, math.nan, nan_pair, math.nan, nan_pair, math.nan, math.nan,
                          np.empty((0, 2)), sigma, level, False, message, per_token=per_token)
    compute = np.array([p.budget for p in used])
    log_n = np.log([p.n_opt for p in used])
    n_law = fit_power_law(compute, np.exp(log_n))
    d_law = fit_power_law(compute, per_token.tokens(compute, np.exp(log_n)))
    se = np.array([p.parabola.vertex_se for p in used])
    samples = np.empty((0, 2))
    lack_of_fit = lack_of_fit_factor(log_n - np.log(n_law.predict(compute)), se**2, 2, level)
    if n_bootstrap and np.all(np.isfinite(se)):
        rng = np.random.default_rng(seed)
        # the vertices scatter about the law more than their noise explains: widen (analysis.lack_of_fit)
        draws = log_n + lack_of_fit * se * rng.standard_normal((n_bootstrap, len(used)))
        samples = np.column_stack(fit_power_law_rows(compute, np.exp(draws)))
        a_interval = percentile_interval(samples[:, 1], level)
        # D* = C/f(N*) per budget: under f = 6N, b = 1 − a within each draw; else each draw's own D* law
        b_samples = 1 - samples[:, 1] if per_token.is_6n else fit_power_law_rows(
            compute, per_token.tokens(compute, np.exp(draws)))[1]
        b_interval = percentile_interval(b_samples, level)
        if lack_of_fit > 1:
            notes.append(f"intervals widened ×{lack_of_fit:.3g}: the budgets' N* scatter about the law more than "
                         "their noise explains (lack of fit)")
    else:
        a_interval = b_interval = nan_pair
        notes.append("no interval: per-budget N* standard errors unavailable" if n_bootstrap else "no bootstrap")
    message = f"power law over {len(used)} budget(s)" + "".join(f"; {n}" for n in notes)
    return IsoFlopFit(
        profiles=profiles, n_law=n_law, d_law=d_law, a=float(n_law.p), a_interval=a_interval,
        b=float(d_law.p), b_interval=b_interval, k_n=float(n_law.k), k_d=float(d_law.k),
        law_samples=samples, noise_scale=sigma, level=level, success=True, message=message,
        lack_of_fit=lack_of_fit, per_token=per_token,
    )
