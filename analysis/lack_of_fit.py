"""How much wider an interval must be when a law's residuals scatter more than the runs' noise explains.

Approach 2's N_opt law and the loss frontier are fitted through per-budget estimates (vertices, minima) whose
standard errors come from the runs' pooled noise σ, and their bootstrap intervals redraw that noise only. With
few budgets the law's own misfit (a floorless law through minima that bend towards a floor; vertices of
parabolas that are not the profile's shape) dominates, and those intervals covered 0-7% of the truth at 4-10×
beyond the sweep (docs/methods.md, "Calibration"). The residuals say when: under the law and the noise alone,
χ² = Σ (r_i / se_i)² has ν = n − k degrees of freedom, so s² = χ²/ν estimates the scatter in units of the noise.

The rule, the textbook one for a regression whose error variance is estimated from ν residual degrees of
freedom (e.g. Seber & Lee 2003, §5.3): when s > 1 the scatter is taken from the residuals, not from σ, and the
interval's quantile is Student's t_ν instead of the normal's, so the bootstrap's deviations from the point
prediction are scaled by s·t_ν(q)/z(q), q = (1 + level)/2. When s ≤ 1 (the noise explains the residuals) or
ν < 1 (no residual left: 2 budgets through a 2-parameter law) the factor is 1 and the fit says so.
The Birge ratio (Birge 1932; the Particle Data Group's scale factor) is the same s without the t quantile.
"""

from __future__ import annotations

import math

import numpy as np
# scipy.special, not scipy.stats: the same values without scipy.stats' import (~1 s of `scaling fit` under load)
from scipy.special import ndtri, stdtrit


def lack_of_fit_factor(residuals, variances, n_params: int, level: float) -> float:
    """s·t_ν(q)/z(q) when s² = χ²/ν > 1, else 1 (module docstring); 1 with no residual degree of freedom."""
    r, var = np.asarray(residuals, dtype=float), np.asarray(variances, dtype=float)
    dof = r.size - n_params
    if dof < 1 or not np.all(np.isfinite(var) & (var > 0)) or not np.all(np.isfinite(r)):
        return 1.0
    s = math.sqrt(float(np.sum(r * r / var)) / dof)
    if s <= 1:
        return 1.0
    q = 0.5 + level / 2
    return float(s * stdtrit(dof, q) / ndtri(q))  # t_ν and normal quantiles


def widen(replicates, centre, factor: float) -> np.ndarray:
    """Bootstrap replicates with their deviations from `centre` (the point estimate) scaled by `factor`."""
    replicates = np.asarray(replicates, dtype=float)
    return centre + factor * (replicates - centre)
