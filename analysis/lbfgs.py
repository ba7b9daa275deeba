"""Many small bound-constrained minimisations at once: a batched, projected L-BFGS in numpy.

Approach 3 and its bootstrap run thousands of 5-parameter fits; one scipy call each costs ~10 ms of
per-call overhead, while one numpy operation over all of them costs about as much as over one. Per
problem this is L-BFGS as in Nocedal & Wright (2006): the two-loop recursion (Alg. 7.4) for the
direction, with memory pairs kept only when sᵀy > 0; an Armijo backtracking line search (step 1 first,
then the minimiser of the quadratic through f(0), f'(0), f(t), kept within [t/10, t/2]); bounds by
projecting each trial point onto the box, with the variables held at a bound by the gradient (the active
set) left out of the direction. Problems that finish drop out of the batch.

Status codes: 1 relative decrease of f ≤ ftol, 2 projected gradient ≤ gtol (both converged), 3 line
search failed, 4 iteration limit. Callers may add their own codes (Approach 3 adds 5, degenerate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONVERGED = {1: "relative reduction of f ≤ ftol", 2: "projected gradient ≤ gtol"}
NOT_CONVERGED = {3: "line search failed", 4: "iteration limit reached"}


@dataclass(frozen=True)
class BatchResult:
    """End points of many independent minimisations: x (S, P), fun (S,), status (S,) (see CONVERGED and
    NOT_CONVERGED), nit (S,)."""

    x: np.ndarray
    fun: np.ndarray
    status: np.ndarray
    nit: np.ndarray

    @property
    def converged(self) -> np.ndarray:
        return np.isin(self.status, list(CONVERGED))


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", u, v)


def minimize_batch(objective, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, memory: int = 8,
                   maxiter: int = 1000, ftol: float = 1e-12, gtol: float = 1e-10, max_backtracks: int = 40) -> BatchResult:
    """Minimise S independent problems at once by projected L-BFGS.

    objective(x, rows) -> (f, grad) evaluates problems `rows` (indices into the S problems) at x (len(rows), P).
    Per problem: direction by the L-BFGS two-loop recursion over the free variables (those not held at a
    bound by the gradient), step projected onto [lower, upper], Armijo backtracking from step 1, memory
    pairs kept only when sᵀy > 0. Stops when the relative decrease of f ≤ ftol or the projected gradient's
    largest component ≤ gtol. Finished problems drop out of the batch.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        # degenerate starts (a term underflowing everywhere) can produce inf/NaN trials: they are
        # rejected by the line search or reset to steepest descent, so the warnings carry no news
        return _minimize_batch(objective, x0, lower, upper, memory, maxiter, ftol, gtol, max_backtracks)


def _minimize_batch(objective, x0, lower, upper, memory, maxiter, ftol, gtol, max_backtracks) -> BatchResult:
    x = np.clip(np.array(x0, dtype=float), lower, upper)
    n_problems, n_params = x.shape
    fixed = lower == upper
    f, g = objective(x, np.arange(n_problems))
    s_mem = np.zeros((n_problems, memory, n_params))
    y_mem = np.zeros((n_problems, memory, n_params))
    rho = np.zeros((n_problems, memory))  # 1/(sᵀy); 0 marks an empty slot
    status = np.zeros(n_problems, dtype=int)
    nit = np.zeros(n_problems, dtype=int)
    for _ in range(maxiter):
        rows = np.flatnonzero(status == 0)
        if rows.size == 0:
            break
        xa, fa, ga = x[rows], f[rows], g[rows]
        free = ~(fixed | ((xa <= lower) & (ga > 0)) | ((xa >= upper) & (ga < 0)))
        pg = np.where(free, ga, 0.0)
        at_gtol = np.max(np.abs(pg), axis=1) <= gtol
        d, uphill = _direction(pg, free, s_mem[rows], y_mem[rows], rho[rows])
        rho[rows[uphill]] = 0.0  # the restarted problems forget their memory
        x_new, f_new, g_new, failed = _line_search(objective, rows, xa, fa, ga, d, ~at_gtol, lower, upper,
                                                   max_backtracks)
        moved = ~at_gtol & ~failed
        s_new, y_new = x_new - xa, g_new - ga
        sy = _dot(s_new, y_new)
        keep = moved & (sy > 1e-12 * _dot(y_new, y_new)) & (sy > 1e-250)  # curvature pairs that are safe to invert
        kr = rows[keep]
        s_mem[kr] = np.roll(s_mem[kr], -1, axis=1)
        y_mem[kr] = np.roll(y_mem[kr], -1, axis=1)
        rho[kr] = np.roll(rho[kr], -1, axis=1)
        s_mem[kr, -1], y_mem[kr, -1], rho[kr, -1] = s_new[keep], y_new[keep], 1.0 / sy[keep]
        x[rows], f[rows], g[rows] = x_new, f_new, g_new
        nit[rows] += moved
        small_decrease = moved & (fa - f_new <= ftol * np.maximum(np.maximum(np.abs(fa), np.abs(f_new)), 1e-300))
        new_status = np.select([at_gtol, small_decrease, failed], [2, 1, 3], default=0)
        status[rows] = new_status
    status[status == 0] = 4
    return BatchResult(x=x, fun=f, status=status, nit=nit)


