"""Kaplan et al. 2020's L(N, D) as a known law to simulate from: a truth whose form is not the one we fit.

Every fit here assumes Chinchilla's form, L = E + A/N^α + B/D^β (Approach 3 directly; the loss frontier and its
shape off N_opt through what that form implies). Calibrated only on sweeps drawn from that form, our intervals
were never measured where the form is wrong, as on real sweeps it is. Kaplan et al. 2020 (eq. 1.5) proposed
another form,

    L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D,

which has no floor and reduces to their single-variable laws L(N) = (N_c/N)^α_N and L(D) = (D_c/D)^α_D (eqs. 1.1
and 1.2) as D or N grows without bound. `KAPLAN_2020` takes the constants of those two laws (α_N = 0.076,
N_c = 8.8e13 non-embedding parameters; α_D = 0.095, D_c = 5.4e13 tokens). Under C = 6·N·D the optimum is in
closed form: with r = α_N/α_D, the bracket's two terms balance at r·(N_c/N)^r = 6·D_c·N/C, so

    N_opt(C) = (r·N_c^r·C / (6·D_c))^(1/(1+r)),   L_opt(C) = ((1 + r)·(N_c/N_opt)^r)^α_D,

a pure power law in C (N_opt ∝ C^0.556, L_opt ∝ C^-0.042 with these constants). `loss` and `optimum` are the two
methods a simulated sweep needs (`analysis.simulate`), the same as `parametric.ChinchillaParams` has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class KaplanLaw:
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020, eq. 1.5)."""

    N_c: float
    D_c: float
    alpha_N: float
    alpha_D: float

    def __post_init__(self):
        for name in ("N_c", "D_c", "alpha_N", "alpha_D"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")

    @property
    def r(self) -> float:
        """α_N/α_D, the exponent of N_c/N inside the bracket."""
        return self.alpha_N / self.alpha_D

    def loss(self, N, D) -> np.ndarray:
        """L(N, D), from logs so that no power overflows."""
        log_n, log_d = np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))
        inner = np.logaddexp(self.r * (math.log(self.N_c) - log_n), math.log(self.D_c) - log_d)
        return np.exp(self.alpha_D * inner)

    def optimum(self, C) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising L(N, D) subject to C = 6·N·D (closed form: module docstring)."""
        log_c = np.log(np.asarray(C, dtype=float))
        log_n = (math.log(self.r) + self.r * math.log(self.N_c) + log_c - math.log(6 * self.D_c)) / (1 + self.r)
        return np.exp(log_n), np.exp(log_c - math.log(6.0) - log_n)


KAPLAN_2020 = KaplanLaw(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)
