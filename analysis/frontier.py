"""The loss frontier: the lowest loss each compute budget reaches, L_opt(C) = E + G·C^−γ, from the IsoFLOP profiles.

Approach 2 fits a parabola in log N to each budget's runs around its lowest one; its vertex gives N_opt(C) and
its value at the vertex the best loss that budget reaches. A power law with a floor through those minima,
L_opt(C) = E + G·C^−γ (the form Porian et al. 2024 fit for L*(C); DeepSeek LLM, Bi et al. 2024, §3.3, used
its floorless special case), predicts the loss of a compute-optimal run at a larger budget. The profiles'
shape adds the cost of a run built off the optimum (after rounding to a shape, say), Δ = ln N − ln N_opt(C):

    L(N, C) = E + G·C^−γ · S(Δ),   S(Δ) = a·exp(−λ(1−a)Δ) + (1−a)·exp(λaΔ),   λ = sqrt(2κ / (a(1−a)))

with N_opt(C) = k_n·C^a Approach 2's law. Why this shape: in Chinchilla's form at fixed C (D = C/6N),
L − E = A·N^−α + B·D^−β is a sum of two exponentials in ln N, and at the optimum the two terms share the
reducible loss R = L_opt − E in the ratio a : 1 − a, a = β/(α+β) being N_opt's exponent, so
L − E = R·S(Δ) with λ(1−a) = α and λa = β. Two consequences follow that a parabola times L_opt misses:
the curvature at the optimum, ½·R·λ²·a(1−a) = ½αβ·R, is a fixed share of the *reducible* loss, which
shrinks towards the floor as compute grows; and the walls are asymmetric (with a > ½ the small-N wall is
the gentle one). κ is measured, not derived: the mean over budgets of each parabola's c2 / R_i, R_i =
G·C_i^−γ the law's reducible loss there (positive by construction); the floorless law (E = 0) keeps the
curvature a share of the whole loss, as before. a outside (0, 1) is no allocation of Chinchilla's form, and
the shape then takes a = ½ (symmetric).

Notable choices:
- The floor. Without one, a power law through minima that bend towards an irreducible loss extrapolates
  below every floor (on Epoch AI's extraction of Chinchilla's runs, 0.36 nats below Approach 3's E at
  Chinchilla's compute). E + G·C^−γ is fitted by least squares in L (the minima's noise is additive, in nats,
  as Approach 2's pooled σ is), with E ≥ 0. For fixed γ the law is linear in (E, G), so (E, G) are solved in
  closed form and only γ is searched (variable projection, Golub & Pereyra 1973): a grid over γ, then a
  bounded refinement. The same grid scores every bootstrap replicate in one array operation.
- When the floor is identified. E is used only when (1) there are ≥ 4 budgets (three parameters and one
  residual degree of freedom), (2) the fit is interior: E > 0 with the constraint inactive and γ inside its
  grid, and (3) the floor explains the minima significantly better than none: an F-test of the nested
  models (E = 0 against E free, both least squares in L) at the 5% level. The F-test's denominator is the
  residual variance, so it counts the law's misfit, which a noise-only bootstrap interval of E does not:
  on a pure power law with four noisy budgets E came out 0.06 with a bootstrap interval excluding 0.
  Otherwise the floorless law L_opt = G·C^−γ is fitted (least squares in log L, as before) and `has_floor`
  is False with the reason in `message`: extrapolate it with care.

No law in noise: `success` is False, and the message says why, when the minima rise with compute (γ ≤ 0) or
do not fall significantly (a one-sided test at 1%, `analysis.significance.falling_with_compute`).

Intervals come from a parametric bootstrap of the runs themselves: every run's loss in a parabola's window is
redrawn as its fitted value plus normal noise of the pooled scale σ (Approach 2's `noise_scale`), every
parabola refitted, and the frontier, N_opt law and κ refitted, `n_bootstrap` times. A prediction interval for
one new run adds that run's own noise, σ·ε. Where the minima scatter about the law more than that noise
explains (the law's misfit), the replicates' deviations of L_opt are widened by `lack_of_fit`
(`analysis.lack_of_fit`); a run off the optimum adds its cost there, whose uncertainty is mostly N_opt's, and
N_opt's replicates are widened by Approach 2's own factor (`IsoFlopFit.lack_of_fit`), as Approach 2's intervals
are, and not by the frontier's: each law's misfit widens its own part.
Where the floorless law is used but the floor law can be fitted (≥ 3 budgets, minima falling), the intervals
are the union of both laws' (`_unselected_floor`): a law chosen by a test, or with 3 budgets by the rule alone
(the floor law is exact through 3 minima, so nothing tests it), must not be treated as known (post-selection
inference, Leeb & Pötscher 2005; model uncertainty, Draper 1995).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
# scipy.special, not scipy.stats: the same values without scipy.stats' import (~1 s of `scaling fit` under load)
from scipy.special import fdtrc

from analysis.isoflop import IsoFlopFit
from analysis.lack_of_fit import lack_of_fit_factor, widen
from analysis.powerlaw import PowerLawFit, fit_power_law, percentile_interval, replicates_reliable
from analysis.significance import SignificanceTest, falling_with_compute

# γ searched over 1e-3..3 (log-spaced, 1.3% apart, refined between grid points) for the floor law: losses
# fall with compute far more slowly than C^-3, and a γ of 1e-3 is indistinguishable from a floor.
GAMMA_GRID = np.geomspace(1e-3, 3.0, 600)
MIN_BUDGETS_FOR_FLOOR = 4  # to select the floor law: its 3 parameters and 1 residual degree of freedom to test it
MIN_BUDGETS_FOR_FLOOR_LAW = 3  # to fit it at all (exactly, through 3 minima) and hold it in the intervals
FLOOR_TEST_LEVEL = 0.05  # the conventional 5% level of the floor's F-test; not tuned to any data set


@dataclass(frozen=True)
class FloorLaw:
    """L = E + G·C^−gamma fitted to per-budget minima (arrays: one entry per bootstrap replicate, or one).

    `e_at_zero`: the E ≥ 0 constraint was active; `gamma_at_edge`: γ ended at an end of `GAMMA_GRID`;
    `not_falling`: G ≤ 0 (the minima do not fall with compute).
    """

    E: np.ndarray
    log_G: np.ndarray
    gamma: np.ndarray
    e_at_zero: np.ndarray
    gamma_at_edge: np.ndarray
    not_falling: np.ndarray


def _solve_at(gamma, log_c, y):
    """For each row: least-squares (E ≥ 0, G) of y ≈ E + g·exp(−γ·log_c) at that row's γ; (E, g, sse, at_zero)."""
    x = np.exp(-gamma[:, None] * log_c[None, :])
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    sxx, sxy = ((x - xm) ** 2).sum(1), ((x - xm) * (y - ym)).sum(1)
    g = sxy / sxx
    e = ym[:, 0] - g * xm[:, 0]
    at_zero = e < 0
    g = np.where(at_zero, (x * y).sum(1) / (x * x).sum(1), g)
    e = np.where(at_zero, 0.0, e)
    sse = ((y - e[:, None] - g[:, None] * x) ** 2).sum(1)
    return e, g, sse, at_zero


