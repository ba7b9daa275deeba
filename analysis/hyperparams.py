"""Compute-optimal hyperparameter laws: η_opt = k·C^p and B_opt = k'·C^q (DeepSeek-AI 2024, §3.1).

DeepSeek LLM fitted η_opt = 0.3118·C^−0.1250 and B_opt = 0.2920·C^0.3271 from grids over learning rate
and batch size at small budgets. Here, for a hyperparameter column h (lr or batch_size), a *cell* is a set
of runs that differ only in h: same budget (the `budget` column, else C clustered on a log scale), same N,
and same value of the other hyperparameter. In each cell a parabola of final loss against log h gives the
best value (its vertex); then h_opt = k·C^p across cells, C being the cell's budget.

Notable choices:
- A cell needs ≥ 3 distinct values of h; smaller cells are listed in `skipped` with the reason.
- The parabola drops one outlier (a diverged or broken run) by the studentized test of
  `isoflop.fit_parabola`, with the noise scale pooled over all cells.
- A vertex outside the sampled range is clamped to the nearest sampled value and flagged "clamped"; a
  parabola opening downward falls back to the best observed value, flagged "downward". Flagged cells are
  left out of the law (the grid did not bracket the optimum) unless `include_flagged=True`.
- Intervals by bootstrap over cells (resampled with replacement, law refitted; draws with a single
  budget skipped); percentile intervals for k and p.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.isoflop import Parabola, assign_budgets, fit_parabola, pooled_noise_scale, prepare_table
from analysis.powerlaw import PowerLawFit, fit_power_law, percentile_interval
from analysis.replicates import best_setting_per_cell
from analysis.table import warn_excluded

HYPERPARAMETERS = ("lr", "batch_size")


@dataclass(frozen=True)
class CellOptimum:
    """The best value of a hyperparameter in one cell (fixed budget, N and other hyperparameter).

    status: "ok", "clamped" (vertex outside the sampled values, clamped to the nearest) or "downward".
    """

    compute: float
    n: float
    fixed: float
    values: np.ndarray
    loss: np.ndarray
    run_ids: tuple[str, ...]
    parabola: Parabola
    optimum: float
    status: str


@dataclass(frozen=True)
class HyperparamFit:
    """h_opt = k·C^p over the cells' optima; `skipped` lists (cell, reason) for cells that could not be fitted.

    `law_samples` holds the bootstrap's (k, p) pairs, shape (B, 2).
    """

    column: str
    cells: tuple[CellOptimum, ...]
    skipped: tuple[tuple[str, str], ...]
    law: PowerLawFit | None
    k: float
    p: float
    k_interval: tuple[float, float]
    p_interval: tuple[float, float]
    law_samples: np.ndarray
    level: float
    success: bool
    message: str
    notes: tuple[str, ...] = ()  # the runs left out, each a message `fit_hyperparam_law` can warn with

    def predict(self, compute) -> np.ndarray:
        """h_opt at compute C (FLOPs)."""
        return self.k * np.asarray(compute, dtype=float) ** self.p

    def interval(self, compute: float) -> tuple[float, float]:
        """Percentile interval of h_opt at C over the bootstrap samples (NaNs without samples)."""
        if self.law_samples.size == 0:
            return (math.nan, math.nan)
        return percentile_interval(self.law_samples[:, 0] * float(compute) ** self.law_samples[:, 1], self.level)


def varies(runs: pd.DataFrame, column: str) -> bool:
    """Whether some cell of the table has ≥ 2 distinct values of `column` (a hyperparameter axis exists)."""
    if column not in runs.columns or runs[column].nunique() < 2:
        return False
    return bool((_cells(runs, column).nunique() >= 2).any())


def best_per_cell(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the lowest-loss setting of each (budget, N) over every hyperparameter axis that varies: the
    runs the scaling-law fits should see, as a size trained at a poor learning rate says nothing about N_opt.
    With seed replicates the setting with the lowest mean loss wins and all its replicates are kept."""
    axes = [h for h in HYPERPARAMETERS if varies(runs, h)]
    if not axes:
        return runs
    budget = assign_budgets(runs, fill_missing=True)
    return best_setting_per_cell(runs, axes, [budget.rename("cell_budget"), runs["N"]]).sort_index()


def _cells(runs: pd.DataFrame, column: str):
    """runs[column] grouped by cell: budget (or C cluster), N and the other hyperparameter if present."""
    keys = [assign_budgets(runs, fill_missing=True).rename("cell_budget"), runs["N"]]
    other = [h for h in HYPERPARAMETERS if h != column and h in runs.columns]
    keys += [runs[h].astype(float).fillna(-1.0) for h in other]  # -1: value not recorded
    return runs[column].groupby(keys)


def _cell_optimum(compute, n, fixed, group: pd.DataFrame, column: str, sigma: float, threshold) -> CellOptimum:
    group = group.sort_values(column)
    values, loss = group[column].to_numpy(float), group["loss"].to_numpy(float)
    run_ids = tuple(str(r) for r in group["run_id"]) if "run_id" in group.columns else tuple(map(str, group.index))
    parabola = fit_parabola(np.log(values), loss, noise_scale=sigma, outlier_threshold=threshold)
    low, high = np.log(values.min()), np.log(values.max())
    if parabola.c2 <= 0:
        kept = np.delete(np.arange(len(values)), [] if parabola.dropped is None else [parabola.dropped])
        optimum, status = float(values[kept][np.argmin(loss[kept])]), "downward"
    elif not low <= parabola.vertex <= high:
        optimum, status = float(np.exp(np.clip(parabola.vertex, low, high))), "clamped"
    else:
        optimum, status = float(np.exp(parabola.vertex)), "ok"
    return CellOptimum(compute, n, fixed, values, loss, run_ids, parabola, optimum, status)


