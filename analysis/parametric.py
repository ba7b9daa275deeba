"""Approach 3 of Hoffmann et al. (2022): fit L(N, D) = E + A/N^α + B/D^β to every run at once.

Following Hoffmann et al. (2022, §3.3 and App. D.2) as corrected by Besiroglu et al. (2024, "Chinchilla
Scaling: A replication attempt"): with e = log E, a = log A, b = log B,

    log L̂(N, D) = logsumexp(e, a − α·log N, b − β·log D)

and the parameters minimise Σ_i w_i · Huber_δ(log L̂_i − log L_i), δ = 10⁻³, SUMMED over runs (averaging,
as in Chinchilla's code, shrinks the objective until L-BFGS-B's tolerance stops it early), by L-BFGS from
the Chinchilla grid of initialisations: α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}
(4,500 starts); the best converged end point wins.

How it is fast (benchmarks/fit_speed.py measures it against one scipy call per start):
1. the objective and its analytic gradient are vectorised over starts: one (starts × runs) array op
   evaluates all 4,500 grid points;
2. a batched, projected L-BFGS (`analysis.lbfgs.minimize_batch`) runs from the `n_starts` best grid
   points at once;
3. the optimiser works on centred logs: a − α·log N = (a − α·m_N) − α·(log N − m_N), m_N the mean log N
   (likewise for D), which removes the near-collinearity of a and α (log N ≈ 10-25) and cuts iterations
   several-fold; bounds touch only e, α, β, which centring leaves unchanged.
The best converged end point is the answer; agreement of the best few is a diagnostic. Tests and the
benchmark check that this reaches the optimum that scipy's L-BFGS-B reaches when called from every one
of the 4,500 grid starts.

Beside the grid, variable projection (`analysis.varpro`) profiles (α, β) with (E, A, B) solved exactly
by non-negative least squares; its best local minima are polished in the same batch on the same Huber
objective, and the lower end point wins, ties to the grid (`search`, docs/methods.md).

Honesty: the result's `success` is False, and `message` says why, when the best run did not converge, a
parameter sits on its bound (`BOUNDS`: wide enough that an interior optimum never touches them), or the
best few converged starts reach different parameters at nearly the same objective (not identified), or the
law explains the losses no better than a constant (`analysis.significance`: an F-test at 1%), or an end point
where a term is negligible for every run (`flag_degenerate`) fits better than every converged one. Then the
runs prefer the law without that term (on Porian et al.'s Kaplan setting without its largest budget, E → 0 at
half the objective of the best end point with a floor), the converged one is only a worse local minimum, and
which of the two a search meets first can turn on rounding (it did, between two BLAS builds); so the answer is
the better end point, reported as not identified, the same whichever was met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from analysis import varpro
from analysis.compute_per_token import ComputePerToken, split_compute
from analysis.lbfgs import NOT_CONVERGED as LBFGS_NOT_CONVERGED
from analysis.lbfgs import BatchResult, concat_batches, minimize_batch
from analysis.significance import SignificanceTest, law_against_constant
from analysis.table import usable_runs

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
LOG_NAMES = ("e", "a", "b", "alpha", "beta")  # the optimised vector: (log E, log A, log B, α, β)
HUBER_DELTA = 1e-3
# (lower, upper) for (e, a, b, α, β): E from 2e-9 to 2e4 nats, α and β in [0, 10], a and b free (the data
# bound them: A/N^α ≤ L). A fit that ends on a bound is degenerate (no floor in the data, a term that does
# not decay, ...) and is reported as such.
BOUNDS = (np.array([-20.0, -np.inf, -np.inf, 0.0, 0.0]), np.array([10.0, np.inf, np.inf, 10.0, 10.0]))


@dataclass(frozen=True, kw_only=True)
class ChinchillaParams:
    """Parameters of L(N, D) = E + A/N^α + B/D^β, named as in Hoffmann et al. (2022)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __post_init__(self):
        for name in PARAM_NAMES:
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.E < 0:
            raise ValueError(f"E must be ≥ 0 (irreducible loss), got {self.E}")
        for name in ("A", "B", "alpha", "beta"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_log(cls, x) -> ChinchillaParams:
        """From the optimised vector (log E, log A, log B, α, β)."""
        e, a, b, alpha, beta = (float(v) for v in x)
        return cls(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a: β/(α+β)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b: α/(α+β)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """G = (αA / (βB))^(1/(α+β)), evaluated in log space."""
        return math.exp((math.log(self.alpha * self.A) - math.log(self.beta * self.B)) / (self.alpha + self.beta))

    def loss(self, N, D) -> np.ndarray:
        """L(N, D) (`predict_loss`): with `optimum`, what a simulated sweep asks of a law (`analysis.simulate`)."""
        return predict_loss(self, N, D)

    def optimum(self, C) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) under C = 6·N·D (`compute_optimal`)."""
        return compute_optimal(self, C)


# Hoffmann et al. (2022), Approach 3 (their eq. 10 and Table A3 fit).
CHINCHILLA_2022 = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def predict_loss(params: ChinchillaParams, N, D) -> np.ndarray:
    """L(N, D) = E + A/N^α + B/D^β, as exp(logsumexp(log E, log A − α·log N, log B − β·log D))."""
    log_n, log_d = np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))
    with np.errstate(divide="ignore"):  # E = 0 gives log E = −inf, which logaddexp handles
        log_e = np.log(params.E)
    terms = np.logaddexp(math.log(params.A) - params.alpha * log_n, math.log(params.B) - params.beta * log_d)
    return np.exp(np.logaddexp(log_e, terms))


def compute_optimal(params: ChinchillaParams, C, per_token: ComputePerToken | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (N_opt, D_opt) minimising L(N, D) subject to C = 6·N·D (Hoffmann et al. 2022, eq. 4):

        N_opt(C) = G · (C/6)^a,   D_opt(C) = G⁻¹ · (C/6)^b,
        G = (αA / (βB))^(1/(α+β)),  a = β/(α+β),  b = α/(α+β),

    evaluated in log space. 6·N_opt·D_opt = C because a + b = 1. Under another compute per token f
    (`analysis.compute_per_token`) the constraint is C = f(N)·D and the minimum is found numerically.
    """
    if per_token is not None and not per_token.is_6n:
        return split_compute(math.log(params.A), params.alpha, math.log(params.B), params.beta, C, per_token)
    log_c6 = np.log(np.asarray(C, dtype=float) / 6.0)
    log_g = math.log(params.G)
    return np.exp(log_g + params.a * log_c6), np.exp(-log_g + params.b * log_c6)


def start_grid(*, fix_E: float | None = None) -> np.ndarray:
    """The Chinchilla grid of initial (e, a, b, α, β): 4,500 rows (900 when E is fixed)."""
    e = np.array([math.log(fix_E)]) if fix_E is not None else np.arange(-1.0, 1.01, 0.5)
    ab = np.arange(0.0, 25.1, 5.0)
    exponents = np.arange(0.0, 2.01, 0.5)
    mesh = np.meshgrid(e, ab, ab, exponents, exponents, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


# ----------------------------------------------------------------------------------- objective

@dataclass(frozen=True)
class LogData:
    """The runs in log space: log N, log D, log L, each of shape (n_runs,)."""

    log_n: np.ndarray
    log_d: np.ndarray
    log_loss: np.ndarray


# Vectors × runs per block of `huber_objective` and `huber_terms`: each of their dozen temporaries is then
# 128 KB and stays in a core's L2 cache, where one (2,000 × 240) temporary per operation, allocated afresh
# in main memory, made the bootstrap's objective ~4× slower (benchmarks/fit_speed.py). A vector's value
# comes from the same operations in any block: blocking changes at most the rounding of the BLAS
# matrix-vector products (a threaded BLAS may split a product differently by its shape).
BLOCK_ELEMENTS = 16_384


def _blocks(n_vectors: int, n_runs: int):
    step = max(1, BLOCK_ELEMENTS // max(n_runs, 1))
    return (slice(lo, lo + step) for lo in range(0, n_vectors, step))


def huber_objective(theta: np.ndarray, data: LogData, weights: np.ndarray, delta: float = HUBER_DELTA, *,
                    rows: np.ndarray | None = None):
    """Σ_i w_i·Huber_δ(r_i) and its gradient for many parameter vectors at once.

    theta: (S, 5) rows of (e, a, b, α, β); weights: (n,) shared, or (S, n) one row per vector, or (R, n)
    with `rows` (S,) naming each vector's row (a bootstrap's resamples, each shared by several starts).
    With `rows`, data may also hold one row of runs per resample ((R, m) arrays: the runs it drew).
    r_i = logsumexp(e, a − α·log N_i, b − β·log D_i) − log L_i. Returns f (S,) and grad (S, 5).
    Huber_δ(r) = r²/2 for |r| ≤ δ, else δ·(|r| − δ/2); with h' = clip(r, −δ, δ) it is h'·(r − h'/2).
    Evaluated in cache-sized blocks of vectors (`BLOCK_ELEMENTS`).
    """
    theta, weights = np.asarray(theta, dtype=float), np.asarray(weights, dtype=float)
    f, grad = np.empty(len(theta)), np.empty((len(theta), 5))
    per_row = data.log_n.ndim == 2
    if per_row and rows is None:
        raise ValueError("data with one row of runs per resample needs `rows`, the resample of each vector")
    for block in _blocks(len(theta), data.log_n.shape[-1]):
        w = weights if weights.ndim == 1 else weights[block] if rows is None else weights[rows[block]]
        d = LogData(*(v[rows[block]] for v in (data.log_n, data.log_d, data.log_loss))) if per_row else data
        f[block], grad[block] = _huber_block(theta[block], d, w, delta)
    return f, grad


def _huber_block(theta: np.ndarray, data: LogData, weights: np.ndarray, delta: float):
    """`huber_objective` on one block of vectors (data shared (n,), or one row per vector (S, m))."""
    e, a, b, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    t_n = a - alpha * data.log_n  # (S, n)
    t_d = b - beta * data.log_d
    top = np.maximum(np.maximum(e, t_n), t_d)  # logsumexp with the largest term factored out
    x_e, x_n, x_d = np.exp(e - top), np.exp(t_n - top), np.exp(t_d - top)
    total = x_e + x_n + x_d
    r = top + np.log(total) - data.log_loss
    h_prime = np.clip(r, -delta, delta)
    f = np.sum(weights * h_prime * (r - 0.5 * h_prime), axis=-1)
    c = weights * h_prime / total  # ∂f/∂(each exp term), before multiplying by the term
    c_n, c_d = c * x_n, c * x_d
    if data.log_n.ndim == 1:
        grad_alpha, grad_beta = c_n @ data.log_n, c_d @ data.log_d
    else:
        grad_alpha, grad_beta = np.einsum("ij,ij->i", c_n, data.log_n), np.einsum("ij,ij->i", c_d, data.log_d)
    grad = np.stack([np.sum(c * x_e, axis=-1), np.sum(c_n, axis=-1), np.sum(c_d, axis=-1),
                     -grad_alpha, -grad_beta], axis=1)
    return f, grad


def huber_terms(theta: np.ndarray, data: LogData, delta: float = HUBER_DELTA) -> np.ndarray:
    """Unweighted per-run Huber values, shape (S, n): the objective at theta for weights w is terms @ w,
    which is how a bootstrap re-ranks the whole grid for 1,000 resamples in one matrix product.
    Evaluated in cache-sized blocks of vectors (`BLOCK_ELEMENTS`)."""
    theta = np.asarray(theta, dtype=float)
    out = np.empty((len(theta), data.log_n.size))
    for block in _blocks(len(theta), data.log_n.size):
        e, a, b, alpha, beta = (theta[block, i : i + 1] for i in range(5))
        log_pred = np.logaddexp(e, np.logaddexp(a - alpha * data.log_n, b - beta * data.log_d))
        r = log_pred - data.log_loss
        h_prime = np.clip(r, -delta, delta)
        out[block] = h_prime * (r - 0.5 * h_prime)
    return out


def term_shares(theta: np.ndarray, data: LogData, used: np.ndarray | None = None) -> np.ndarray:
    """Largest share of L̂ that each term (E, A/N^α, B/D^β) takes over the runs (`used` mask), shape (S, 3).

    An end point where a term's largest share is tiny sits on a plateau: that term's parameters barely
    move the objective, its gradient vanishes, and L-BFGS stops there without having fitted it.
    """
    e, a, b, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    logs = np.stack(np.broadcast_arrays(e, a - alpha * data.log_n, b - beta * data.log_d))  # (3, S, n)
    shares = np.exp(logs - np.logaddexp.reduce(logs, axis=0))
    if used is not None:
        shares = shares[:, :, used]
    return np.max(shares, axis=2).T


DEGENERATE = 5  # an extra status for minimize_batch results: see flag_degenerate
NOT_CONVERGED = LBFGS_NOT_CONVERGED | {
    DEGENERATE: "a term of L(N, D) is negligible for every run (its parameters are not identified)"}
NEGLIGIBLE_SHARE = 1e-5  # a term below this fraction of L for every run moves log L by < 1e-5: unidentified


# ----------------------------------------------------------------------------------- the fit

AGREE_RTOL = 1e-3  # end points "agree" when every parameter (e, a, b, α, β) matches to 0.1%
FLAT_RTOL = 1e-4   # ...and "tie" when their objectives are this close: different parameters, same fit


@dataclass(frozen=True)
class ParametricFit:
    """Approach 3's answer. Parameters named as in Hoffmann et al. (2022); a, b the exponents of
    N_opt ∝ C^a and D_opt ∝ C^b; G the allocation constant (see `compute_optimal`).

    Diagnostics: `n_starts` grid points ranked, `n_lbfgs` optimised from the best of them, `n_converged`
    of those converged; `top_objectives` / `top_spread` of the best `n_agree` converged end points
    (largest relative parameter difference from the best) and `starts_agree`; `on_bound` names the
    parameters at a bound of `BOUNDS`. `x` is the optimised vector (log E, log A, log B, α, β),
    `residuals` are log L̂ − log L per run, `objective` the summed Huber loss at x. `objective_grid` and
    `objective_varpro`: the best converged objective from the grid's starts and from the variable-projection
    profile's (NaN where that search was not run or nothing converged); `best_search` the one x came from.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    a: float
    b: float
    G: float
    x: np.ndarray
    objective: float
    residuals: np.ndarray
    n_runs: int
    n_starts: int
    n_lbfgs: int
    n_converged: int
    top_objectives: tuple[float, ...]
    top_spread: float
    starts_agree: bool
    on_bound: tuple[str, ...]
    fixed_E: bool
    delta: float
    objective_grid: float
    objective_varpro: float
    best_search: str
    success: bool
    message: str
    significance: SignificanceTest | None = None

    @property
    def params(self) -> ChinchillaParams:
        """The fitted parameters (ValueError if α or β ended at 0, where no allocation law exists)."""
        return ChinchillaParams(E=self.E, A=self.A, B=self.B, alpha=self.alpha, beta=self.beta)

    @property
    def noise_residuals(self) -> np.ndarray:
        """The residuals a new run's noise is drawn from: scaled by sqrt(n/(n − k)), n runs and k free parameters,
        because a fit's raw residuals scatter less than the runs' noise, by about sqrt((n − k)/n) (0.82 for 15
        runs; Davison & Hinkley 1997, §6.2.3, modified residuals with the average leverage k/n)."""
        n, k = self.residuals.size, 4 if self.fixed_E else 5
        return self.residuals * math.sqrt(n / (n - k)) if n > k else self.residuals

    def predict_loss(self, N, D) -> np.ndarray:
        """L(N, D) under the fitted parameters (defined even for a degenerate fit with α or β = 0)."""
        e, a, b, alpha, beta = self.x
        log_n, log_d = np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))
        return np.exp(np.logaddexp(e, np.logaddexp(a - alpha * log_n, b - beta * log_d)))

    def compute_optimal(self, C, per_token: ComputePerToken | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) at compute C under C = f(N)·D (C = 6·N·D when per_token is None)."""
        return compute_optimal(self.params, C, per_token)

    def to_dict(self) -> dict:
        """JSON-ready: parameters, exponents and diagnostics (arrays left out)."""
        keys = ("E", "A", "B", "alpha", "beta", "a", "b", "G", "objective", "n_runs", "n_starts", "n_lbfgs",
                "n_converged", "top_spread", "starts_agree", "fixed_E", "delta", "objective_grid", "objective_varpro",
                "best_search", "success", "message")
        out = {k: getattr(self, k) for k in keys}
        return out | {"top_objectives": list(self.top_objectives), "on_bound": list(self.on_bound)}


def log_data(N, D, loss) -> LogData:
    """Validate run arrays (positive, finite, equal length) and take logs."""
    arrays = {name: np.asarray(v, dtype=float).ravel() for name, v in (("N", N), ("D", D), ("loss", loss))}
    sizes = {name: arr.size for name, arr in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"N, D and loss must have the same length, got {sizes}")
    for name, arr in arrays.items():
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be positive and finite; {name}[{i}] = {arr[i]!r}")
    return LogData(np.log(arrays["N"]), np.log(arrays["D"]), np.log(arrays["loss"]))


def check_design(data: LogData, weights: np.ndarray) -> None:
    """Raise ValueError unless the weighted runs can identify five parameters: ≥ 5 distinct (N, D)
    points, ≥ 2 distinct N and ≥ 2 distinct D."""
    used = weights > 0
    n_distinct = len(set(zip(data.log_n[used].tolist(), data.log_d[used].tolist())))
    distinct_n, distinct_d = np.unique(data.log_n[used]).size, np.unique(data.log_d[used]).size
    if n_distinct < 5 or distinct_n < 2 or distinct_d < 2:
        raise ValueError(f"too few runs to fit L(N, D) = E + A/N^α + B/D^β: need ≥ 5 distinct (N, D) points with "
                         f"≥ 2 distinct N and ≥ 2 distinct D, got {n_distinct} points, {distinct_n} N, {distinct_d} D")


def check_weights(weights, n: int) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.size != n:
        raise ValueError(f"weights must have one entry per run ({n}), got {w.size}")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w


def bounds_for(fix_E: float | None) -> tuple[np.ndarray, np.ndarray]:
    """BOUNDS, with e pinned to log(fix_E) when E is fixed."""
    lower, upper = BOUNDS[0].copy(), BOUNDS[1].copy()
    if fix_E is not None:
        if not (math.isfinite(fix_E) and fix_E > 0):
            raise ValueError(f"fix_E must be a positive finite loss, got {fix_E!r}")
        lower[0] = upper[0] = math.log(fix_E)
    return lower, upper


def best_starts(grid_objectives: np.ndarray, n_starts: int) -> np.ndarray:
    """Indices of the n_starts smallest objectives along the last axis (any order within)."""
    k = min(n_starts, grid_objectives.shape[-1])
    return np.argpartition(grid_objectives, k - 1, axis=-1)[..., :k]


def _relative_gap(x: np.ndarray, best: np.ndarray) -> np.ndarray:
    return np.max(np.abs(x - best) / np.maximum(np.abs(best), 1.0), axis=-1)


def summarize(data: LogData, weights: np.ndarray, batch: BatchResult, lower, upper, *, n_starts: int,
              n_agree: int, fixed_E: bool, delta: float, from_varpro: np.ndarray | None = None) -> ParametricFit:
    """Pick the best converged end point of a batch and build the fit with its diagnostics.
    from_varpro: which rows of the batch started from the variable-projection profile (default none)."""
    order = np.argsort(np.where(batch.converged, batch.fun, np.inf), kind="stable")
    n_converged = int(batch.converged.sum())
    best = int(order[0]) if n_converged else int(np.argmin(batch.fun))
    degenerate = np.flatnonzero(batch.status == DEGENERATE)
    dead_term_wins = bool(n_converged and degenerate.size and degenerate_fits_better(
        float(batch.fun[degenerate].min()), float(batch.fun[best])))
    if dead_term_wins:  # module docstring: a converged end point that fits worse is not the estimate
        converged_objective = float(batch.fun[best])
        best = int(degenerate[np.argmin(batch.fun[degenerate])])
    x = batch.x[best]
    top = order[: min(n_agree, n_converged)]
    spread = float(np.max(_relative_gap(batch.x[top], x))) if top.size else math.nan
    ties = top[np.abs(batch.fun[top] - batch.fun[best]) <= FLAT_RTOL * abs(batch.fun[best])]
    agree = bool(ties.size == 0 or np.max(_relative_gap(batch.x[ties], x)) <= AGREE_RTOL)
    free = lower != upper
    tol = 1e-6 * np.maximum(np.abs(x), 1.0)
    at_bound = free & ((x <= lower + tol) | (x >= upper - tol))
    on_bound = tuple(LOG_NAMES[i] for i in np.flatnonzero(at_bound))
    params = ChinchillaParams.from_log(x) if np.all(x[3:] > 0) else None  # α = 0 or β = 0: no allocation law
    problems = []
    if n_converged == 0:
        problems.append(f"no L-BFGS run converged (best: {NOT_CONVERGED.get(int(batch.status[best]), '?')})")
    if dead_term_wins:
        problems.append(f"the best fit has a term of L(N, D) negligible for every run (objective "
                        f"{batch.fun[best]:.4g} against {converged_objective:.4g} for the best end point with "
                        "every term): these runs prefer the law without it, so its parameters are not identified")
    if on_bound:
        problems.append("at a bound: " + ", ".join(f"{n} = {x[LOG_NAMES.index(n)]:.4g}" for n in on_bound)
                        + " (the data do not pin it down)")
    if not agree:
        problems.append(f"the best {ties.size} converged starts reach the same objective within {FLAT_RTOL:g} "
                        f"but parameters differing by up to {np.max(_relative_gap(batch.x[ties], x)):.2%}: "
                        "the parameters are not identified by these runs")
    log_pred = np.logaddexp(x[0], np.logaddexp(x[1] - x[3] * data.log_n, x[2] - x[4] * data.log_d))
    significance = law_against_constant(data.log_loss, log_pred - data.log_loss, weights, 4 if fixed_E else 5)
    if significance.failed:  # analysis.significance: a law must beat "no dependence on N and D"
        problems.append(f"the runs show no significant scaling: L(N, D) explains the losses no better than a constant "
                        f"({significance.message})")
    from_varpro = np.zeros(len(batch.fun), dtype=bool) if from_varpro is None else np.asarray(from_varpro, bool)
    n_vp = int(from_varpro.sum())
    sources = [f"the best of {n_starts} grid starts"] * bool(n_vp < len(from_varpro))
    sources += [f"{n_vp} variable-projection minim{'um' if n_vp == 1 else 'a'}"] * bool(n_vp)
    summary = f"{n_converged} of {batch.x.shape[0]} L-BFGS runs from {' and '.join(sources)} converged"
    n_degenerate = int(np.sum(batch.status == DEGENERATE))
    if n_degenerate:
        summary += f" ({n_degenerate} more stopped where a term of L(N, D) is negligible for every run)"
    if top.size and agree and spread > AGREE_RTOL:
        summary += f"; runner-up minima are worse by ≥ {FLAT_RTOL:g} (kept the best)"
    message = summary + ("; " + "; ".join(problems) if problems else "")
    ends = np.where(batch.converged, batch.fun, np.inf)
    by_search = {name: float(np.min(ends[rows])) if np.any(rows) and np.isfinite(np.min(ends[rows])) else math.nan
                 for name, rows in (("grid", ~from_varpro), ("varpro", from_varpro))}
    nan = math.nan
    return ParametricFit(
        E=math.exp(x[0]), A=math.exp(x[1]), B=math.exp(x[2]), alpha=float(x[3]), beta=float(x[4]),
        a=params.a if params else nan, b=params.b if params else nan, G=params.G if params else nan,
        x=x.copy(), objective=float(batch.fun[best]), residuals=log_pred - data.log_loss,
        n_runs=int(np.sum(weights > 0)), n_starts=n_starts, n_lbfgs=int(batch.x.shape[0]), n_converged=n_converged,
        top_objectives=tuple(float(v) for v in batch.fun[top]), top_spread=spread, starts_agree=agree,
        on_bound=on_bound, fixed_E=fixed_E, delta=delta, objective_grid=by_search["grid"],
        objective_varpro=by_search["varpro"], best_search="varpro" if from_varpro[best] else "grid",
        success=not problems, message=message, significance=significance,
    )


def centre(data: LogData) -> tuple[LogData, float, float]:
    """Data with log N and log D centred on their means (m_N, m_D), and those means."""
    m_n, m_d = float(np.mean(data.log_n)), float(np.mean(data.log_d))
    return LogData(data.log_n - m_n, data.log_d - m_d, data.log_loss), m_n, m_d


def to_centred(x: np.ndarray, m_n: float, m_d: float) -> np.ndarray:
    """(e, a, b, α, β) -> (e, a − α·m_N, b − β·m_D, α, β): the same predictions on centred data."""
    y = np.array(x, dtype=float, copy=True)
    y[..., 1] -= y[..., 3] * m_n
    y[..., 2] -= y[..., 4] * m_d
    return y


def from_centred(y: np.ndarray, m_n: float, m_d: float) -> np.ndarray:
    """Inverse of `to_centred`."""
    x = np.array(y, dtype=float, copy=True)
    x[..., 1] += x[..., 3] * m_n
    x[..., 2] += x[..., 4] * m_d
    return x


def prepare_grid(grid: np.ndarray | None, fix_E: float | None) -> np.ndarray:
    """The start grid (default `start_grid`), with e pinned (and duplicates merged) when E is fixed."""
    starts = start_grid(fix_E=fix_E) if grid is None else np.array(grid, dtype=float, ndmin=2)
    if starts.shape[1] != 5 or not np.all(np.isfinite(starts)):
        raise ValueError(f"grid must be finite rows of (e, a, b, alpha, beta), got shape {starts.shape}")
    if fix_E is not None:
        starts = np.unique(np.column_stack([np.full(len(starts), math.log(fix_E)), starts[:, 1:]]), axis=0)
    return starts


def degenerate_fits_better(degenerate_objective, converged_objective):
    """Whether an end point with a negligible term beats a converged one by more than a tie (`FLAT_RTOL`)."""
    return degenerate_objective < converged_objective * (1 - FLAT_RTOL)


def flag_degenerate(batch: BatchResult, data: LogData, weights: np.ndarray) -> BatchResult:
    """Mark converged end points where some term is negligible for every run (`term_shares`) as DEGENERATE."""
    shares = term_shares(batch.x, data, weights > 0)
    dead = batch.converged & np.any(shares < NEGLIGIBLE_SHARE, axis=1)
    return BatchResult(x=batch.x, fun=batch.fun, status=np.where(dead, DEGENERATE, batch.status), nit=batch.nit)


SEARCHES = ("both", "grid", "varpro")
N_VARPRO_STARTS = 5  # local minima of the variable-projection profile polished (best first)


def varpro_starts(centred: LogData, weights: np.ndarray, lower: np.ndarray, fix_E: float | None,
                  k: int = N_VARPRO_STARTS) -> np.ndarray:
    """Centred starts (≤ k, 5) at the best local minima of the variable-projection profile (`analysis.varpro`)."""
    prof = varpro.profile(centred.log_n, centred.log_d, centred.log_loss, weights, fix_E=fix_E)
    cells = varpro.local_minima(prof.objective[0], k)
    return varpro.starts_from(prof, np.zeros(len(cells), dtype=int), cells, lower)


def fit_parametric_arrays(N, D, loss, *, weights=None, fix_E: float | None = None, delta: float = HUBER_DELTA,
                          n_starts: int = 30, n_agree: int = 3, max_starts: int = 300,
                          grid: np.ndarray | None = None, search: str = "both") -> ParametricFit:
    """Approach 3 on arrays: minimise the summed Huber objective by batched L-BFGS from the starts `search`
    names, and return the best converged end point (module docstring).

    search: "grid", the `n_starts` best points of the Chinchilla grid (or `grid`, rows of (e, a, b, α, β))
    ranked on the data; "varpro", the best local minima of the variable-projection profile over (α, β)
    (`varpro_starts`); "both" (default), all of them, so the answer is the better of the two estimators
    (`best_search` says which). End points where a term is negligible for every run are not counted as
    converged (`flag_degenerate`); while fewer than `n_agree` converged end points exist, the next
    `n_starts` ranked grid starts are run, up to `max_starts` in all. Raises ValueError on non-positive
    or non-finite inputs or too few distinct runs (`check_design`).
    """
    data = log_data(N, D, loss)
    w = check_weights(weights, data.log_n.size)
    check_design(data, w)
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if n_starts < 1 or n_agree < 1 or max_starts < 1:
        raise ValueError(f"n_starts, n_agree and max_starts must be ≥ 1, got {n_starts}, {n_agree}, {max_starts}")
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    lower, upper = bounds_for(fix_E)
    starts = prepare_grid(grid, fix_E)
    centred, m_n, m_d = centre(data)
    ranked = np.argsort(huber_terms(to_centred(starts, m_n, m_d), centred, delta) @ w, kind="stable")
    seeds = varpro_starts(centred, w, lower, fix_E) if search != "grid" else np.empty((0, 5))
    first = 0 if search == "varpro" else min(n_starts, max_starts, len(ranked))
    # the first batch: the best grid starts, then the profile's minima (so exact ties go to the grid); then
    # more grid starts while fewer than n_agree end points converged ("varpro": only while none converged,
    # as its profile has one minimum where the data identify the law)
    chosen = np.concatenate([to_centred(starts[ranked[:first]], m_n, m_d), seeds])
    from_varpro = [np.arange(len(chosen)) >= first]
    if len(chosen) == 0:  # "varpro" and no cell of the profile could be solved: start from the grid
        first = min(n_starts, max_starts, len(ranked))
        chosen, from_varpro = to_centred(starts[ranked[:first]], m_n, m_d), [np.zeros(first, dtype=bool)]
    batches: list[BatchResult] = []
    while len(chosen):
        batch = minimize_batch(lambda y, rows: huber_objective(y, centred, w, delta), chosen, lower, upper)
        batches.append(flag_degenerate(batch, centred, w))
        enough = 1 if search == "varpro" else n_agree
        if sum(int(b.converged.sum()) for b in batches) >= enough or first >= min(len(ranked), max_starts):
            break
        nxt = min(first + n_starts, max_starts, len(ranked))
        chosen, first = to_centred(starts[ranked[first:nxt]], m_n, m_d), nxt
        from_varpro.append(np.zeros(len(chosen), dtype=bool))
    batch = concat_batches(batches)
    batch = BatchResult(x=from_centred(batch.x, m_n, m_d), fun=batch.fun, status=batch.status, nit=batch.nit)
    return summarize(data, w, batch, lower, upper, n_starts=len(starts), n_agree=n_agree,
                     fixed_E=fix_E is not None, delta=delta, from_varpro=np.concatenate(from_varpro))


def usable_with_weights(runs: pd.DataFrame, weights, *, what: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The usable rows of `runs` (others excluded with a warning) and their weights (None, a column name,
    or one value per row of `runs`), for a fit of L(N, D)."""
    missing = [c for c in ("N", "D", "loss") if c not in runs.columns]
    if missing:
        raise ValueError(f"runs: missing column(s) {missing} needed for the {what}")
    if isinstance(weights, str):
        if weights not in runs.columns:
            raise ValueError(f"runs: no weights column {weights!r}")
        weights = runs[weights].to_numpy(float)
    if weights is not None:
        weights = pd.Series(check_weights(weights, len(runs)), index=runs.index)
    kept = usable_runs(runs, source=what, stacklevel=3)
    return kept, None if weights is None else weights.loc[kept.index].to_numpy()


def fit_parametric(runs: pd.DataFrame, *, weights=None, fix_E: float | None = None, delta: float = HUBER_DELTA,
                   n_starts: int = 30, n_agree: int = 3, max_starts: int = 300,
                   grid: np.ndarray | None = None, search: str = "both") -> ParametricFit:
    """Approach 3 on a results table (columns N, D, loss). Unusable rows are excluded with an
    ExcludedRunsWarning (`table.usable_runs`). weights: None, a column name, or one value per row of `runs`."""
    kept, w = usable_with_weights(runs, weights, what="parametric fit")
    return fit_parametric_arrays(kept["N"], kept["D"], kept["loss"], weights=w, fix_E=fix_E, delta=delta,
                                 n_starts=n_starts, n_agree=n_agree, max_starts=max_starts, grid=grid,
                                 search=search)


def fit_each_start(N, D, loss, starts: np.ndarray, *, weights=None, fix_E: float | None = None,
                   delta: float = HUBER_DELTA, ftol: float = 1e-15, gtol: float = 1e-10) -> BatchResult:
    """The reference the fast path is checked against: scipy's L-BFGS-B (analytic gradient) run from
    every start, one call each. Status 1 where scipy reports success, 3 otherwise."""
    data = log_data(N, D, loss)
    w = check_weights(weights, data.log_n.size)
    lower, upper = bounds_for(fix_E)
    bounds = list(zip(lower, upper))

    def fun(theta):
        f, g = huber_objective(theta[None, :], data, w, delta)
        return f[0], g[0]

    xs, fs, status, nit = [], [], [], []
    for x0 in np.array(starts, dtype=float, ndmin=2):
        res = minimize(fun, np.clip(x0, lower, upper), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": ftol, "gtol": gtol, "maxiter": 5000})
        xs.append(res.x), fs.append(res.fun), status.append(1 if res.success else 3), nit.append(res.nit)
    return BatchResult(x=np.array(xs), fun=np.array(fs), status=np.array(status), nit=np.array(nit))
