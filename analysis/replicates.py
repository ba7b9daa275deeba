"""Seed replicates in the results table: cells, their means, and the noise floor they measure.

A *cell* is one design point: the runs that share N, D, learning rate, batch size, β2 and shape (hence budget),
differing only in their seed (a sweep's `training.seeds`, sweeps/replicates.py). Tables without a `seed`
column are grouped the same way, so two runs of one design point count as replicates wherever they come from.

How the fits use replicates (docs/methods.md, "Seeds"): every replicate is a point, in Approach 3 and in the
IsoFLOP parabolas alike, so the residual noise the intervals rest on includes the measured seed noise; the
choices that pick one cell among several (the lowest point of an IsoFLOP profile, the best learning rate of a
cell) compare cell *means*, since a minimum over single replicates favours the luckiest seed; and bootstraps
over runs resample whole cells (`cell_labels`), because replicates share their cell's misfit of the law.

The noise floor (`noise_floor`) is the pooled within-cell standard deviation of the final loss per budget,
s = sqrt(Σ (L − L̄_cell)² / Σ (k_cell − 1)) over the cells with k ≥ 2 replicates, with Σ (k − 1) degrees of
freedom: differences between runs smaller than s are not resolved by one run each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.isoflop import assign_budgets
from analysis.table import usable_runs

# the columns (where present) that define a design point; a run's seed is deliberately not among them
CELL_COLUMNS = ("N", "D", "lr", "batch_size", "beta2", "n_layers", "d_model", "n_heads")


def cell_labels(runs: pd.DataFrame) -> np.ndarray:
    """An integer label per row, equal for the rows of one cell (CELL_COLUMNS; NaNs match NaNs). The budget is
    not a key of its own: runs of equal N and D spent the same 6·N·D."""
    keys = []
    for col in CELL_COLUMNS:
        if col in runs.columns:
            keys.append(pd.to_numeric(runs[col], errors="coerce").astype(float).fillna(-1.0).to_numpy())
    if not keys:
        return np.zeros(0, dtype=np.int64)
    _, labels = np.unique(np.column_stack(keys), axis=0, return_inverse=True)
    return labels.reshape(-1).astype(np.int64)


def has_replicates(runs: pd.DataFrame) -> bool:
    """Whether some cell of the table holds two or more runs."""
    labels = cell_labels(runs)
    return bool(labels.size) and int(np.bincount(labels).max()) > 1


def cell_means(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the first replicate's columns with `loss` (and `train_loss`, `C`) replaced by the
    cell's mean, plus `replicates` (k) and `loss_sd` (the sample standard deviation, NaN when k = 1)."""
    labels = cell_labels(runs)
    grouped = runs.assign(_cell=labels).groupby("_cell", sort=False)
    first = grouped.head(1).set_index("_cell")
    means = {c: grouped[c].mean() for c in ("loss", "train_loss", "C") if c in runs.columns}
    out = first.assign(**means, replicates=grouped.size(), loss_sd=grouped["loss"].std(ddof=1))
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class BudgetNoise:
    """The seed noise at one budget: `sd` pooled over its `n_cells` cells with ≥ 2 replicates (`n_runs` runs,
    `dof` = n_runs − n_cells degrees of freedom); `relative_sd` = sd / the mean loss of those runs."""

    budget: float
    n_cells: int
    n_runs: int
    dof: int
    sd: float
    relative_sd: float


@dataclass(frozen=True)
class NoiseFloor:
    """Seed standard deviation per budget, and pooled over every budget (`sd`, `relative_sd`, `dof`).

    success is False, with NaNs, when no cell has two replicates (one seed per cell: nothing measured)."""

    budgets: tuple[BudgetNoise, ...]
    sd: float
    relative_sd: float
    dof: int
    success: bool
    message: str