def _direction(pg: np.ndarray, free: np.ndarray, s_a: np.ndarray, y_a: np.ndarray, rho_a: np.ndarray):
    """d = −H·pg by the two-loop recursion (Nocedal & Wright Alg. 7.4), H the L-BFGS inverse-Hessian estimate
    from the memory pairs (newest last), zero on the variables not free; where that is not a descent direction
    (stale or degenerate memory, or not finite), steepest descent instead, flagged in `uphill`."""
    memory = rho_a.shape[1]
    q, alphas = pg.copy(), np.zeros((len(pg), memory))
    for j in range(memory - 1, -1, -1):
        alphas[:, j] = rho_a[:, j] * _dot(s_a[:, j], q)
        q -= alphas[:, j, None] * y_a[:, j]
    yy = _dot(y_a[:, -1], y_a[:, -1])
    first_step = 1.0 / np.maximum(np.sum(np.abs(pg), axis=1), 1e-300)  # |step| ≤ 1 before any memory
    gamma = np.where(rho_a[:, -1] > 0, 1.0 / np.maximum(rho_a[:, -1] * yy, 1e-300), first_step)
    d = gamma[:, None] * q
    for j in range(memory):
        d += s_a[:, j] * (alphas[:, j] - rho_a[:, j] * _dot(y_a[:, j], d))[:, None]
    d = np.where(free, -d, 0.0)
    uphill = ~(_dot(d, pg) < 0)  # also catches a non-finite direction
    d[uphill] = -pg[uphill] * first_step[uphill, None]
    return d, uphill


def _line_search(objective, rows, xa, fa, ga, d, searching, lower, upper, max_backtracks: int):
    """Armijo backtracking along d on the path projected onto [lower, upper], for the problems `searching`:
    the accepted points (x, f, g; the start where none was) and the mask of problems where no step was accepted."""
    step = np.ones(len(rows))
    x_new, f_new, g_new = xa.copy(), fa.copy(), ga.copy()
    for _ in range(max_backtracks):
        idx = np.flatnonzero(searching)
        if idx.size == 0:
            break
        trial = np.clip(xa[idx] + step[idx, None] * d[idx], lower, upper)
        f_t, g_t = objective(trial, rows[idx])
        ok = np.isfinite(f_t) & (f_t <= fa[idx] + 1e-4 * _dot(ga[idx], trial - xa[idx]))
        hit = idx[ok]
        x_new[hit], f_new[hit], g_new[hit] = trial[ok], f_t[ok], g_t[ok]
        searching[hit] = False
        # next trial: minimiser of the quadratic through f(0), f'(0) and f(t), kept in [t/10, t/2]
        miss, t = idx[~ok], step[idx[~ok]]
        slope = _dot(ga[miss], d[miss])
        curvature = f_t[~ok] - fa[miss] - slope * t
        with np.errstate(invalid="ignore", divide="ignore"):
            t_quad = np.where(np.isfinite(curvature) & (curvature > 0), -slope * t * t / (2 * curvature), 0.5 * t)
        step[miss] = np.clip(t_quad, 0.1 * t, 0.5 * t)
    return x_new, f_new, g_new, searching


def concat_batches(batches: list[BatchResult]) -> BatchResult:
    """One BatchResult from several, in order."""
    return BatchResult(*(np.concatenate([getattr(b, k) for b in batches]) for k in ("x", "fun", "status", "nit")))
