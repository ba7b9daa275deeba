"""Uncertainty of Approach 3 by bootstrapping over runs, and generic resampling helpers.

Each replicate resamples the runs with replacement (Efron & Tibshirani 1993; Besiroglu et al. 2024 §4
bootstrap the Chinchilla fit the same way), within each IsoFLOP budget as many runs as it has (stratified:
the budgets are the design's strata, fixed by the researcher; Davison & Hinkley 1997, §3.7; `budget_strata`),
and refits L(N, D) = E + A/N^α + B/D^β on the same summed Huber objective, by L-BFGS from two starts: the
full-sample optimum and the replicate's own variable-projection optimum (`analysis.varpro`: a search over
(α, β) with the linear parameters solved exactly), so a replicate whose optimum moved to another basin is
followed there rather than pinned to the full-sample answer. The earlier scheme, each replicate from its 5
best points of the 4,500-point grid plus the full-sample optimum, is kept as `search="grid"`;
benchmarks/fit_speed.py and the tests compare the two on the same resamples (docs/methods.md gives the
figures). A new run's prediction interval multiplies each replicate's L(N, D) by a resampled residual, scaled
for the parameters the fit spent (`ParametricFit.noise_residuals`).

How 1,000 replicates stay fast:
- a resample is a vector of multiplicities (how often each run was drawn); the summed objective and
  every moment of the profile's linear solve are linear in them, so one matrix product with the
  (replicates × runs) count matrix profiles every replicate (or, for "grid", re-ranks the whole grid);
- the L-BFGS runs of all replicates go through `lbfgs.minimize_batch` together, each replicate's
  objective over the runs it drew only (`_drawn`: ~1/e of the runs are not drawn).
Percentile intervals (default 95%) use the converged replicates only; how many converged is reported
next to every interval (`Interval.n_finite`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import varpro
from analysis.compute_per_token import ComputePerToken, split_compute
from analysis.isoflop import assign_budgets
from analysis.lbfgs import minimize_batch
from analysis.parametric import (
    DEGENERATE, HUBER_DELTA, PARAM_NAMES, LogData, ParametricFit, best_starts, bounds_for, centre, check_weights,
    degenerate_fits_better, fit_parametric_arrays, flag_degenerate, from_centred, huber_objective, huber_terms,
    log_data, prepare_grid, to_centred, usable_with_weights
)
from analysis.powerlaw import Interval, percentile_interval, replicates_reliable

DERIVED = ("a", "b", "G")


def bootstrap_counts(n_rows: int, n_resamples: int, seed: int, *, groups=None, strata=None) -> np.ndarray:
    """How often each row is drawn in each resample, shape (n_resamples, n_rows), rows summing to n_rows
    (ungrouped). With `groups` (one label per row), whole groups are drawn with replacement, as many as
    there are groups, and every row counts its group's draws: a grouped (block) bootstrap, e.g. by budget.
    With `strata` (one label per row, each group inside one stratum), the draws are made within each stratum,
    as many as it has units (rows, or groups): a stratified bootstrap, which keeps the design's strata."""
    if strata is None:
        return _unit_counts(n_rows, n_resamples, np.random.default_rng(seed), groups)
    labels = np.asarray(strata)
    if labels.shape != (n_rows,):
        raise ValueError(f"strata must have one label per row ({n_rows}), got shape {labels.shape}")
    if groups is not None:
        _, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
        if any(len(set(labels[group_of_row.ravel() == g])) > 1 for g in range(group_of_row.max() + 1)):
            raise ValueError("groups must each lie inside one stratum")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_resamples, n_rows), dtype=np.int64)
    for label in _unique(labels):
        rows = np.flatnonzero(labels == label)
        inner = None if groups is None else np.asarray(groups)[rows]
        counts[:, rows] = _unit_counts(rows.size, n_resamples, rng, inner)
    return counts


def _unique(labels: np.ndarray) -> list:
    """The distinct labels in order of first appearance (the draw order does not depend on how they sort)."""
    _, first = np.unique(labels, return_index=True)
    return [labels[i] for i in np.sort(first)]


