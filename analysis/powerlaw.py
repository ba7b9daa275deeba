"""Power laws y = k·x^p fitted by least squares in log-log space, and percentile intervals.

Shared by every approach that ends in a power law across budgets (N_opt ∝ C^a, lr_opt ∝ C^p, ...).

Notable choices:
- The fit is ordinary (or weighted) least squares of log y on log x, solved in closed form: a power law
  is a straight line in log-log space, and multiplicative noise is additive there.
- Inputs must be positive and finite (ValueError otherwise, naming the argument): a power law cannot
  pass through them, and silently dropping them would hide a bug upstream.
- Fewer than two distinct x cannot fix a slope: the result has success=False and NaN k, p, rather than
  an exception, so a bootstrap loop over resamples can count such failures.
- `percentile_interval` returns an `Interval`: a plain (lo, hi) tuple that also carries how many of
  the samples were finite (`n_finite` of `n_total`), because a bootstrap whose replicates partly failed
  must say so next to its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLawFit:
    """y = k·x^p fitted in log space. `residuals` are log y − log ŷ (natural log), one per point;
    `r2` is the (weighted) coefficient of determination of log y."""

    k: float
    p: float
    residuals: np.ndarray
    r2: float
    n_points: int
    success: bool
    message: str

    def predict(self, x) -> np.ndarray:
        """k·x^p, evaluated as exp(log k + p·log x)."""
        return np.exp(math.log(self.k) + self.p * np.log(np.asarray(x, dtype=float))) if self.success \
            else np.full(np.shape(x), math.nan)


def _positive_finite(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be positive and finite for a power law; {name}[{i}] = {arr[i]!r}"
                         f" ({int(bad.sum())} such value(s))")
    return arr


def fit_power_law(x, y, *, weights=None) -> PowerLawFit:
    """Fit y = k·x^p: minimise Σ w_i·(log y_i − log k − p·log x_i)².

    weights: optional non-negative per-point weights (default all 1).
    Raises ValueError for non-positive or non-finite x or y, mismatched lengths or bad weights.
    """
    x, y = _positive_finite("x", x), _positive_finite("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != x.shape:
        raise ValueError(f"weights must have one entry per point ({x.size}), got {w.size}")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0)):
        raise ValueError("weights must be finite and non-negative")
    used = w > 0
    n = int(used.sum())
    lx, ly = np.log(x), np.log(y)
    if np.unique(lx[used]).size < 2:
        return PowerLawFit(math.nan, math.nan, np.full(x.size, math.nan), math.nan, n, False,
                           f"need ≥ 2 distinct x with positive weight, got {np.unique(lx[used]).size}")
    # weighted least squares for a line, in closed form around the weighted means
    mx, my = np.average(lx, weights=w), np.average(ly, weights=w)
    sxx = np.sum(w * (lx - mx) ** 2)
    sxy = np.sum(w * (lx - mx) * (ly - my))
    p = sxy / sxx
    log_k = my - p * mx
    residuals = ly - (log_k + p * lx)
    ss_res = float(np.sum(w * residuals**2))
    ss_tot = float(np.sum(w * (ly - my) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else math.nan)
    message = f"least squares in log-log space over {n} points"
    if n == 2:
        message += " (exact through 2 points: no residual degrees of freedom)"
    return PowerLawFit(float(math.exp(log_k)), float(p), residuals, float(r2), n, True, message)


def fit_power_law_rows(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(k, p) of y = k·x^p fitted to each row of y (shape (R, n)) at the same x, unweighted: the
    bootstrap's R replicates in one array operation, by `fit_power_law`'s formulas (equal to it within
    float rounding). Raises ValueError as `fit_power_law` does; fewer than 2 distinct x gives NaN k and p."""
    x, y = _positive_finite("x", x), np.atleast_2d(np.asarray(y, dtype=float))
    _positive_finite("y", y)
    if y.shape[1] != x.size:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.shape[1]}")
    if np.unique(x).size < 2:
        return np.full(len(y), math.nan), np.full(len(y), math.nan)
    lx, ly = np.log(x), np.log(y)
    mx, my = np.mean(lx), np.mean(ly, axis=1)
    p = np.sum((lx - mx) * (ly - my[:, None]), axis=1) / np.sum((lx - mx) ** 2)
    return np.exp(my - p * mx), p


