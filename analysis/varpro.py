"""Variable projection for L(N, D) = E + A/N^α + B/D^β: a 2-D search over (α, β) with a linear solve inside.

For fixed exponents the law is linear in (E, A, B) (Golub & Pereyra 1973, "variable projection";
Open-Athena's vpnls, arXiv 2603.22339, applies it to this law): with features u_i = exp(−α·(log N_i − m_N))
and v_i = exp(−β·(log D_i − m_D)) (log N and log D centred, as in `parametric`), L̂_i = E + A_c·u_i + B_c·v_i
with A_c = A·exp(−α·m_N), B_c = B·exp(−β·m_D). Every (α, β) of a grid gets its best non-negative
(E, A_c, B_c) by weighted least squares on the relative residual (L̂_i − L_i)/L_i (≈ log L̂_i − log L_i,
so the same residual Approach 3's Huber loss is taken of), solved exactly: a 3-variable non-negative LS
is the best feasible unconstrained solve over the 7 non-empty subsets of (E, A, B).

What it minimises, precisely: the profile value at (α, β) is min over (E, A, B) ≥ 0 of
Σ_i w_i·((L̂_i − L_i)/L_i)², a least-squares surrogate of the Huber objective, not that objective itself.
It is used to find starts, never as the answer: `parametric.fit_parametric_arrays` polishes the profile's
best local minima with the same Huber objective and L-BFGS as the 4,500-point grid, so both estimators
minimise one objective and the better end point wins (docs/methods.md).

Why it helps: the search is over the only two nonlinear parameters, finely (steps of 0.05 where the
Chinchilla grid steps α and β by 0.5), and the linear parameters never need starting values. The
moments of the linear solve are matrix products over the runs, so one call profiles many weightings at
once (the bootstrap's 1,000 resamples: a resample is a vector of counts, and every moment is linear in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

# The profile's exponent grid: 0.05..2.5 in steps of 0.05 covers the Chinchilla grid's range (0..2) and
# every exponent reported for language models (0.05-1); a finer step than the Chinchilla grid's 0.5 costs
# little because each point is a 3-variable solve. The bootstrap uses a coarser step, 0.1: it only has to
# find a replicate's basin, and the full-sample optimum is its other start (bootstrap.py).
EXPONENTS = np.round(np.arange(0.05, 2.501, 0.05), 10)
COARSE_EXPONENTS = np.round(np.arange(0.05, 2.501, 0.1), 10)
SUBSETS = tuple(s for k in (3, 2, 1) for s in combinations(range(3), k))  # the 7 supports of (E, A_c, B_c)
BLOCK_CELLS = 16_384  # (weightings × grid cells) solved at once by `profile`
SINGULAR_RTOL = 1e-12  # a subset's Gram matrix with |det| below this (relative) is not solved


@dataclass(frozen=True)
class Profile:
    """The variable-projection profile over an (α, β) grid, for R weightings of the runs.

    objective (R, Gα, Gβ): min over (E, A_c, B_c) ≥ 0 of Σ w·((L̂ − L)/L)²; coef (R, Gα, Gβ, 3): that
    minimiser (E, A_c, B_c) on centred features (module docstring). Cells where no subset could be solved
    have objective inf, as have cells where both A and B are 0 (no scaling at all).
    """

    alphas: np.ndarray
    betas: np.ndarray
    objective: np.ndarray
    coef: np.ndarray


def features(log_x: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """exp(−exponent·log_x) for each exponent, shape (G, n); log_x centred so values stay near 1."""
    return np.exp(-np.outer(exponents, log_x))


def nnls3(m: dict[str, np.ndarray], subsets=SUBSETS) -> tuple[np.ndarray, np.ndarray]:
    """Minimise q(θ) = tt − 2·rhsᵀθ + θᵀ·S·θ over θ = (E, A_c, B_c) ≥ 0, elementwise over arrays of moments.

    m holds the Gram matrix S's entries "00", "0u", "0v", "uu", "uv", "vv", the right-hand side "r0",
    "ru", "rv" and "tt" (Σ w·L²), all broadcastable. The minimiser is the unconstrained solve restricted
    to its own support, so the best feasible one of the 7 subset solves (empty support: q = tt) is
    exact. Solves are closed-form (Cramer's rule): one batched LAPACK call per 3×3 costs far more here.
    `subsets`: the supports tried (leaving E out of all of them holds it at 0). Returns θ (..., 3), q (...).
    """
    keys = ("0", "u", "v")
    S = {(i, j): m[keys[min(i, j)] + keys[max(i, j)]] for i in range(3) for j in range(3)}
    r = [m["r0"], m["ru"], m["rv"]]
    shape = np.broadcast_shapes(*(np.shape(a) for a in m.values()))
    best_q = np.broadcast_to(m["tt"], shape).astype(float)
    best_theta = np.zeros(shape + (3,))
    for subset in subsets:
        theta, det, scale = _solve(S, r, subset)
        with np.errstate(divide="ignore", invalid="ignore"):  # a singular solve's inf/NaN fails `ok` below
            theta = [t / det for t in theta]
            q = m["tt"] - sum(r[i] * t for i, t in zip(subset, theta))
        ok = (np.abs(det) > SINGULAR_RTOL * scale) & np.all([t >= 0 for t in theta], axis=0) & (q < best_q)
        best_q = np.where(ok, q, best_q)
        for i, t in zip(subset, theta):
            best_theta[..., i] = np.where(ok, t, best_theta[..., i])
        for i in set(range(3)) - set(subset):
            best_theta[..., i] = np.where(ok, 0.0, best_theta[..., i])
    return best_theta, best_q


def _solve(S, r, subset):
    """Cramer's rule on the subset's normal equations: numerators (one per variable), det, Π diagonal."""
    if len(subset) == 1:
        (i,) = subset
        return [r[i]], S[i, i], np.abs(S[i, i])
    if len(subset) == 2:
        i, j = subset
        det = S[i, i] * S[j, j] - S[i, j] * S[i, j]
        return [r[i] * S[j, j] - r[j] * S[i, j], r[j] * S[i, i] - r[i] * S[i, j]], det, np.abs(S[i, i] * S[j, j])
    c00 = S[1, 1] * S[2, 2] - S[1, 2] * S[1, 2]  # cofactors of the symmetric 3×3
    c01 = S[0, 2] * S[1, 2] - S[0, 1] * S[2, 2]
    c02 = S[0, 1] * S[1, 2] - S[0, 2] * S[1, 1]
    c11 = S[0, 0] * S[2, 2] - S[0, 2] * S[0, 2]
    c12 = S[0, 1] * S[0, 2] - S[0, 0] * S[1, 2]
    c22 = S[0, 0] * S[1, 1] - S[0, 1] * S[0, 1]
    det = S[0, 0] * c00 + S[0, 1] * c01 + S[0, 2] * c02
    theta = [c00 * r[0] + c01 * r[1] + c02 * r[2], c01 * r[0] + c11 * r[1] + c12 * r[2],
             c02 * r[0] + c12 * r[1] + c22 * r[2]]
    return theta, det, np.abs(S[0, 0] * S[1, 1] * S[2, 2])


def profile(log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, weights: np.ndarray, *,
            alphas: np.ndarray = EXPONENTS, betas: np.ndarray = EXPONENTS, fix_E: float | None = None) -> Profile:
    """The profile over alphas × betas for each row of `weights` (R, n) (a count or weight per run).

    log_n and log_d must be centred (`parametric.centre`). With `fix_E` the solve is over (A_c, B_c)
    only, on the target L − E (the residual is still divided by L). Every moment Σ_i w_i·f_i·g_i of the weighted
    normal equations is a matrix product of the weights with a feature product, so all R weightings and
    all grid cells are solved together.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    loss = np.exp(log_loss)
    u, v = features(log_n, alphas), features(log_d, betas)  # (Gα, n), (Gβ, n)
    target = loss if fix_E is None else loss - fix_E
    # weightings in blocks of ~BLOCK_CELLS cells: the solve's dozens of (R, Gα, Gβ) temporaries then stay in
    # cache (the bootstrap's 1,000 × 25 × 25 ran ~2× slower in one piece); rows are solved independently
    step = max(1, BLOCK_CELLS // (len(alphas) * len(betas)))
    parts = [_profile_rows(weights[lo : lo + step], loss, u, v, target, fix_E) for lo in range(0, len(weights), step)]
    return Profile(alphas=np.asarray(alphas, float), betas=np.asarray(betas, float),
                   objective=np.concatenate([q for q, _ in parts]), coef=np.concatenate([c for _, c in parts]))


def _profile_rows(weights, loss, u, v, target, fix_E):
    """(objective, coef) of `profile` for a block of weightings."""
    w = weights / loss**2  # relative residuals: (L̂ − L)/L, weighted
    wl = w * target
    m = {"00": w.sum(axis=1)[:, None, None], "0u": (w @ u.T)[:, :, None], "0v": (w @ v.T)[:, None, :],
         "uu": (w @ (u * u).T)[:, :, None], "vv": (w @ (v * v).T)[:, None, :],
         "uv": (w[:, None, :] * u[None]) @ v.T,  # (R, Gα, Gβ): the one moment that needs both exponents
         "r0": wl.sum(axis=1)[:, None, None], "ru": (wl @ u.T)[:, :, None], "rv": (wl @ v.T)[:, None, :],
         "tt": (wl * target).sum(axis=1)[:, None, None]}
    coef, q = nnls3(m, SUBSETS if fix_E is None else tuple(s for s in SUBSETS if 0 not in s))
    if fix_E is not None:
        coef[..., 0] = fix_E
    q = np.where(np.all(coef[..., 1:] == 0, axis=-1), np.inf, q)  # nothing solved: no fit at this cell
    return q, coef


def local_minima(objective: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of up to k cells of a 2-D grid that are ≤ all their (up to 8) neighbours, best first."""
    padded = np.pad(objective, 1, constant_values=np.inf)
    neighbours = [padded[1 + di : padded.shape[0] - 1 + di, 1 + dj : padded.shape[1] - 1 + dj]
                  for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
    is_min = np.isfinite(objective) & np.all([objective <= nb for nb in neighbours], axis=0)
    flat = np.flatnonzero(is_min)
    return flat[np.argsort(objective.ravel()[flat], kind="stable")[:k]]


def starts_from(prof: Profile, rows: np.ndarray, cells: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Centred start vectors (e, a_c, b_c, α, β) for profile rows `rows` at flat cells `cells`.

    A coefficient the non-negative solve set to 0 has no logarithm: it starts at e's lower bound
    (E = 0 is a floorless law) or, for A or B, 40 nats below the loss (a term the start switches off).
    """
    ia, ib = np.unravel_index(cells, prof.objective.shape[1:])
    coef = prof.coef[rows, ia, ib]
    floor = np.array([lower[0], -40.0, -40.0])
    with np.errstate(divide="ignore"):
        logs = np.where(coef > 0, np.log(np.where(coef > 0, coef, 1.0)), floor)
    return np.column_stack([np.maximum(logs, floor), prof.alphas[ia], prof.betas[ib]])