def _unit_counts(n_rows: int, n_resamples: int, rng, groups) -> np.ndarray:
    """Ungrouped or grouped counts (`bootstrap_counts`) from `rng`."""
    if groups is None:
        if n_rows < 1 or n_resamples < 1:
            raise ValueError(f"n_rows and n_resamples must be ≥ 1, got {n_rows} and {n_resamples}")
        idx = rng.integers(0, n_rows, size=(n_resamples, n_rows))
        counts = np.zeros((n_resamples, n_rows), dtype=np.int64)
        np.add.at(counts, (np.arange(n_resamples)[:, None], idx), 1)
        return counts
    labels = np.asarray(groups)
    if labels.shape != (n_rows,):
        raise ValueError(f"groups must have one label per row ({n_rows}), got shape {labels.shape}")
    _, group_of_row = np.unique(labels, return_inverse=True)
    group_of_row = group_of_row.reshape(-1)
    n_groups = int(group_of_row.max()) + 1
    return _unit_counts(n_groups, n_resamples, rng, None)[:, group_of_row]


def _columns(samples: np.ndarray) -> dict[str, np.ndarray]:
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 2 or samples.shape[1] != 5:
        raise ValueError(f"samples must have shape (n, 5) with columns {PARAM_NAMES}, got {samples.shape}")
    return {name: samples[:, i] for i, name in enumerate(PARAM_NAMES)}


def loss_samples(samples: np.ndarray, N, D) -> np.ndarray:
    """L(N, D) = E + A/N^α + B/D^β (in log space) for each row (E, A, B, alpha, beta) of `samples`:
    shape (n_samples, *broadcast(N, D).shape)."""
    p = _columns(samples)
    n, d = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    shape = (-1,) + (1,) * np.broadcast(n, d).ndim
    col = {k: v.reshape(shape) for k, v in p.items()}
    with np.errstate(divide="ignore"):
        log_e = np.log(col["E"])
    terms = np.logaddexp(np.log(col["A"]) - col["alpha"] * np.log(n), np.log(col["B"]) - col["beta"] * np.log(d))
    return np.exp(np.logaddexp(log_e, terms))


def optimum_samples(samples: np.ndarray, C, per_token: ComputePerToken | None = None) -> dict[str, np.ndarray]:
    """Per row of `samples`: N_opt, D_opt (`parametric.compute_optimal`: its closed form under C = 6·N·D, a
    search under C = f(N)·D) and the loss there, at compute C. C broadcasts against the replicates: a column
    of m budgets gives (m, replicates) arrays, every budget in one evaluation."""
    p = _columns(samples)
    C = np.asarray(C, dtype=float)
    if per_token is not None and not per_token.is_6n:
        with np.errstate(divide="ignore", invalid="ignore"):
            n_opt, d_opt = split_compute(np.log(p["A"]), p["alpha"], np.log(p["B"]), p["beta"], C, per_token)
        return {"n_opt": n_opt, "d_opt": d_opt, "loss": _loss_rows(p, n_opt, d_opt)}
    s = p["alpha"] + p["beta"]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_g = (np.log(p["alpha"] * p["A"]) - np.log(p["beta"] * p["B"])) / s
    log_c6 = np.log(C / 6.0)
    # a degenerate replicate (α or β at 0) has no finite optimum: its values come out inf or NaN and the
    # percentile intervals count only the finite ones (they report how many)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n_opt = np.exp(log_g + p["beta"] / s * log_c6)
        d_opt = np.exp(-log_g + p["alpha"] / s * log_c6)
        loss = _loss_rows(p, n_opt, d_opt)
    return {"n_opt": n_opt, "d_opt": d_opt, "loss": loss}