class Interval(tuple):
    """A percentile interval (lo, hi): unpacks and serialises as a 2-tuple, and also says how many
    samples were finite (`n_finite` of `n_total`) and at which `level` it was taken."""

    def __new__(cls, lo: float, hi: float, *, n_finite: int, n_total: int, level: float):
        self = super().__new__(cls, (float(lo), float(hi)))
        self.__dict__.update(n_finite=int(n_finite), n_total=int(n_total), level=float(level))
        return self

    def __setattr__(self, name, value):
        raise AttributeError("Interval is immutable")

    def __getnewargs_ex__(self):
        return (self[0], self[1]), {"n_finite": self.n_finite, "n_total": self.n_total, "level": self.level}

    @property
    def lo(self) -> float:
        return self[0]

    @property
    def hi(self) -> float:
        return self[1]

    def __repr__(self) -> str:
        return (f"Interval(lo={self[0]:.6g}, hi={self[1]:.6g}, level={self.level:g}, "
                f"n_finite={self.n_finite} of {self.n_total})")


def percentile_interval(samples, level: float = 0.95) -> Interval:
    """Central percentile interval of the finite samples: the (1−level)/2 and (1+level)/2 quantiles.

    NaN and ±inf samples (failed replicates) are left out and counted: the result's `n_finite` says how
    many samples it rests on. Fewer than 2 finite samples give (nan, nan).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    arr = np.asarray(samples, dtype=float).ravel()
    finite = arr[np.isfinite(arr)]
    if finite.size < 2:
        return Interval(math.nan, math.nan, n_finite=finite.size, n_total=arr.size, level=level)
    lo, hi = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return Interval(lo, hi, n_finite=finite.size, n_total=arr.size, level=level)


# A bootstrap interval rests on the replicates it kept; when most were dropped (failed to converge, a parabola
# opened downward, ...) the kept ones are a selected subset and their spread is not the sampling distribution,
# so the interval is marked unreliable instead of reported at its level ("most" = more than half).
MIN_KEPT_SHARE = 0.5


def replicates_reliable(n_kept: int, n_total: int) -> bool:
    """Whether a bootstrap that kept `n_kept` of `n_total` replicates gives an interval worth its level."""
    return n_total >= 2 and n_kept >= 2 and n_kept >= MIN_KEPT_SHARE * n_total


class AllocationLaw:
    """N_opt = k_n·C^a with bootstrap samples of (k_n, a): the methods Approaches 1 and 2 share.

    Mixed into their frozen result classes, which hold `k_n`, `a`, `law_samples` (rows of k_n, a),
    `level` and `per_token` (the table's compute per token, `analysis.compute_per_token`).
    """

    def n_opt(self, compute) -> np.ndarray:
        """N_opt at compute C (FLOPs) from the fitted law."""
        return self.k_n * np.asarray(compute, dtype=float) ** self.a

    def d_opt(self, compute) -> np.ndarray:
        """D_opt = C / f(N_opt) at compute C, f the table's compute per token (6·N under C = 6·N·D)."""
        compute = np.asarray(compute, dtype=float)
        return self.per_token.tokens(compute, self.n_opt(compute))

    def n_opt_interval(self, compute: float) -> tuple[float, float]:
        """Percentile interval of N_opt at C over the bootstrap samples (NaNs without samples)."""
        if self.law_samples.size == 0:
            return (math.nan, math.nan)
        return percentile_interval(self.law_samples[:, 0] * float(compute) ** self.law_samples[:, 1], self.level)