def _fittable_cells(runs: pd.DataFrame, column: str):
    """The cells with ≥ 3 distinct values of `column`, as (compute, N, fixed, runs) with fixed the other
    hyperparameter's value (NaN without one); and (cell, reason) for the others."""
    groups, skipped = [], []
    for (compute, n, *rest), index in _cells(runs, column).groups.items():
        group = runs.loc[index]
        fixed = float(rest[0]) if rest else math.nan
        name = f"C={compute:.3g}, N={n:.3g}" + (f", fixed={fixed:.3g}" if rest else "")
        distinct = group[column].nunique()
        if distinct < 3:
            skipped.append((name, f"{distinct} distinct {column} value(s); need ≥ 3"))
        else:
            groups.append((float(compute), float(n), fixed, group))
    return groups, skipped


def _bootstrap_law(compute: np.ndarray, optima: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """(k, p) of the law refitted to cells resampled with replacement; draws of a single budget are skipped."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(compute), len(compute))
        if len(np.unique(compute[pick])) >= 2:
            fit = fit_power_law(compute[pick], optima[pick])
            samples.append((fit.k, fit.p))
    return np.array(samples).reshape(-1, 2)


def fit_hyperparam_law(
    runs: pd.DataFrame,
    column: str = "lr",
    *,
    include_flagged: bool = False,
    outlier_threshold: float | None = 5.0,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    warn: bool = True,
) -> HyperparamFit:
    """Best `column` per cell from a parabola in log `column`, then column_opt = k·C^p with bootstrap intervals.

    The runs left out are named in `notes`, and warned of unless `warn` is False (`fit_all` reports the notes).

    Raises ValueError for a missing column or when no cell has ≥ 3 distinct values of it.
    """
    if column not in HYPERPARAMETERS:
        raise ValueError(f"column must be one of {HYPERPARAMETERS}, got {column!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be ≥ 0, got {n_bootstrap}")
    prepared = prepare_table(runs, (column, "N", "C", "loss"), what=f"the {column} law")
    if warn:
        warn_excluded(prepared.notes)
    runs, excluded = prepared.table, list(prepared.notes)
    bad = ~(pd.to_numeric(runs[column], errors="coerce").astype(float) > 0)
    skipped = []
    if bad.any():
        ids = list(runs.loc[bad, "run_id"]) if "run_id" in runs.columns else list(runs.index[bad])
        skipped.append((f"{int(bad.sum())} run(s)", f"{column} missing or ≤ 0: {ids}"))
        excluded.append(f"{column} law: run(s) {ids} excluded ({column} missing or ≤ 0)")
        if warn:
            warnings.warn(excluded[-1], stacklevel=2)
        runs = runs[~bad]
    groups, too_few = _fittable_cells(runs, column)
    skipped += too_few
    if not groups:
        raise ValueError(f"{column} law: no cell has ≥ 3 distinct {column} values; skipped: {skipped}")
    sigma = pooled_noise_scale((np.log(g[column].to_numpy(float)), g["loss"].to_numpy(float)) for *_, g in groups)
    cells = tuple(_cell_optimum(c, n, f, g, column, sigma, outlier_threshold) for c, n, f, g in groups)
    used = [cell for cell in cells if include_flagged or cell.status == "ok"]
    notes = [f"cell C={c.compute:.3g}, N={c.n:.3g}: {c.status}" + ("" if include_flagged else " (excluded)")
             for c in cells if c.status != "ok"]
    notes += [f"cell C={c.compute:.3g}, N={c.n:.3g}: outlier run {c.run_ids[c.parabola.dropped]} dropped"
              for c in cells if c.parabola.dropped is not None]
    notes += [f"skipped {name}: {reason}" for name, reason in skipped]
    nan_pair = (math.nan, math.nan)
    compute = np.array([c.compute for c in used])
    if len(np.unique(compute)) < 2:
        return HyperparamFit(column, cells, tuple(skipped), None, math.nan, math.nan, nan_pair, nan_pair,
                             np.empty((0, 2)), level, False,
                             "; ".join([f"need usable cells at ≥ 2 budgets, got {len(np.unique(compute))}"] + notes),
                             tuple(excluded))
    optima = np.array([c.optimum for c in used])
    law = fit_power_law(compute, optima)
    samples = _bootstrap_law(compute, optima, n_bootstrap, seed)
    if n_bootstrap and len(samples) < n_bootstrap:
        notes.append(f"{n_bootstrap - len(samples)} bootstrap draw(s) with a single budget skipped")
    k_interval = percentile_interval(samples[:, 0], level) if len(samples) else nan_pair
    p_interval = percentile_interval(samples[:, 1], level) if len(samples) else nan_pair
    message = "; ".join([f"{column}_opt law over {len(used)} cell(s) at {len(np.unique(compute))} budget(s)"] + notes)
    return HyperparamFit(column, cells, tuple(skipped), law, float(law.k), float(law.p), k_interval, p_interval,
                         samples, level, True, message, tuple(excluded))
