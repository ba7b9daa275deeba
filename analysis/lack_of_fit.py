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

`misfit_against_noise` asks the same question of Approach 3, whose intervals come from its own residuals: does
L(N, D) leave the runs scattered more than their noise? It is the classical lack-of-fit F-test (Draper & Smith,
"Applied Regression Analysis", 3rd ed. 1998, §2.1: the residual mean square against a pure-error mean square),
with the pure error taken from an estimate the law did not make: Approach 2's σ, pooled over the IsoFLOP
windows' local parabolas (ν = Σ (n_window − 3) degrees of freedom), made relative by the windows' median loss
(the noise is taken as relative, as Approach 3's Huber loss on log L assumes). F = (Σ r²/(n − k)) / (σ/L)² on
(n − k, ν); significant at `significance.LEVEL` (1%), the fit is reported as not describing the runs.
"""

from __future__ import annotations

import math

import numpy as np
# scipy.special, not scipy.stats: the same values without scipy.stats' import (~1 s of `scaling fit` under load)
from scipy.special import fdtrc, ndtri, stdtrit

from analysis.significance import LEVEL, SignificanceTest


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


def misfit_against_noise(log_residuals, n_params: int, relative_noise: float, noise_dof: int,
                         level: float = LEVEL) -> SignificanceTest:
    """Lack-of-fit F-test of a law's log-space residuals against an independent relative noise σ/L on `noise_dof`
    degrees of freedom (module docstring); `significant` means the law misses the runs. Not tested (NaN) without
    a residual degree of freedom or a noise estimate."""
    r = np.asarray(log_residuals, dtype=float)
    dof = r.size - n_params
    name = "lack-of-fit F-test against the IsoFLOP windows' noise"
    if dof < 1 or noise_dof < 1 or not (math.isfinite(relative_noise) and relative_noise > 0):
        return SignificanceTest(name, math.nan, math.nan, (max(dof, 0), int(noise_dof)), level, False)
    statistic = float(np.sum(r * r) / dof / relative_noise**2)
    p_value = float(fdtrc(dof, noise_dof, statistic))  # F's upper tail
    return SignificanceTest(name, statistic, p_value, (dof, int(noise_dof)), level, p_value < level)