def _pooled(loss: np.ndarray, labels: np.ndarray) -> tuple[int, int, int, float, float]:
    """(cells with k ≥ 2, their runs, dof, pooled sd, sd / mean loss) over the rows given."""
    counts = np.bincount(labels)
    multi = np.isin(labels, np.flatnonzero(counts >= 2))
    if not multi.any():
        return 0, 0, 0, math.nan, math.nan
    loss, labels = loss[multi], labels[multi]
    _, inverse = np.unique(labels, return_inverse=True)
    k = np.bincount(inverse)
    centred = loss - (np.bincount(inverse, weights=loss) / k)[inverse]
    dof = int(k.sum() - k.size)
    sd = math.sqrt(float(np.sum(centred**2)) / dof)
    return int(k.size), int(k.sum()), dof, sd, sd / float(loss.mean())


def noise_floor(runs: pd.DataFrame) -> NoiseFloor:
    """The pooled within-cell standard deviation of the final loss, per budget and overall (module docstring).
    Unusable rows are excluded with an ExcludedRunsWarning, as every fit does."""
    runs = usable_runs(runs, source="noise floor", stacklevel=3)
    if runs.empty:
        return NoiseFloor((), math.nan, math.nan, 0, False, "no usable runs")
    labels = cell_labels(runs)
    loss = runs["loss"].to_numpy(float)
    budget = assign_budgets(runs, fill_missing=True).to_numpy(float)
    rows = []
    for b in np.unique(budget):
        at = budget == b
        n_cells, n_runs, dof, sd, rel = _pooled(loss[at], labels[at])
        if n_cells:
            rows.append(BudgetNoise(float(b), n_cells, n_runs, dof, sd, rel))
    n_cells, n_runs, dof, sd, rel = _pooled(loss, labels)
    if not n_cells:
        return NoiseFloor((), math.nan, math.nan, 0, False, "one run per cell: the seed noise is not measured "
                          "(set training.seeds ≥ 2 in the sweep file to measure it)")
    return NoiseFloor(tuple(rows), sd, rel, dof, True,
                      f"seed sd pooled over {n_cells} cell(s) with replicates ({n_runs} runs, {dof} dof)")


def best_setting_per_cell(runs: pd.DataFrame, axes: list[str], group_keys: list[pd.Series]) -> pd.DataFrame:
    """Of each group (e.g. budget and N), every replicate of the hyperparameter setting (values of `axes`)
    whose mean loss is lowest: a setting is judged by its mean, never by its luckiest seed."""
    setting = [pd.to_numeric(runs[a], errors="coerce").astype(float).fillna(-1.0).rename(f"_{a}") for a in axes]
    mean = runs["loss"].groupby(group_keys + setting).transform("mean")
    best = mean.groupby([k.to_numpy() for k in group_keys]).transform("min")
    return runs[mean.to_numpy() == best.to_numpy()]


def mean_curves(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Training curves (analysis.table.read_curves' long format) averaged over the replicates of each cell of
    `runs`, point by point (replicates share their steps): one curve per cell, under its first run's id. The
    lower envelope of Approach 1 would otherwise follow whichever seed happens to be lowest at each C."""
    cell_of = dict(zip(runs["run_id"].astype(str), cell_labels(runs)))
    curves = curves[curves["run_id"].astype(str).isin(cell_of)]
    cell = curves["run_id"].astype(str).map(cell_of)
    first = curves.groupby(cell)["run_id"].transform("first")
    numeric = [c for c in ("loss", "train_loss", "val_loss") if c in curves.columns]
    means = curves.groupby([cell, curves["step"]])[numeric].transform("mean")
    out = curves.assign(run_id=first, **{c: means[c] for c in numeric})
    return out.drop_duplicates(["run_id", "step"]).reset_index(drop=True)


def cell_groups(runs: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """For a bootstrap over runs: (runs with a `_cell` label column, "_cell") when some cell has replicates, so
    that whole cells are resampled (replicates share their cell's misfit of the law); else (runs, None)."""
    if not has_replicates(runs):
        return runs, None
    return runs.assign(_cell=cell_labels(runs)), "_cell"
