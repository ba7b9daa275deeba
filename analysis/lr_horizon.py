"""The optimal learning rate against model size and token horizon: lr_opt = k·N^p_N·D^p_D.

Bjorck et al. 2024 ("Scaling Optimal LR Across Token Horizons", ICLR 2025) find that the optimal learning
rate falls with the token horizon D as a power law at fixed N, and fit the joint form LR*(N, D) = C·N^-α·D^-β.
`analysis.hyperparams` fits lr_opt against the budget C alone; on an IsoFLOP sweep D = C/f(N), so a law of C
alone cannot tell the size from the horizon. This fit takes the same per-cell optima (the vertex of a parabola
in log lr of each (budget, N) cell, `HyperparamFit.cells`) and regresses log lr_opt on log N and log D by least
squares; N and D are separable only when the cells span ≥ 2 budgets and ≥ 2 sizes (else success is False).
Intervals: bootstrap over cells, as for the law of C. The sweeps can use the fitted form through a power rule
with a horizon exponent (`lr: {rule: power, of: N, k, p, q}`, sweeps/config.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.compute_per_token import SIX_N, ComputePerToken
from analysis.hyperparams import HyperparamFit
from analysis.powerlaw import percentile_interval

MIN_CELLS = 4  # three coefficients and at least one residual degree of freedom


@dataclass(frozen=True)
class LrHorizonFit:
    """lr_opt = k·N^p_N·D^p_D over `n_cells` cell optima; `samples` the bootstrap's (log k, p_N, p_D) rows."""

    k: float
    p_N: float
    p_D: float
    p_N_interval: tuple[float, float]
    p_D_interval: tuple[float, float]
    n_cells: int
    samples: np.ndarray
    level: float
    success: bool
    message: str

    def predict(self, N, D) -> np.ndarray:
        """lr_opt at size N and horizon D (tokens)."""
        return self.k * np.asarray(N, dtype=float) ** self.p_N * np.asarray(D, dtype=float) ** self.p_D


def _solve(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(design, y, rcond=None)[0]


def fit_lr_horizon(lr_law: HyperparamFit, *, n_bootstrap: int = 1000, level: float = 0.95,
                   seed: int = 0, per_token: ComputePerToken = SIX_N) -> LrHorizonFit:
    """log lr_opt = log k + p_N·log N + p_D·log D over the "ok" cells of an lr law (module docstring); a
    cell's D is its budget over the table's compute per token, per_token (analysis/compute_per_token.py)."""
    if lr_law.column != "lr":
        raise ValueError(f"fit_lr_horizon needs the lr law, got the {lr_law.column} law")
    cells = [c for c in lr_law.cells if c.status == "ok"]
    nan_pair = (math.nan, math.nan)
    log_n = np.log([c.n for c in cells])
    log_d = np.log([float(per_token.tokens(c.compute, c.n)) for c in cells])
    design = np.column_stack([np.ones(len(cells)), log_n, log_d])
    if len(cells) < MIN_CELLS or np.linalg.matrix_rank(design, tol=1e-6) < 3:
        return LrHorizonFit(math.nan, math.nan, math.nan, nan_pair, nan_pair, len(cells), np.empty((0, 3)), level,
                            False, f"need ≥ {MIN_CELLS} cells spanning ≥ 2 budgets and ≥ 2 sizes to separate N from "
                                   f"D, got {len(cells)} usable cell(s)")
    y = np.log([c.optimum for c in cells])
    coef = _solve(design, y)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(cells), len(cells))
        if np.linalg.matrix_rank(design[pick], tol=1e-6) == 3:
            draws.append(_solve(design[pick], y[pick]))
    samples = np.array(draws).reshape(-1, 3)
    intervals = [percentile_interval(samples[:, j], level) if len(samples) else nan_pair for j in (1, 2)]
    skipped = n_bootstrap - len(samples)
    message = (f"lr_opt = k·N^p_N·D^p_D over {len(cells)} cells"
               + (f"; {skipped} bootstrap draw(s) that could not separate N from D skipped" if skipped else ""))
    return LrHorizonFit(float(math.exp(coef[0])), float(coef[1]), float(coef[2]), intervals[0], intervals[1],
                        len(cells), samples, level, True, message)
