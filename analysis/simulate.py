"""Simulated sweeps from known scaling-law parameters: check a design (and our fits) before spending compute.

Everything returns the formats of `analysis.table`: `simulate_runs` / `simulate_grid` a results table
(one row per run: run_id, sweep, status, N, D, C, flops, budget, loss, train_loss, and a column per
hyperparameter axis), `simulate_curves` long-format training curves (run_id, N, D, step, tokens, flops,
loss, train_loss, val_loss), and `write_store` a run store that `read_table`/`read_curves` and
`scaling fit` read back.

Model of the data:
- loss = L(N, D)·exp(noise·z), z ~ N(0, 1): L from a `Law`, anything with `loss(N, D)` and `optimum(C)`
  (default: Hoffmann et al. 2022 Approach 3, `parametric.CHINCHILLA_2022`; also `kaplan_law.KaplanLaw`, a
  truth of another form), relative noise as a standard deviation in log space.
- IsoFLOP design: per budget C, `n_per_budget` sizes log-spaced over [N_opt/width, N_opt·width] around
  the true compute-optimal N_opt(C) (or the fixed ladder `sizes`), D = C/(6N). N and D are integers, so
  the row's C = 6·N·D differs slightly from the nominal `budget`.
- Hyperparameter axes (`HyperparamAxis`, e.g. lr): every design point is repeated at `n_points` values
  log-spaced over [opt/span, opt·span] around the true optimum opt = k·C^p, and the loss rises as a
  parabola in the log of the hyperparameter: loss += curvature·log(value/opt)², before the noise.
  Part B's hyperparameter-law fits are tested against these (column names "lr", "batch_size").
- Curves: a run's training loss at D_t tokens is L(N, D_t) (with its own noise) at `n_points` evenly
  spaced steps up to D. Real curves under a cosine schedule sit above L(N, D_t) before their end
  (Hoffmann et al. 2022, App. B); this simulates the idealised envelope Approach 1 assumes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from analysis.parametric import CHINCHILLA_2022
import atomicio

HYPERPARAM_COLUMNS = ("lr", "batch_size")


class Law(Protocol):
    """A known L(N, D) to draw runs from: `parametric.ChinchillaParams`, `kaplan_law.KaplanLaw`."""

    def loss(self, N, D) -> np.ndarray: ...

    def optimum(self, C) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, kw_only=True)
class HyperparamAxis:
    """A simulated hyperparameter: optimum k·C^p, loss penalty curvature·log(value/optimum)²."""

    name: str = "lr"
    k: float = 0.3
    p: float = -0.1
    curvature: float = 0.05
    n_points: int = 5
    span: float = 4.0

    def __post_init__(self):
        if self.name not in HYPERPARAM_COLUMNS:
            raise ValueError(f"name must be one of {HYPERPARAM_COLUMNS}, got {self.name!r}")
        if not (self.k > 0 and math.isfinite(self.k)):
            raise ValueError(f"k must be positive and finite, got {self.k}")
        if not math.isfinite(self.p):
            raise ValueError(f"p must be finite, got {self.p}")
        if not self.curvature >= 0:
            raise ValueError(f"curvature must be ≥ 0, got {self.curvature}")
        if self.n_points < 1:
            raise ValueError(f"n_points must be ≥ 1, got {self.n_points}")
        if not self.span >= 1:
            raise ValueError(f"span must be ≥ 1, got {self.span}")

    def optimum(self, C) -> np.ndarray:
        """The true optimal value k·C^p."""
        return self.k * np.asarray(C, dtype=float) ** self.p


def _check_positive(name: str, values) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.size == 0 or not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name} must be a non-empty list of positive finite numbers, got {values!r}")
    return arr


def _finish(design: pd.DataFrame, *, sweep: str, params: Law, noise: float, seed: int,
            hyperparams: tuple[HyperparamAxis, ...]) -> pd.DataFrame:
    """Integer N and D, C = 6ND, hyperparameter axes, noisy loss, ids: the table format."""
    if not noise >= 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    names = [h.name for h in hyperparams]
    if len(set(names)) != len(names):
        raise ValueError(f"hyperparams: each axis name at most once, got {names}")
    rng = np.random.default_rng(seed)
    design = design.assign(N=np.maximum(np.round(design["N"]), 1).astype("int64"),
                           D=np.maximum(np.round(design["D"]), 1).astype("int64"))
    design["C"] = 6.0 * design["N"].astype(float) * design["D"].astype(float)
    penalty = np.zeros(len(design))
    for axis in hyperparams:  # repeat every row at each value of the axis
        opt = axis.optimum(design["C"].to_numpy())
        factors = np.geomspace(1 / axis.span, axis.span, axis.n_points)
        design = design.loc[design.index.repeat(axis.n_points)].reset_index(drop=True)
        penalty = np.repeat(penalty, axis.n_points)
        values = np.repeat(opt, axis.n_points) * np.tile(factors, len(opt))
        if axis.name == "batch_size":
            values = np.maximum(np.round(values), 1).astype("int64")
        design[axis.name] = values
        penalty = penalty + axis.curvature * np.log(values / np.repeat(opt, axis.n_points)) ** 2
    clean = params.loss(design["N"].to_numpy(), design["D"].to_numpy()) + penalty
    loss = clean * np.exp(noise * rng.standard_normal(len(design)))
    n = len(design)
    front = pd.DataFrame({
        "run_id": [f"sim-{i:05d}" for i in range(n)], "sweep": sweep, "status": "completed",
    })
    out = pd.concat([front, design.reset_index(drop=True)], axis=1)
    out["flops"] = out["C"]
    out["loss"] = loss
    out["train_loss"] = clean * np.exp(noise * rng.standard_normal(n))
    return out


def simulate_runs(*, budgets, n_per_budget: int = 9, width: float = 8.0, center: float = 1.0, sizes=None,
                  params: Law = CHINCHILLA_2022, noise: float = 0.01, seed: int = 0,
                  hyperparams: tuple[HyperparamAxis, ...] = ()) -> pd.DataFrame:
    """An IsoFLOP sweep: per budget C, sizes log-spaced over ±`width`× around `center`·N_opt(C), the true
    optimum times an offset (1: centred; a sweep whose prior missed the optimum otherwise), or the fixed
    ladder `sizes`; D = C/(6N); loss from `params` with relative log-space noise `noise`. Deterministic in `seed`."""
    budgets = _check_positive("budgets", budgets)
    if sizes is None:
        if n_per_budget < 1:
            raise ValueError(f"n_per_budget must be ≥ 1, got {n_per_budget}")
        if not width >= 1:
            raise ValueError(f"width must be ≥ 1, got {width}")
        if not (center > 0 and math.isfinite(center)):
            raise ValueError(f"center must be positive and finite, got {center}")
        n_opt, _ = params.optimum(budgets)
        factors = center * np.geomspace(1 / width, width, n_per_budget)
        n = (n_opt[:, None] * factors[None, :]).ravel()
        c = np.repeat(budgets, n_per_budget)
    else:
        sizes = _check_positive("sizes", sizes)
        n = np.tile(sizes, budgets.size)
        c = np.repeat(budgets, sizes.size)
    design = pd.DataFrame({"N": n, "D": c / (6 * n), "budget": c})
    return _finish(design, sweep="simulated-isoflop", params=params, noise=noise, seed=seed,
                   hyperparams=tuple(hyperparams))


def simulate_grid(*, sizes, tokens, params: Law = CHINCHILLA_2022, noise: float = 0.01,
                  seed: int = 0, hyperparams: tuple[HyperparamAxis, ...] = ()) -> pd.DataFrame:
    """A grid sweep: every size in `sizes` trained for every count in `tokens` (budget = NaN)."""
    sizes, tokens = _check_positive("sizes", sizes), _check_positive("tokens", tokens)
    n, d = np.meshgrid(sizes, tokens, indexing="ij")
    design = pd.DataFrame({"N": n.ravel(), "D": d.ravel(), "budget": math.nan})
    return _finish(design, sweep="simulated-grid", params=params, noise=noise, seed=seed,
                   hyperparams=tuple(hyperparams))


def simulate_curves(runs: pd.DataFrame, *, params: Law = CHINCHILLA_2022, n_points: int = 20,
                    noise: float = 0.01, seed: int = 0, tokens_per_step: int = 2048) -> pd.DataFrame:
    """Training curves for the runs of a table (needs run_id, N, D): loss L(N, D_t)·exp(noise·z) at
    `n_points` evenly spaced steps up to each run's D; val_loss only at the last point (= that run's
    curve end). Long format, as `table.read_curves` returns."""
    for col in ("run_id", "N", "D"):
        if col not in runs.columns:
            raise ValueError(f"runs: missing column {col!r} needed to simulate curves")
    if n_points < 1:
        raise ValueError(f"n_points must be ≥ 1, got {n_points}")
    if tokens_per_step < 1:
        raise ValueError(f"tokens_per_step must be ≥ 1, got {tokens_per_step}")
    rng = np.random.default_rng(seed)
    n = np.repeat(runs["N"].to_numpy(float), n_points)
    d = np.repeat(runs["D"].to_numpy(float), n_points)
    fraction = np.tile(np.arange(1, n_points + 1) / n_points, len(runs))
    tokens = np.maximum(np.round(d * fraction), 1)
    loss = params.loss(n, tokens) * np.exp(noise * rng.standard_normal(n.size))
    last = np.tile(np.arange(n_points) == n_points - 1, len(runs))
    return pd.DataFrame({
        "run_id": np.repeat(runs["run_id"].astype(str).to_numpy(), n_points),
        "N": n.astype("int64"), "D": d.astype("int64"),
        "step": np.round(tokens / tokens_per_step).astype("int64"), "tokens": tokens.astype("int64"),
        "flops": 6.0 * n * tokens, "loss": loss, "train_loss": loss, "val_loss": np.where(last, loss, np.nan),
    })


def write_store(runs: pd.DataFrame, store, *, curves: pd.DataFrame | None = None) -> Path:
    """Write a table (and optionally its curves) as a run store: runs/<run_id>/row.json and curve.csv,
    each file written atomically. Returns the store path."""
    if "run_id" not in runs.columns:
        raise ValueError("runs: missing column 'run_id' needed to name the run folders")
    root = Path(store) / "runs"
    for row in runs.to_dict(orient="records"):
        run_dir = root / str(row["run_id"])
        run_dir.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v.item() if hasattr(v, "item") else v)
                 for k, v in row.items()}
        atomicio.write_text(run_dir / "row.json", json.dumps(clean, indent=1) + "\n")
        if curves is not None:
            curve = curves[curves["run_id"].astype(str) == str(row["run_id"])]
            columns = ["step", "tokens", "flops", "train_loss", "val_loss"]
            atomicio.write_text(run_dir / "curve.csv", curve[columns].to_csv(index=False))
    return Path(store)
