"""Is there a law at all? Tests that a fit explains the runs significantly better than no dependence on N, D or C.

A least-squares fit with free exponents always finds *some* law, and pure noise (loss uniform in [2, 4], unrelated
to N and D) came back with Approach 2 and the loss frontier `success: true`. Every approach is therefore tested
against the model with no scaling at all, and fails with a message when the test is not significant at `LEVEL`:
- Approach 3: the F-test of nested least-squares models (e.g. Seber & Lee 2003, §4.5), L(N, D) against a
  constant log L: F = ((SSE₀ − SSE₁)/(k − 1)) / (SSE₁/(n − k)) on (k − 1, n − k) degrees of freedom, k = 5 (4 with
  E fixed), SSE on the fit's residuals in log L. The fit minimises a Huber loss, not SSE, so the test is
  approximate; it only has to tell a law from none.
- Approach 2: the same F-test, pooled over budgets: per budget, a parabola in log N over *all* of its runs
  against that budget's mean loss (2 extra parameters per budget). All runs, not the window around the lowest
  run, because the window is chosen where the losses dip and a test on it would find curvature in noise.
- The loss frontier: a one-sided test that the per-budget minima fall with compute: the weighted least-squares
  slope of L_opt against log C, each minimum weighted by its delta-method variance from the runs' pooled noise
  (σ²·gᵀ(XᵀX)⁻¹g, g = (1, u*, u*²) at the vertex u*), and with ≥ 3 budgets that variance scaled up by the
  Birge ratio χ²/(n − 2) when the minima scatter more than their noise (Birge 1932; the PDG's scale factor).
  z = slope/se, p = Φ(z). It works from 2 budgets (where no residual is left for an F-test), and a frontier
  whose minima rise with compute is not significant and is named so. Without a noise scale (noiseless runs,
  or windows of 3 runs) the residuals alone set the scale, from 3 budgets.
A test the runs leave nothing to test with (no residual degree of freedom: 5 runs for Approach 3, 3 sizes
per budget for Approach 2, 2 budgets without a noise scale for the frontier) is reported as not tested and
does not fail the fit: such a sweep cannot tell a law from noise either way, which the message says.

LEVEL = 1%: pure noise is then called a law in about 1 of 100 tables (rather than 1 in 20). Real sweeps are far
stronger than that: every approach on every golden published sweep (tests/golden/) gives p < 1e-13, and a
simulated sweep of the demo's size (3 budgets × 5 sizes, 0.6% noise) gives p ≈ 1e-5 for Approach 2's pooled test
and ≈ 1e-13 for Approach 3's, so the stricter level costs no sweep we have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
# scipy.special, not scipy.stats: the same values without scipy.stats' import (~1 s of `scaling fit` under load)
from scipy.special import fdtrc, ndtr

LEVEL = 0.01


@dataclass(frozen=True)
class SignificanceTest:
    """One test of a law against no dependence: its statistic, p-value, degrees of freedom and verdict."""

    test: str
    statistic: float
    p_value: float
    df: tuple[int, int]
    level: float
    significant: bool

    @property
    def tested(self) -> bool:
        """False where the runs leave nothing to test with (no residual degree of freedom, no noise scale)."""
        return math.isfinite(self.p_value)

    @property
    def failed(self) -> bool:
        """Tested and not significant: the runs show no significant scaling, and the fit must not report success."""
        return self.tested and not self.significant

    @property
    def message(self) -> str:
        if not self.tested:
            return f"{self.test}: not tested (no residual degree of freedom on {self.df})"
        verdict = "significant" if self.significant else "not significant"
        return f"{self.test}: {self.statistic:.3g} on {self.df}, p = {self.p_value:.2g} ({verdict} at {self.level:g})"


def f_test(sse_null: float, sse_law: float, n: int, k_null: int, k_law: int, *, test: str,
           level: float = LEVEL) -> SignificanceTest:
    """F-test of a least-squares law with k_law parameters against a nested null with k_null, on n points.
    Not tested (p = NaN) when no residual degree of freedom is left."""
    df1, df2 = k_law - k_null, n - k_law
    if df1 < 1 or df2 < 1 or not (math.isfinite(sse_null) and math.isfinite(sse_law)):
        return SignificanceTest(test, math.nan, math.nan, (max(df1, 0), max(df2, 0)), level, False)
    f = max(sse_null - sse_law, 0.0) / df1 / max(sse_law / df2, 1e-300)
    p = float(fdtrc(df1, df2, f))  # the F distribution's survival function
    return SignificanceTest(test, float(f), p, (df1, df2), level, p < level)


def law_against_constant(log_loss, residuals, weights, n_params: int, level: float = LEVEL) -> SignificanceTest:
    """Approach 3: F-test of L(N, D) (`n_params` free) against a constant log L, weighted least squares."""
    y, r, w = (np.asarray(v, dtype=float) for v in (log_loss, residuals, weights))
    used = w > 0
    mean = np.sum(w * y) / np.sum(w)
    return f_test(float(np.sum(w * (y - mean) ** 2)), float(np.sum(w * r * r)), int(used.sum()), 1, n_params,
                  test="F-test of L(N, D) against a constant loss", level=level)


def profiles_against_constant(groups, level: float = LEVEL) -> SignificanceTest:
    """Approach 2: pooled F-test of a parabola in log N per budget against each budget's mean loss.
    groups: (log N, loss) of each budget's runs; budgets with < 3 distinct sizes are left out."""
    sse0 = sse1 = 0.0
    n = k = 0
    for x, y in groups:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if np.unique(x).size < 3:
            continue
        u = x - x.mean()
        design = np.column_stack([np.ones_like(u), u, u * u])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        sse0 += float(np.sum((y - y.mean()) ** 2))
        sse1 += float(np.sum((y - design @ coef) ** 2))
        n, k = n + len(y), k + 1
    return f_test(sse0, sse1, n, k, 3 * k, test="F-test of the IsoFLOP parabolas against a flat loss per budget",
                  level=level)


def falling_with_compute(compute, minima, variances, level: float = LEVEL) -> SignificanceTest:
    """The loss frontier: one-sided test that the minima fall with log C (module docstring). Without usable
    variances (no noise scale) the residuals alone set the scale (ordinary least squares), from 3 budgets."""
    x = np.log(np.asarray(compute, dtype=float))
    y, var = np.asarray(minima, dtype=float), np.asarray(variances, dtype=float)
    name = "z-test that the budget minima fall with compute"
    n = len(y)
    known = bool(np.all(np.isfinite(var) & (var > 0)))
    if n < 2 or (not known and n < 3):
        return SignificanceTest(name, math.nan, math.nan, (n, 0), level, False)
    w = 1 / var if known else np.ones(n)
    xm = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * y) / sxx
    scale = 1.0
    if n >= 3:
        chi2 = np.sum(w * (y - (np.sum(w * y) / np.sum(w)) - slope * (x - xm)) ** 2)
        scale = max(1.0, chi2 / (n - 2)) if known else chi2 / (n - 2)
    se = math.sqrt(scale / sxx)
    z = float(slope / se) if se > 0 else math.copysign(math.inf, slope) if slope else 0.0
    p = float(ndtr(z))  # the standard normal's CDF
    return SignificanceTest(name, z, p, (n, max(n - 2, 0)), level, p < level)