def _loss_rows(p: dict, n_opt: np.ndarray, d_opt: np.ndarray) -> np.ndarray:
    """L(N, D) of each replicate at its own (N, D)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.exp(np.logaddexp(np.log(p["E"]), np.logaddexp(np.log(p["A"]) - p["alpha"] * np.log(n_opt),
                                                               np.log(p["B"]) - p["beta"] * np.log(d_opt))))


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap of Approach 3. `samples` (n_resamples, 5) holds E, A, B, alpha, beta per replicate
    (NaN where the replicate did not converge); `intervals` the percentile interval of each parameter and
    of a, b, G over the converged replicates; `fit` the full-sample fit."""

    fit: ParametricFit
    samples: np.ndarray
    converged: np.ndarray
    n_resamples: int
    n_converged: int
    n_on_bound: int
    seed: int
    level: float
    intervals: dict[str, Interval]
    message: str

    def loss_samples(self, N, D) -> np.ndarray:
        """Predicted L(N, D) per converged replicate (see `loss_samples`)."""
        return loss_samples(self.samples[self.converged], N, D)

    @property
    def interval_reliable(self) -> bool:
        """Whether the intervals mean their level: the full-sample fit succeeded (not on a bound, identified)
        and most replicates converged to an interior optimum (`powerlaw.replicates_reliable`)."""
        return self.fit.success and replicates_reliable(self.n_converged - self.n_on_bound, self.n_resamples)

    def prediction_interval(self, N: float, D: float, *, seed: int = 0) -> Interval:
        """Where one new run (N, D) should land: each replicate's L(N, D) times exp(−r), r a residual
        (log L̂ − log L) of the full-sample fit drawn at random, so run-to-run noise is carried too
        (`ParametricFit.noise_residuals`: scaled for the parameters the fit spent)."""
        replicates = np.asarray(self.loss_samples(float(N), float(D)), dtype=float).ravel()
        noise = np.exp(-np.random.default_rng(seed).choice(self.fit.noise_residuals, size=replicates.size))
        return percentile_interval(replicates * noise, self.level)

    def loss_interval(self, N: float, D: float) -> Interval:
        """Percentile interval of the predicted loss of one run (N, D)."""
        return percentile_interval(self.loss_samples(float(N), float(D)), self.level)

    def compute_optimal_samples(self, C, per_token: ComputePerToken | None = None) -> dict[str, np.ndarray]:
        """N_opt, D_opt and the loss there, at compute C, per converged replicate (see `optimum_samples`)."""
        return optimum_samples(self.samples[self.converged], C, per_token)

    def compute_optimal_intervals(self, C: float, per_token: ComputePerToken | None = None) -> dict[str, Interval]:
        """Percentile intervals of N_opt, D_opt and the loss at the optimum, at compute C."""
        return {k: percentile_interval(v, self.level) for k, v in self.compute_optimal_samples(C, per_token).items()}


SEARCHES = ("varpro", "grid")


def _grid_starts(cw, data, lower, best_c, *, grid_c, terms, n_starts: int, fix_E) -> np.ndarray:
    """(r, n_starts + 1, 5): each replicate's best grid points on its own data, then the full-sample optimum."""
    chosen = grid_c[best_starts(cw @ terms.T, n_starts)]
    extra = np.broadcast_to(best_c, (cw.shape[0], 1, 5))
    return np.concatenate([chosen, extra], axis=1)


def _varpro_starts(cw, data, lower, best_c, *, grid_c, terms, n_starts: int, fix_E) -> np.ndarray:
    """(r, 2, 5): each replicate's variable-projection optimum on its own data, then the full-sample optimum."""
    prof = varpro.profile(data.log_n, data.log_d, data.log_loss, cw, alphas=varpro.COARSE_EXPONENTS,
                          betas=varpro.COARSE_EXPONENTS, fix_E=fix_E)
    cells = np.argmin(prof.objective.reshape(len(cw), -1), axis=1)
    chosen = varpro.starts_from(prof, np.arange(len(cw)), cells, lower)
    return np.stack([chosen, np.broadcast_to(best_c, chosen.shape)], axis=1)


