"""The loss frontier: the lowest loss each compute budget reaches, L_opt(C) = G·C^−γ, from the IsoFLOP profiles.

Approach 2 fits a parabola in log N to each budget's runs; its vertex gives N_opt(C) and its value at the
vertex the best loss that budget reaches. A power law through those minima predicts the loss of a
compute-optimal run at a larger budget, the way DeepSeek LLM (Bi et al. 2024, §3.3, Fig. 5) predicted its
final models' losses from small runs. The profiles' curvature adds the cost of a run built off the optimum
(after rounding to a shape, say):

    L(N, C) = L_opt(C) · (1 + κ·(ln N − ln N_opt(C))²)

with N_opt(C) Approach 2's law and κ the mean over budgets of each parabola's c2 / L_min (the curvature
relative to the loss, which keeps κ comparable between budgets whose losses differ).

Why beside Approach 3: its L = E + A/N^α + B/D^β has to identify a floor E from the sweep, and a sweep of
small models over a decade or two of compute pins E poorly; a wrong E bends every extrapolation. The
frontier assumes no floor over the range it extrapolates, only that the minima keep falling as they did.
Over a few decades that is the more stable assumption (the study's backtest scores both on held-out runs).

Intervals come from a parametric bootstrap of the runs themselves: every run's loss is redrawn as its
parabola's fitted value plus normal noise of the pooled scale σ (Approach 2's `noise_scale`), every parabola
refitted, and the frontier, N_opt law and κ refitted, `n_bootstrap` times. A prediction interval for one
new run adds that run's own noise, σ·ε. This carries the runs' noise, not a misfit of the power law itself;
with two or three budgets there are too few residuals to estimate one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.isoflop import IsoFlopFit
from analysis.powerlaw import PowerLawFit, fit_power_law, percentile_interval


@dataclass(frozen=True)
class FrontierFit:
    """L_opt(C) = G·C^−gamma through the IsoFLOP minima, plus the relative curvature `kappa` for runs off N_opt.

    `samples` holds one bootstrap replicate per row: ln G, gamma, ln k_n, a, kappa (N_opt = k_n·C^a);
    `n_converged` counts the replicates kept: every parabola opened upward with its vertex among its runs.
    """

    G: float
    gamma: float
    gamma_interval: tuple[float, float]
    kappa: float
    k_n: float
    a: float
    loss_law: PowerLawFit
    budgets: tuple[float, ...]
    loss_opt: tuple[float, ...]
    samples: np.ndarray
    n_converged: int
    noise_scale: float
    level: float
    success: bool
    message: str

    def loss_at_optimum(self, compute) -> np.ndarray:
        """L_opt(C): the loss of a compute-optimal run at C FLOPs."""
        return _frontier_loss(math.log(self.G), self.gamma, compute)

    def predict_loss(self, N, compute) -> np.ndarray:
        """L(N, C): the frontier at C plus the curvature penalty for N away from Approach 2's N_opt(C)."""
        return _frontier_loss(math.log(self.G), self.gamma, compute, N, math.log(self.k_n), self.a, self.kappa)

    def loss_at_optimum_interval(self, compute: float) -> tuple[float, float]:
        """Interval of L_opt(C) from the bootstrap: the law's uncertainty, without a new run's noise."""
        log_g, gamma = self.samples[:, 0], self.samples[:, 1]
        return tuple(percentile_interval(_frontier_loss(log_g, gamma, compute), self.level))

    def prediction_interval(self, N: float, compute: float, *, seed: int = 0) -> tuple[float, float]:
        """Where one new run of N parameters at C FLOPs should land: the bootstrap's L(N, C) plus the run's
        own noise (σ·ε). (nan, nan) without bootstrap replicates."""
        if self.samples.shape[0] < 2:
            return (math.nan, math.nan)
        log_g, gamma, log_k, a, kappa = self.samples.T
        replicates = _frontier_loss(log_g, gamma, compute, N, log_k, a, kappa)
        noise = self.noise_scale * np.random.default_rng(seed).standard_normal(replicates.size)
        return tuple(percentile_interval(replicates + noise, self.level))


def _frontier_loss(log_g, gamma, compute, N=None, log_k=0.0, a=0.0, kappa=0.0):
    """G·C^-γ, times (1 + κ·(ln N − ln N_opt(C))²) when N is given; parameters may be bootstrap arrays."""
    log_c = np.log(np.asarray(compute, dtype=float))
    loss = np.exp(log_g - gamma * log_c)
    if N is None:
        return loss
    off = np.log(np.asarray(N, dtype=float)) - (log_k + a * log_c)
    return loss * (1 + kappa * off**2)