def fit_floor_law(compute, loss, *, refine: bool = True) -> FloorLaw:
    """L_opt = E + G·C^−γ through minima `loss` (shape (n,) or (replicates, n)) at budgets `compute`.

    Least squares in L with E ≥ 0; for fixed γ the law is linear in (E, G), so γ alone is searched: every row
    is scored on `GAMMA_GRID` by two matrix products, then refined (a parabola through the grid minimum and
    its neighbours in log γ, and with `refine` a bounded scalar search for a single row).
    """
    log_c0 = float(np.mean(np.log(compute)))
    log_c = np.log(np.asarray(compute, dtype=float)) - log_c0  # centred: (C/C0)^−γ stays near 1
    y = np.atleast_2d(np.asarray(loss, dtype=float))
    x = np.exp(-np.outer(log_c, GAMMA_GRID))  # (budgets, grid)
    xc = x - x.mean(0)
    yc = y - y.mean(1, keepdims=True)
    sxy, sxx = yc @ xc, (xc * xc).sum(0)
    sse = (yc * yc).sum(1)[:, None] - sxy**2 / sxx
    e = y.mean(1)[:, None] - (sxy / sxx) * x.mean(0)
    yx, xx = y @ x, (x * x).sum(0)
    sse = np.where(e < 0, (y * y).sum(1)[:, None] - yx**2 / xx, sse)  # E < 0: refit through the origin
    best = np.argmin(sse, axis=1)
    edge = (best == 0) | (best == GAMMA_GRID.size - 1)
    inner = np.clip(best, 1, GAMMA_GRID.size - 2)
    rows = np.arange(len(y))
    s_lo, s_mid, s_hi = sse[rows, inner - 1], sse[rows, inner], sse[rows, inner + 1]
    curvature = s_lo - 2 * s_mid + s_hi
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature > 0, 0.5 * (s_lo - s_hi) / curvature, 0.0)
    step = math.log(GAMMA_GRID[1] / GAMMA_GRID[0])
    log_gamma = np.where(edge, np.log(GAMMA_GRID[best]), np.log(GAMMA_GRID[inner]) + np.clip(shift, -1, 1) * step)
    if refine and len(y) == 1 and not edge[0]:
        centre = float(np.log(GAMMA_GRID[best[0]]))
        result = minimize_scalar(lambda lg: _solve_at(np.array([math.exp(lg)]), log_c, y)[2][0],
                                 bounds=(centre - step, centre + step), method="bounded", options={"xatol": 1e-10})
        log_gamma = np.array([result.x])
    gamma = np.exp(log_gamma)
    e, g, _, at_zero = _solve_at(gamma, log_c, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_g = np.log(np.where(g > 0, g, np.nan)) + gamma * log_c0
    return FloorLaw(E=e, log_G=log_g, gamma=gamma, e_at_zero=at_zero, gamma_at_edge=edge, not_falling=~(g > 0))


@dataclass(frozen=True)
class FrontierFit:
    """L_opt(C) = E + G·C^−gamma through the IsoFLOP minima, plus the shape `kappa`, `a` for runs off N_opt.

    `has_floor` says whether the floor E was identified (see the module docstring); without it E = 0 and the
    floorless power law is used, and `message` says why. `E_interval` is the bootstrap's (NaN without a floor or
    replicates). `loss_law` is always the floorless power law through the minima (log-log least squares).
    `samples` holds one bootstrap replicate per row: ln G, gamma, ln k_n, a, kappa, E (N_opt = k_n·C^a);
    `n_converged` counts the replicates kept of the `n_bootstrap` drawn: every parabola opened upward with its
    vertex among its runs; `interval_reliable` is False when most were dropped (`powerlaw.replicates_reliable`).
    `significance`: the test that the minima fall with compute (`analysis.significance`); `success` is False
    without it. `lack_of_fit`: the factor the bootstrap's deviations are widened by (`analysis.lack_of_fit`).
    Without a floor but with ≥ 3 falling minima, `floor_law` (E, G, γ), `floor_samples` (rows as `samples`) and
    `floor_lack_of_fit` hold the floor law that was fitted but not selected (by its F-test, or with 3 budgets,
    where it is exact and untestable, by the ≥ 4-budget rule); intervals are the union over both laws, each
    widened by `floor_lack_of_fit` (then also `lack_of_fit`): the misfit neither law explains, counted once.
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
    E: float = 0.0
    E_interval: tuple[float, float] = (math.nan, math.nan)
    has_floor: bool = False
    n_bootstrap: int = 0
    significance: SignificanceTest | None = None
    lack_of_fit: float = 1.0
    floor_law: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    floor_samples: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 6)))
    floor_lack_of_fit: float = 1.0

    @property
    def interval_reliable(self) -> bool:
        """Whether the bootstrap kept enough replicates for its intervals to mean their level."""
        return replicates_reliable(self.n_converged, self.n_bootstrap)

    def loss_at_optimum(self, compute) -> np.ndarray:
        """L_opt(C): the loss of a compute-optimal run at C FLOPs."""
        return _frontier_loss(math.log(self.G), self.gamma, compute, E=self.E)

    def predict_loss(self, N, compute) -> np.ndarray:
        """L(N, C): the frontier at C, its reducible part scaled by the profile's shape for N away from N_opt(C)."""
        return _frontier_loss(math.log(self.G), self.gamma, compute, N, math.log(self.k_n), self.a, self.kappa,
                              E=self.E)

    def _laws(self):
        """(bootstrap samples, point (E, G, γ), lack-of-fit factor) of the selected law and, where a floor was
        fitted but not selected, of the floor law: each with ≥ 2 replicates."""
        laws = [(self.samples, (self.E, self.G, self.gamma), self.lack_of_fit),
                (self.floor_samples, self.floor_law, self.floor_lack_of_fit)]
        return [law for law in laws if len(law[0]) >= 2]

    def loss_at_optimum_interval(self, compute: float) -> tuple[float, float]:
        """Interval of L_opt(C) from the bootstrap: the law's uncertainty, without a new run's noise; where a
        floor was fitted but not selected, the union with the floor law's interval (`floor_samples`)."""
        bands = []
        for samples, (e, g, gamma), factor in self._laws():
            point = _frontier_loss(math.log(g), gamma, compute, E=e)
            replicates = _frontier_loss(samples[:, 0], samples[:, 1], compute, E=samples[:, 5])
            bands.append(percentile_interval(widen(replicates, point, factor), self.level))
        return _union(bands)

    def prediction_interval(self, N: float, compute: float, *, seed: int = 0) -> tuple[float, float]:
        """Where one new run of N parameters at C FLOPs should land: the bootstrap's L(N, C) plus the run's
        own noise (σ·ε), over the laws of `loss_at_optimum_interval`. (nan, nan) without bootstrap replicates."""
        bands = []
        for samples, (e, g, gamma), factor in self._laws():
            log_g, gammas, log_k, a, kappa, es = samples.T
            # each law widened by its own misfit: L_opt's deviations by the frontier's factor; the cost of N off
            # N_opt(C) through N_opt's replicates, which carry Approach 2's (`_bootstrap`), not widened again
            at_optimum = _frontier_loss(log_g, gammas, compute, E=es)
            off_optimum = _frontier_loss(log_g, gammas, compute, N, log_k, a, kappa, E=es) - at_optimum
            replicates = widen(at_optimum, _frontier_loss(math.log(g), gamma, compute, E=e), factor) + off_optimum
            noise = self.noise_scale * np.random.default_rng(seed).standard_normal(replicates.size)
            bands.append(percentile_interval(replicates + noise, self.level))
        return _union(bands)


def _union(bands) -> tuple[float, float]:
    """The smallest interval holding every band ((nan, nan) without any)."""
    if not bands:
        return (math.nan, math.nan)
    return (float(min(b[0] for b in bands)), float(max(b[1] for b in bands)))


def _frontier_loss(log_g, gamma, compute, N=None, log_k=0.0, a=0.5, kappa=0.0, E=0.0):
    """E + G·C^-γ, its reducible part G·C^-γ times the shape S(ln N − ln N_opt(C)) when N is given (module
    docstring); parameters may be bootstrap arrays."""
    log_c = np.log(np.asarray(compute, dtype=float))
    reducible = np.exp(log_g - gamma * log_c)
    if N is None:
        return E + reducible
    off = np.log(np.asarray(N, dtype=float)) - (log_k + a * log_c)
    return E + reducible * profile_shape(off, a, kappa)


def profile_shape(off, a, kappa):
    """S(Δ) = a·e^(−λ(1−a)Δ) + (1−a)·e^(λaΔ), λ = sqrt(2κ/(a(1−a))): S(0) = 1, S'(0) = 0, S''(0) = 2κ, the
    shape of Chinchilla's form at fixed compute in Δ = ln N − ln N_opt (module docstring); a outside (0, 1)
    takes ½."""
    a = np.asarray(a, dtype=float)
    a = np.where((a > 0) & (a < 1), a, 0.5)
    lam = np.sqrt(2 * np.asarray(kappa, dtype=float) / (a * (1 - a)))
    return a * np.exp(-lam * (1 - a) * off) + (1 - a) * np.exp(lam * a * off)


def relative_curvature(curvatures, budgets, log_g, gamma) -> np.ndarray:
    """κ: the mean over budgets of each parabola's c2 over the law's reducible loss there, G·C_i^−γ (module
    docstring). curvatures: (budgets,) or (replicates, budgets); log_g, gamma: scalars or one per replicate."""
    reducible = np.exp(np.asarray(log_g, dtype=float)[..., None]
                       - np.asarray(gamma, dtype=float)[..., None] * np.log(np.asarray(budgets, dtype=float)))
    return np.mean(np.asarray(curvatures, dtype=float) / reducible, axis=-1)


def _parabola_designs(fit: IsoFlopFit):
    """Per included budget: (centre of its log N, design matrix over the runs its parabola kept, fitted losses)."""
    out = []
    for profile in fit.profiles:
        if not profile.included:
            continue
        parabola = profile.parabola
        log_n = np.log(profile.n[profile.fitted])
        u = log_n - parabola.x_center
        design = np.column_stack([np.ones_like(u), u, u * u])
        out.append((parabola.x_center, design, parabola(log_n)))
    return out


def _minimum_variances(fit: IsoFlopFit) -> np.ndarray:
    """Delta-method variance of each included budget's minimum value c0 − c1²/(4c2) under the pooled noise σ:
    its gradient in (c0, c1, c2) is g = (1, u*, u*²) at the vertex u*, so var = σ²·gᵀ(XᵀX)⁻¹g."""
    used = [p for p in fit.profiles if p.included]
    variances = []
    for profile, (center, design, _) in zip(used, _parabola_designs(fit)):
        u = profile.parabola.vertex - center
        g = np.array([1.0, u, u * u])
        variances.append(fit.noise_scale**2 * float(g @ np.linalg.pinv(design.T @ design) @ g))
    return np.array(variances)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares intercept and slope of y on x along the last axis (y: replicates × points)."""
    xm = x - x.mean()
    slope = (y * xm).sum(axis=-1) / (xm * xm).sum()
    return y.mean(axis=-1) - slope * x.mean(), slope


def _replicate_minima(isoflop: IsoFlopFit, n_bootstrap: int, seed: int):
    """Bootstrap replicates of every included budget's parabola: (vertex log N, vertex loss, c2), each
    replicates × budgets, and the mask of replicates in which every parabola opened upward inside its runs."""
    rng = np.random.default_rng(seed)
    designs = _parabola_designs(isoflop)
    vertex_u, vertex_loss, curvature = [], [], []
    for _, design, fitted in designs:
        draws = fitted + isoflop.noise_scale * rng.standard_normal((n_bootstrap, len(fitted)))
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
    return centers + vertex_u, vertex_loss, curvature, ok


def floor_f_test(compute, loss) -> tuple[float, float]:
    """F statistic and p-value of the floor: E + G·C^−γ against G·C^−γ (E = 0), both least squares in L.

    F = (SSE₀ − SSE₁) / (SSE₁ / (n − 3)) on (1, n − 3) degrees of freedom; the residuals carry the minima's
    noise and the law's misfit alike, which is what a floor must beat."""
    y = np.asarray(loss, dtype=float)
    log_c = np.log(np.asarray(compute, dtype=float))
    log_c = log_c - log_c.mean()
    sse1 = _solve_at(fit_floor_law(compute, y).gamma, log_c, y[None, :])[2][0]
    x = np.exp(-np.outer(log_c, GAMMA_GRID))
    sse0_grid = (y * y).sum() - (y @ x) ** 2 / (x * x).sum(0)
    centre = float(np.log(GAMMA_GRID[np.argmin(sse0_grid)]))
    step = math.log(GAMMA_GRID[1] / GAMMA_GRID[0])

    def sse0(log_gamma):
        xg = np.exp(-math.exp(log_gamma) * log_c)
        return float((y * y).sum() - (y @ xg) ** 2 / (xg @ xg))

    best0 = minimize_scalar(sse0, bounds=(centre - step, centre + step), method="bounded").fun
    dof = len(y) - 3
    if dof < 1:
        return math.nan, math.nan
    f = max(best0 - sse1, 0.0) / max(sse1 / dof, 1e-300)
    return float(f), float(fdtrc(1, dof, f))  # the F distribution's survival function


def _floor_reasons(budgets, loss_opt, floor: FloorLaw) -> list[str]:
    """Why the minima do not identify a floor (empty when they do)."""
    if len(budgets) < MIN_BUDGETS_FOR_FLOOR:
        return [f"{len(budgets)} budget minima (a floor needs ≥ {MIN_BUDGETS_FOR_FLOOR})"]
    if floor.not_falling[0]:
        return ["the minima do not fall with compute"]
    if floor.e_at_zero[0]:
        return ["the best floor is E = 0"]
    if floor.gamma_at_edge[0]:
        return [f"γ = {floor.gamma[0]:.3g} is at the end of its search range"]
    f, p = floor_f_test(budgets, loss_opt)
    if not p < FLOOR_TEST_LEVEL:
        return [f"E = {floor.E[0]:.4g} does not fit the minima significantly better than none "
                f"(F = {f:.3g}, p = {p:.2g} ≥ {FLOOR_TEST_LEVEL})"]
    return []


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
    curvatures = np.array([p.parabola.c2 for p in used])
    loss_law = fit_power_law(budgets, loss_opt)
    floor = fit_floor_law(budgets, loss_opt)
    reasons = _floor_reasons(budgets, loss_opt, floor)

    sigma = isoflop.noise_scale
    replicates, notes = _bootstrap(isoflop, budgets, n_bootstrap, seed)
    has_floor = not reasons
    if has_floor:
        E, G, gamma = float(floor.E[0]), math.exp(floor.log_G[0]), float(floor.gamma[0])
        form = f"L_opt = {E:.4g} + {G:.4g}·C^-{gamma:.4f}"
    else:
        E, G, gamma = 0.0, float(loss_law.k), float(-loss_law.p)
        form = f"L_opt = {G:.4g}·C^-{gamma:.4f} (no floor: {'; '.join(reasons)})"
    kappa = float(relative_curvature(curvatures, budgets, math.log(G), gamma))
    samples, E_interval = _law_samples(budgets, replicates, has_floor, level)
    finite = np.all(np.isfinite(samples), axis=1)
    if not finite.all():
        notes.append(f"{int((~finite).sum())} replicates dropped (their minima did not fall with compute)")
    samples = samples[finite]
    gamma_interval = (tuple(percentile_interval(samples[:, 1], level)) if len(samples) >= 2
                      else (math.nan, math.nan))
    message = f"{form} through {len(used)} budget minima; curvature κ = {kappa:.4g} of the reducible loss"
    if len(used) == 2:
        notes.append("exact through 2 budgets: the law's own misfit cannot be estimated")
    variances = _minimum_variances(isoflop)
    significance = falling_with_compute(budgets, loss_opt, variances)
    problem = _no_scaling(significance, gamma)
    alternative = {}
    if not has_floor and replicates is not None:
        alternative = _unselected_floor(budgets, loss_opt, floor, replicates, variances, level)
    if alternative:
        why = ("exact through 3 budgets, so not testable" if len(budgets) < MIN_BUDGETS_FOR_FLOOR
               else "not selected by its F-test")
        notes.append(f"intervals also hold the floor law E = {alternative['floor_law'][0]:.4g} + "
                     f"G·C^-γ, fitted but {why}")
        # the floorless law's excess scatter is what the floor law explains, and the floor law is in the interval:
        # both bands are widened by what neither law explains (the floor law's factor), not counted twice
        lack_of_fit = alternative["floor_lack_of_fit"]
    else:
        residuals = loss_opt - _frontier_loss(math.log(G), gamma, budgets, E=E)
        lack_of_fit = lack_of_fit_factor(residuals, variances, 3 if has_floor else 2, level)
    if lack_of_fit > 1:
        notes.append(f"intervals widened ×{lack_of_fit:.3g}: the minima scatter about the "
                     f"{'floor law' if alternative else 'law'} more than the runs' noise explains "
                     "(lack of fit, analysis.lack_of_fit)")
    return FrontierFit(
        G=G, gamma=gamma, gamma_interval=gamma_interval, kappa=kappa,
        k_n=float(isoflop.k_n), a=float(isoflop.a), loss_law=loss_law,
        budgets=tuple(float(b) for b in budgets), loss_opt=tuple(float(v) for v in loss_opt),
        samples=samples, n_converged=len(samples), noise_scale=float(sigma), level=level, success=not problem,
        message="; ".join([problem] * bool(problem) + [message] + notes), E=E, E_interval=E_interval,
        has_floor=has_floor, n_bootstrap=int(n_bootstrap) if replicates is not None else 0,
        significance=significance, lack_of_fit=lack_of_fit, **alternative,
    )


def _bootstrap(isoflop: IsoFlopFit, budgets: np.ndarray, n_bootstrap: int, seed: int):
    """Replicates of the budget minima drawn from Approach 2's noise, as (vertex loss and c2: replicates × budgets;
    log k, a: one per replicate), or None when there is no bootstrap; and the notes saying what was dropped."""
    sigma = isoflop.noise_scale
    if not (n_bootstrap and math.isfinite(sigma) and sigma > 0):
        return None, ["no bootstrap" if not n_bootstrap else "no interval: Approach 2's noise scale is unavailable"]
    log_n_opt, vertex_loss, curvature, ok = _replicate_minima(isoflop, n_bootstrap, seed)
    log_k, a = _line(np.log(budgets), log_n_opt[ok])
    # N_opt(C) is Approach 2's law, so it carries Approach 2's uncertainty as Approach 2 reports it: widened where
    # the vertices scatter about the law more than their noise explains (`IsoFlopFit.lack_of_fit`)
    log_k = widen(log_k, math.log(isoflop.k_n), isoflop.lack_of_fit)
    a = widen(a, isoflop.a, isoflop.lack_of_fit)
    notes = [] if ok.all() else [f"{int((~ok).sum())} of {n_bootstrap} replicates dropped "
                                 "(a parabola opened downward or its vertex left the sampled sizes)"]
    return (vertex_loss[ok], curvature[ok], log_k, a), notes


def _law_samples(budgets: np.ndarray, replicates, has_floor: bool, level: float):
    """The selected law refitted to each replicate's minima, as rows (log G, γ, log k, a, κ, E), and E's interval
    (NaN without a floor, or with fewer than two replicates)."""
    samples, E_interval = np.empty((0, 6)), (math.nan, math.nan)
    if replicates is None:
        return samples, E_interval
    if has_floor:
        if len(replicates[0]) >= 2:
            floor_samples = fit_floor_law(budgets, replicates[0], refine=False)
            E_interval = tuple(percentile_interval(floor_samples.E, level))
            samples = _sample_rows(budgets, replicates, floor_samples.log_G, floor_samples.gamma, floor_samples.E)
    else:
        log_g, slope = _line(np.log(budgets), np.log(replicates[0]))
        samples = _sample_rows(budgets, replicates, log_g, -slope, np.zeros(len(log_g)))
    return samples, E_interval


def _sample_rows(budgets, replicates, log_g, gamma, E) -> np.ndarray:
    """Rows (log G, γ, log k, a, κ, E): each replicate's law with its N_opt law and its κ against that law."""
    _, curvature, log_k, a = replicates
    kappa = relative_curvature(curvature, budgets, log_g, gamma)
    return np.column_stack([log_g, gamma, log_k, a, kappa, E])


def _unselected_floor(budgets, loss_opt, floor: FloorLaw, replicates, variances, level: float) -> dict:
    """The floor law's point, bootstrap samples and lack-of-fit factor where it could be fitted (≥ 3 budgets,
    minima falling) but was not selected; {} otherwise. Why keep it: an interval computed as if the law a test
    selected were known undercovers (post-selection inference; Leeb & Pötscher 2005), and here the floorless
    law, selected when the floor's test is not significant, runs below a true floor the further out it
    extrapolates, so the interval must hold either law. With 3 budgets the floor law passes exactly through the
    minima (0 residual degrees of freedom): the data cannot reject it, nor test it against the floorless law,
    so the floorless law is chosen by the rule (≥ 4 budgets to select a floor), not by the data, and the same
    argument holds a fortiori (Draper 1995: an interval conditioned on one of the models the data cannot tell
    apart omits the model uncertainty). Its lack-of-fit factor is then 1: no residual is left to measure a misfit."""
    if len(budgets) < MIN_BUDGETS_FOR_FLOOR_LAW or floor.not_falling[0]:
        return {}
    reps = fit_floor_law(budgets, replicates[0], refine=False)
    samples = _sample_rows(budgets, replicates, reps.log_G, reps.gamma, reps.E)
    samples = samples[np.all(np.isfinite(samples), axis=1)]
    e, g, gamma = float(floor.E[0]), math.exp(floor.log_G[0]), float(floor.gamma[0])
    residuals = loss_opt - _frontier_loss(math.log(g), gamma, budgets, E=e)
    return {"floor_law": (e, g, gamma), "floor_samples": samples,
            "floor_lack_of_fit": lack_of_fit_factor(residuals, variances, 3, level)}


def _no_scaling(significance: SignificanceTest, gamma: float) -> str:
    """Why the frontier is no law (empty when it is one): its minima rise with compute, or do not fall
    significantly (`analysis.significance.falling_with_compute`)."""
    if not gamma > 0:
        return (f"the loss rises with compute (γ = {gamma:.3g}): the budgets' minima do not scale "
                f"({significance.message})")
    if significance.failed:
        return (f"the runs show no significant scaling: the budgets' minima do not fall significantly with compute "
                f"({significance.message})")
    return ""