def bootstrap_parametric_arrays(N, D, loss, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95,
                                weights=None, fix_E: float | None = None, delta: float = HUBER_DELTA,
                                n_starts: int = 5, groups=None, strata=None, chunk: int = 1000, search: str = "varpro",
                                fit: ParametricFit | None = None) -> BootstrapResult:
    """Bootstrap Approach 3 over runs: `n_resamples` resamples (fixed `seed`), each refitted by L-BFGS on
    its own data from the full-sample optimum and from the starts `search` finds on the replicate's data:
    "varpro", its variable-projection optimum (`analysis.varpro`, coarse exponent grid); "grid", the
    `n_starts` best points of the 4,500-point Chinchilla grid (the earlier scheme, kept for comparison).

    groups: optional per-run labels for a grouped bootstrap (`bootstrap_counts`); strata: optional per-run labels
    to draw within (`bootstrap_counts`; `bootstrap_parametric` passes the budgets). weights multiply the
    resampling counts. `fit`: the full-sample fit if already computed (else it is fitted here). `chunk`
    replicates are optimised together (memory, not results, depends on it).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_starts < 1 or chunk < 1:
        raise ValueError(f"n_starts and chunk must be ≥ 1, got {n_starts} and {chunk}")
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    data = log_data(N, D, loss)
    n = data.log_n.size
    w = check_weights(weights, n)
    if fit is None:
        fit = fit_parametric_arrays(N, D, loss, weights=w, fix_E=fix_E, delta=delta)
    lower, upper = bounds_for(fix_E)
    centred, m_n, m_d = centre(data)
    counts = bootstrap_counts(n, n_resamples, seed, groups=groups, strata=strata) * w[None, :]
    grid_c = terms = None
    if search == "grid":
        grid_c = to_centred(prepare_grid(None, fix_E), m_n, m_d)
        terms = huber_terms(grid_c, centred, delta)  # (grid, runs), independent of the resample
    find_starts = _varpro_starts if search == "varpro" else _grid_starts
    best_c = to_centred(fit.x, m_n, m_d)
    x = np.full((n_resamples, 5), np.nan)
    for lo in range(0, n_resamples, chunk):
        cw = counts[lo : lo + chunk]
        starts = find_starts(cw, centred, lower, best_c, grid_c=grid_c, terms=terms, n_starts=n_starts, fix_E=fix_E)
        r, k = starts.shape[:2]
        drawn, drawn_w = _drawn(cw)
        drawn_data = LogData(*(v[drawn] for v in (centred.log_n, centred.log_d, centred.log_loss)))
        batch = minimize_batch(lambda y, rows: huber_objective(y, drawn_data, drawn_w, delta, rows=rows // k),
                               starts.reshape(r * k, 5), lower, upper, ftol=1e-10)
        batch = flag_degenerate(batch, centred, w)
        fun = np.where(batch.converged, batch.fun, np.inf).reshape(r, k)
        best = np.argmin(fun, axis=1)
        # as for the full sample (parametric's docstring): an end point with a dead term that fits better drops it
        dead = np.where(batch.status == DEGENERATE, batch.fun, np.inf).reshape(r, k).min(axis=1)
        ok = (np.isfinite(fun[np.arange(r), best]) & _identifiable(data, cw)
              & ~degenerate_fits_better(dead, fun[np.arange(r), best]))
        x[lo : lo + r][ok] = from_centred(batch.x.reshape(r, k, 5)[np.arange(r), best], m_n, m_d)[ok]
    return _result(fit, x, lower, upper, seed=seed, level=level)


def _drawn(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample (row of `counts`), the runs it drew and their counts, padded with count 0 to the most any
    resample drew: (R, m) run indices and weights. A resample leaves out ~1/e of the runs (37%), which its
    objective then never evaluates; a padded run's weight 0 adds nothing to it or its gradient."""
    order = np.argsort(counts == 0, axis=1, kind="stable")  # the drawn runs first, in their order
    m = max(1, int(np.max(np.sum(counts > 0, axis=1))))
    drawn = order[:, :m]
    return drawn, np.take_along_axis(counts, drawn, axis=1)


def _result(fit: ParametricFit, x: np.ndarray, lower, upper, *, seed: int, level: float) -> BootstrapResult:
    """The BootstrapResult of replicate end points x (R, 5) in (e, a, b, α, β), NaN rows not converged."""
    converged = np.all(np.isfinite(x), axis=1)
    free = lower != upper
    on_bound = converged & np.any(free & ((x <= lower + 1e-6) | (x >= upper - 1e-6)), axis=1)
    samples = np.column_stack([np.exp(x[:, :3]), x[:, 3:]])
    intervals = _intervals(samples[converged], level, len(x))
    n_conv, n_bound = int(converged.sum()), int(on_bound.sum())
    message = f"{n_conv} of {len(x)} replicates converged"
    if n_bound:
        message += f"; {n_bound} ended with a parameter on its bound (kept)"
    return BootstrapResult(fit=fit, samples=samples, converged=converged, n_resamples=len(x), n_converged=n_conv,
                           n_on_bound=n_bound, seed=seed, level=level, intervals=intervals, message=message)