def _parabola_designs(fit: IsoFlopFit):
    """Per included budget: (centre of its log N, design matrix over the kept runs, fitted losses there)."""
    out = []
    for profile in fit.profiles:
        if not profile.included:
            continue
        parabola = profile.parabola
        keep = np.ones(len(profile.n), bool)
        if parabola.dropped is not None:
            keep[parabola.dropped] = False
        u = np.log(profile.n[keep]) - parabola.x_center
        design = np.column_stack([np.ones_like(u), u, u * u])
        out.append((parabola.x_center, design, parabola(np.log(profile.n[keep]))))
    return out


def _line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares intercept and slope of y on x along the last axis (y: replicates × points)."""
    xm = x - x.mean()
    slope = (y * xm).sum(axis=-1) / (xm * xm).sum()
    return y.mean(axis=-1) - slope * x.mean(), slope


def fit_frontier(isoflop: IsoFlopFit, *, n_bootstrap: int = 1000, level: float = 0.95, seed: int = 0) -> FrontierFit:
    """The loss frontier of a fitted Approach 2 (see the module docstring).

    Raises ValueError when Approach 2 has fewer than two budgets with a bracketed minimum (no law to extend).
    """
    if not isoflop.success:
        raise ValueError(f"loss frontier: Approach 2 did not fit ({isoflop.message})")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    used = [p for p in isoflop.profiles if p.included]
    budgets = np.array([p.budget for p in used])
    loss_opt = np.array([p.loss_opt for p in used])
    loss_law = fit_power_law(budgets, loss_opt)
    kappa = float(np.mean([p.parabola.c2 / p.loss_opt for p in used]))

    samples = np.empty((0, 5))
    sigma = isoflop.noise_scale
    notes = []
    if n_bootstrap and math.isfinite(sigma) and sigma > 0:
        rng = np.random.default_rng(seed)
        designs = _parabola_designs(isoflop)
        vertex_u, vertex_loss, curvature = [], [], []
        for _, design, fitted in designs:
            draws = fitted + sigma * rng.standard_normal((n_bootstrap, len(fitted)))
            c0, c1, c2 = np.linalg.lstsq(design, draws.T, rcond=None)[0]
            with np.errstate(divide="ignore", invalid="ignore"):
                vertex_u.append(-c1 / (2 * c2))
                vertex_loss.append(c0 - c1 * c1 / (4 * c2))
            curvature.append(c2)
        centers = np.array([center for center, _, _ in designs])
        vertex_u, vertex_loss, curvature = (np.array(v).T for v in (vertex_u, vertex_loss, curvature))
        # Approach 2's own rule: a budget counts only with an upward parabola whose vertex lies among its runs
        lo = np.array([design[:, 1].min() for _, design, _ in designs])
        hi = np.array([design[:, 1].max() for _, design, _ in designs])
        ok = np.all((curvature > 0) & (vertex_loss > 0) & (vertex_u >= lo) & (vertex_u <= hi), axis=1)
        log_c = np.log(budgets)
        log_g, slope = _line(log_c, np.log(vertex_loss[ok]))
        log_k, a = _line(log_c, centers + vertex_u[ok])
        kappas = np.mean(curvature[ok] / vertex_loss[ok], axis=1)
        samples = np.column_stack([log_g, -slope, log_k, a, kappas])
        if not ok.all():
            notes.append(f"{int((~ok).sum())} of {n_bootstrap} replicates dropped "
                         "(a parabola opened downward or its vertex left the sampled sizes)")
    else:
        notes.append("no bootstrap" if not n_bootstrap else "no interval: Approach 2's noise scale is unavailable")
    gamma_interval = (tuple(percentile_interval(samples[:, 1], level)) if len(samples) >= 2
                      else (math.nan, math.nan))
    message = (f"L_opt = {loss_law.k:.4g}·C^-{-loss_law.p:.4f} through {len(used)} budget minima; "
               f"relative curvature κ = {kappa:.4g}")
    if len(used) == 2:
        notes.append("exact through 2 budgets: the law's own misfit cannot be estimated")
    return FrontierFit(
        G=float(loss_law.k), gamma=float(-loss_law.p), gamma_interval=gamma_interval, kappa=kappa,
        k_n=float(isoflop.k_n), a=float(isoflop.a), loss_law=loss_law,
        budgets=tuple(float(b) for b in budgets), loss_opt=tuple(float(v) for v in loss_opt),
        samples=samples, n_converged=len(samples), noise_scale=float(sigma), level=level, success=True,
        message="; ".join([message] + notes),
    )
