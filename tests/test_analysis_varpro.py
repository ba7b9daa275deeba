"""Variable projection for Approach 3 (analysis.varpro) and its use in the fit and the bootstrap.

The linear solve is checked against scipy's NNLS, the profile against the law it was drawn from, and the
VarPro-started fit and bootstrap against the 4,500-point grid's (the same Huber objective, so the same or
a lower optimum and the same intervals).
"""

import numpy as np
import pytest
from scipy.optimize import nnls

from analysis import varpro
from analysis.bootstrap import bootstrap_parametric
from analysis.parametric import CHINCHILLA_2022, ChinchillaParams, centre, fit_parametric, log_data
from analysis.simulate import simulate_runs

SMALL_LAB = ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.3, beta=0.35)


def _design(data, alpha, beta):
    return np.column_stack([np.ones_like(data.log_n), np.exp(-alpha * data.log_n), np.exp(-beta * data.log_d)])


def _scipy_nnls(data, weights, alpha, beta, fix_E=None):
    """min Σ w·((Xθ − L)/L)² over θ ≥ 0 by scipy's NNLS on the scaled design; E held at fix_E if given."""
    loss = np.exp(data.log_loss)
    scale = np.sqrt(weights) / loss
    X, target = _design(data, alpha, beta) * scale[:, None], loss * scale
    if fix_E is not None:
        target, X = target - fix_E * X[:, 0], X[:, 1:]
    theta, norm = nnls(X, target)
    return (theta if fix_E is None else np.concatenate([[fix_E], theta])), norm**2


@pytest.fixture(scope="module")
def sweep():
    return simulate_runs(budgets=np.logspace(12, 15, 4), n_per_budget=8, params=SMALL_LAB, noise=0.01, seed=3)


def test_linear_solve_is_exact_nnls(sweep):
    """At every cell, including ones where a coefficient is held at 0, the 7-subset solve equals scipy's NNLS."""
    data, _, _ = centre(log_data(sweep["N"], sweep["D"], sweep["loss"]))
    weights = np.random.default_rng(0).integers(0, 3, size=(2, len(sweep))).astype(float)
    alphas, betas = np.array([0.1, 0.3, 1.5, 2.5]), np.array([0.05, 0.35, 2.0])
    prof = varpro.profile(data.log_n, data.log_d, data.log_loss, weights, alphas=alphas, betas=betas)
    n_zero = 0
    for r in range(2):
        for i, alpha in enumerate(alphas):
            for j, beta in enumerate(betas):
                theta, value = _scipy_nnls(data, weights[r], alpha, beta)
                np.testing.assert_allclose(prof.coef[r, i, j], theta, rtol=1e-6, atol=1e-9)
                assert prof.objective[r, i, j] == pytest.approx(value, rel=1e-6, abs=1e-12)
                n_zero += int(np.any(theta == 0))
    assert n_zero > 0  # the bound was active somewhere, so the subset logic was exercised


def test_fixed_E_solve_matches_nnls_on_the_remainder(sweep):
    data, _, _ = centre(log_data(sweep["N"], sweep["D"], sweep["loss"]))
    w = np.ones(len(sweep))
    prof = varpro.profile(data.log_n, data.log_d, data.log_loss, w, alphas=np.array([0.3]), betas=np.array([0.4]),
                          fix_E=1.0)
    theta, value = _scipy_nnls(data, w, 0.3, 0.4, fix_E=1.0)
    np.testing.assert_allclose(prof.coef[0, 0, 0], theta, rtol=1e-6)
    assert prof.objective[0, 0, 0] == pytest.approx(value, rel=1e-6)


def test_profile_of_noiseless_runs_is_minimal_at_the_true_exponents():
    """Drawn without noise from α = 0.3, β = 0.35 (grid points), the profile's best local minimum is that
    cell, with objective ≈ 0 and the true E, A, B (undoing the centring)."""
    runs = simulate_runs(budgets=np.logspace(12, 15, 4), n_per_budget=8, params=SMALL_LAB, noise=0.0, seed=0)
    data, m_n, m_d = centre(log_data(runs["N"], runs["D"], runs["loss"]))
    prof = varpro.profile(data.log_n, data.log_d, data.log_loss, np.ones(len(runs)))
    best = varpro.local_minima(prof.objective[0], 3)[0]
    i, j = np.unravel_index(best, prof.objective.shape[1:])
    assert (prof.alphas[i], prof.betas[j]) == pytest.approx((0.3, 0.35))
    # ≈ 0 to float64 rounding, which varies with the BLAS kernel (1e-14 with OpenBLAS's Prescott one, below 1e-20
    # with Haswell's): well inside what the coefficients' 1e-6 below allows, 32 runs·(1e-6)² = 3e-11
    assert prof.objective[0, i, j] < 1e-12
    E, A_c, B_c = prof.coef[0, i, j]
    assert (E, A_c * np.exp(0.3 * m_n), B_c * np.exp(0.35 * m_d)) == pytest.approx((1.2, 60.0, 300.0), rel=1e-6)


def test_local_minima_finds_each_basin_best_first():
    x, y = np.meshgrid(np.linspace(-2, 2, 41), np.linspace(-2, 2, 41), indexing="ij")
    surface = np.minimum((x - 1) ** 2 + (y - 1) ** 2, 0.5 + (x + 1) ** 2 + (y + 1) ** 2)
    cells = varpro.local_minima(surface, 5)
    assert len(cells) == 2
    assert [np.unravel_index(c, surface.shape) for c in cells] == [(30, 30), (10, 10)]


@pytest.mark.parametrize("params, budgets, seed", [(CHINCHILLA_2022, np.logspace(18, 21, 4), 21),
                                                   (SMALL_LAB, np.logspace(12, 15, 4), 22)])
def test_varpro_reaches_the_grid_objective_or_lower(params, budgets, seed):
    """The same Huber objective from the profile's minima alone: no higher than from the grid's 30 best
    starts (to L-BFGS's tolerance), the same parameters; the default runs both and keeps the better."""
    runs = simulate_runs(budgets=budgets, n_per_budget=10, params=params, noise=0.01, seed=seed)
    grid, vp, both = (fit_parametric(runs, search=s) for s in ("grid", "varpro", "both"))
    assert vp.success and grid.success and both.success
    assert vp.objective <= grid.objective * (1 + 1e-9)
    np.testing.assert_allclose(vp.x, grid.x, rtol=1e-4, atol=1e-4)
    assert vp.best_search == "varpro" and grid.best_search == "grid" and np.isnan(grid.objective_varpro)
    assert both.objective == min(both.objective_grid, both.objective_varpro)
    assert "variable-projection" in both.message
    with pytest.raises(ValueError, match="search"):
        fit_parametric(runs, search="simplex")


def test_bootstrap_varpro_starts_give_the_grid_scheme_intervals(sweep):
    """Same resamples, replicates started from their own VarPro optimum instead of their 5 best grid
    points: the same replicate optima and so the same intervals."""
    fit = fit_parametric(sweep)
    old, new = (bootstrap_parametric(sweep, n_resamples=100, seed=5, fit=fit, search=s) for s in ("grid", "varpro"))
    assert old.n_converged == new.n_converged == 100
    for name in ("E", "alpha", "beta", "a", "G"):
        np.testing.assert_allclose(new.intervals[name][:2], old.intervals[name][:2], rtol=1e-3)
    assert np.median(np.abs(new.samples[:, 3:] - old.samples[:, 3:])) < 1e-5