def _identifiable(data, counts: np.ndarray) -> np.ndarray:
    """Per replicate: ≥ 5 distinct (N, D) points, ≥ 2 distinct N and D among the drawn runs."""
    keys_nd = np.unique(np.column_stack([data.log_n, data.log_d]), axis=0, return_inverse=True)[1].ravel()
    keys_n = np.unique(data.log_n, return_inverse=True)[1].ravel()
    keys_d = np.unique(data.log_d, return_inverse=True)[1].ravel()
    drawn = counts > 0

    def distinct(keys):
        hit = np.zeros((counts.shape[0], int(keys.max()) + 1), dtype=bool)
        rows, cols = np.nonzero(drawn)
        hit[rows, keys[cols]] = True
        return hit.sum(axis=1)

    return (distinct(keys_nd) >= 5) & (distinct(keys_n) >= 2) & (distinct(keys_d) >= 2)


def _intervals(ok: np.ndarray, level: float, n_total: int) -> dict[str, Interval]:
    values = {name: ok[:, i] for i, name in enumerate(PARAM_NAMES)}
    alpha, beta = values["alpha"], values["beta"]
    with np.errstate(divide="ignore", invalid="ignore"):
        values["a"] = beta / (alpha + beta)
        values["b"] = alpha / (alpha + beta)
        values["G"] = np.exp((np.log(alpha * values["A"]) - np.log(beta * values["B"])) / (alpha + beta))
    out = {}
    for name, v in values.items():
        # pad with NaN for the failed replicates so n_total counts every resample
        padded = np.concatenate([v, np.full(n_total - v.size, np.nan)])
        out[name] = percentile_interval(padded, level)
    return out


def bootstrap_parametric(runs: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95,
                         weights=None, fix_E: float | None = None, delta: float = HUBER_DELTA, n_starts: int = 5,
                         group_col: str | None = None, stratify: bool = True, search: str = "varpro",
                         fit: ParametricFit | None = None) -> BootstrapResult:
    """`bootstrap_parametric_arrays` on a results table (N, D, loss; unusable rows excluded with a warning).
    group_col: resample whole groups of runs (e.g. seed replicates' cells) instead of single runs. stratify: draw
    within each IsoFLOP budget (`budget_strata`); False draws from the whole table, the scheme before
    (benchmarks/approach3_resampling.py compares them; docs/methods.md)."""
    if group_col is not None and group_col not in runs.columns:
        raise ValueError(f"runs: no group column {group_col!r}")
    kept, w = usable_with_weights(runs, weights, what="bootstrap")
    groups = None if group_col is None else kept[group_col].to_numpy()
    strata = budget_strata(kept, groups) if stratify else None
    return bootstrap_parametric_arrays(kept["N"], kept["D"], kept["loss"], n_resamples=n_resamples, seed=seed,
                                       level=level, weights=w, fix_E=fix_E, delta=delta, n_starts=n_starts,
                                       groups=groups, strata=strata, search=search, fit=fit)


# A stratum of 1 unit is always drawn whole, of 2 nearly so: such budgets would add no resampling spread, so they
# are pooled (3, the fewest sizes a budget's minimum is fitted from).
MIN_STRATUM_UNITS = 3


def budget_strata(runs: pd.DataFrame, groups=None) -> np.ndarray:
    """Per run, its IsoFLOP budget as a stratum label (`isoflop.assign_budgets`: the `budget` column, else clusters
    of C, C = 6·N·D where no C is given), budgets with fewer than `MIN_STRATUM_UNITS` units (runs, or groups)
    pooled into one stratum labelled -1. A table that is not an IsoFLOP sweep (every C its own) is then one
    stratum: the bootstrap over the whole table."""
    budget = assign_budgets(runs, fill_missing=True).to_numpy(float)
    units = np.arange(len(runs)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    labels = np.where(np.isfinite(budget), budget, -1.0)
    for label in np.unique(labels):
        members = labels == label
        if np.unique(units[members]).size < MIN_STRATUM_UNITS:
            labels[members] = -1.0
    return labels
