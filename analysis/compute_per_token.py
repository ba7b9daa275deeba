"""A table's compute per token as a function of N, fitted from its runs: the one rule that turns C into D.

The analysis turns a compute budget into tokens wherever it allocates (D_opt = C / f(N_opt)) or splits
compute between N and D (Approach 3). Under `compute: 6N` a run's C is 6·N·D, so f(N) = 6·N (Kaplan et al.
2020, eq. 2.1). Under `compute: exact` the table's C counts lm.accounting's exact FLOPs, which add attention
over the context to 6·N: per token 6·N + 12·L·ctx·d (+ the head's 6·V·d when N leaves it out). At one shape
family L·d grows as a power of N (N ≈ 12·L·d² at a fixed aspect ratio gives L·d ∝ N^(2/3)), so the form

    f(N) = k·N^p + c·N^b,   fitted as (k, p) = (6, 1) and log(C/D − 6·N) = log c + b·log N by least squares,

is the exact count's own shape, and beyond the runs it tends to 6·N as attention's share falls (what the
exact count does), where a log-log line through C/D would keep the small models' overhead forever and an
interpolation would need an extrapolation rule anyway. When C/D == 6·N for every run (to 1e-9) f is exactly
6·N (c = 0) and every conversion is the old one. When some run's C/D is not above 6·N (an N that counts
more parameters than the FLOPs touch, N_total with an untied embedding, say) the excess has no logarithm, and
f is the log-log line k·N^p through C/D (c = 0). `max_rel_error` says how far f misses the runs' own C/D.
Analysis imports no lm: f comes from the table's columns N, D and C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EXACTLY_6N = 1e-9  # C/D within this relative distance of 6·N for every run: the table counts C = 6·N·D
GOLDEN_STEPS = 100  # golden-section steps: the bracket of 24 nats in log N shrinks to ~1e-19


@dataclass(frozen=True)
class ComputePerToken:
    """FLOPs per training token of a model of N parameters, f(N) = k·N^p + c·N^b (module docstring)."""

    k: float = 6.0
    p: float = 1.0
    c: float = 0.0
    b: float = 0.0
    n_runs: int = 0  # runs it was fitted to (0: the 6·N default, e.g. a fit file written before this field)
    max_rel_error: float = 0.0  # largest |f(N)/(C/D) − 1| over those runs

    def __post_init__(self):
        for name in ("k", "p", "c", "b"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"ComputePerToken: {name} must be finite, got {getattr(self, name)!r}")
        if self.k <= 0 or self.c < 0:
            raise ValueError(f"ComputePerToken: need k > 0 and c ≥ 0, got k={self.k!r}, c={self.c!r}")

    @property
    def is_6n(self) -> bool:
        """Whether f is exactly 6·N (the closed forms under C = 6·N·D apply)."""
        return self.k == 6.0 and self.p == 1.0 and self.c == 0.0

    def __call__(self, n) -> np.ndarray:
        n = np.asarray(n, dtype=float)
        return self.k * n**self.p + self.c * n**self.b

    def tokens(self, compute, n) -> np.ndarray:
        """D = C / f(N): the tokens a model of N parameters trains on with C FLOPs."""
        return np.asarray(compute, dtype=float) / self(n)

    def describe(self) -> str:
        if self.is_6n:
            return "C = 6·N·D"
        form = (f"{self.k:.4g}·N" if self.p == 1 else f"{self.k:.4g}·N^{self.p:.4g}") + (
            f" + {self.c:.4g}·N^{self.b:.4g}" if self.c else "")
        return f"C = D·({form}), within {self.max_rel_error:.2%} of the {self.n_runs} runs' C/D"


SIX_N = ComputePerToken()


def fit_compute_per_token(n, per_token) -> ComputePerToken:
    """f(N) from runs' N and C/D (non-finite or non-positive pairs left out; none left: 6·N)."""
    n, per_token = np.asarray(n, dtype=float).ravel(), np.asarray(per_token, dtype=float).ravel()
    good = np.isfinite(n) & np.isfinite(per_token) & (n > 0) & (per_token > 0)
    n, per_token = n[good], per_token[good]
    if n.size == 0 or np.all(np.abs(per_token / (6 * n) - 1) <= EXACTLY_6N):
        return ComputePerToken(n_runs=int(n.size))
    log_n, excess = np.log(n), per_token - 6 * n
    if np.ptp(log_n) == 0:  # one size: no slope to fit, a constant multiple of N
        fitted = dict(k=float(np.exp(np.mean(np.log(per_token / n)))))
    elif np.all(excess > 0):
        b, log_c = np.polyfit(log_n, np.log(excess), 1)
        fitted = dict(c=float(np.exp(log_c)), b=float(b))
    else:
        p, log_k = np.polyfit(log_n, np.log(per_token), 1)
        fitted = dict(k=float(np.exp(log_k)), p=float(p))
    f = ComputePerToken(**fitted)
    return ComputePerToken(**fitted, n_runs=int(n.size), max_rel_error=float(np.max(np.abs(f(n) / per_token - 1))))


def from_runs(runs) -> ComputePerToken:
    """f(N) from a results table's N, D and C (6·N where the table has no C column)."""
    if "C" not in runs.columns:
        return SIX_N
    d = runs["D"].to_numpy(float)
    return fit_compute_per_token(runs["N"].to_numpy(float), runs["C"].to_numpy(float) / d)


def split_compute(log_a, alpha, log_b, beta, compute, per_token: ComputePerToken):
    """(N_opt, D_opt) minimising A/N^α + B/D^β subject to D = C / f(N), elementwise over broadcast arrays.

    In x = log N the objective is a sum of two convex functions (log f is a log-sum-exp of lines in x), so it
    is unimodal and a golden-section search finds its minimum; the bracket is 12 nats either side of the
    closed form under 6·N. Degenerate parameters (α or β ≤ 0, NaN) give NaN."""
    log_a, alpha, log_b, beta, log_c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (
        log_a, alpha, log_b, beta, np.log(np.asarray(compute, dtype=float)))))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = alpha + beta
        x6 = ((np.log(alpha) + log_a - np.log(beta) - log_b) + beta * (log_c - math.log(6.0))) / s
        bad = ~(np.isfinite(x6) & (alpha > 0) & (beta > 0))
    x6 = np.where(bad, 0.0, x6)

    def objective(x):
        log_d = log_c - np.log(per_token(np.exp(x)))
        return np.logaddexp(log_a - alpha * x, log_b - beta * log_d)

    lo, hi = x6 - 12.0, x6 + 12.0
    ratio = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = objective(x1), objective(x2)
    for _ in range(GOLDEN_STEPS):
        left = f1 < f2  # the minimum lies in [lo, x2]
        lo, hi = np.where(left, lo, x1), np.where(left, x2, hi)
        x1, x2 = np.where(left, hi - ratio * (hi - lo), x2), np.where(left, x1, lo + ratio * (hi - lo))
        f_new = objective(np.where(left, x1, x2))
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
    n_opt = np.where(bad, math.nan, np.exp((lo + hi) / 2))
    return n_opt, per_token.tokens(np.exp(log_c), n_opt)
