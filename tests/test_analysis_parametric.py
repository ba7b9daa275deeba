"""Approach 3 (analysis.parametric), its bootstrap (analysis.bootstrap) and the power-law helper.

Data come from analysis.simulate with known parameters, so every check compares against the truth or
against an independent computation (scipy's L-BFGS-B from every start, closed forms, brute-force minima).
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from analysis.bootstrap import (
    bootstrap_counts, bootstrap_parametric, budget_strata, loss_samples, optimum_samples
)
from analysis.lbfgs import BatchResult, minimize_batch
from analysis.parametric import (
    CHINCHILLA_2022, DEGENERATE, ChinchillaParams, bounds_for, compute_optimal, fit_each_start, fit_parametric,
    fit_parametric_arrays, log_data, predict_loss, start_grid, summarize,
)
from analysis.powerlaw import fit_power_law, percentile_interval
from analysis.simulate import simulate_grid, simulate_runs
from analysis.table import ExcludedRunsWarning

SMALL_LAB = ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.3, beta=0.35)


@pytest.fixture(scope="module")
def chinchilla_runs():
    """240 runs of an IsoFLOP sweep over 10^18..10^22 FLOPs drawn from Hoffmann et al.'s fit, 1% noise."""
    return simulate_runs(budgets=np.logspace(18, 22, 8), n_per_budget=30, noise=0.01, seed=1)


@pytest.fixture(scope="module")
def chinchilla_fit(chinchilla_runs):
    return fit_parametric(chinchilla_runs)


# ------------------------------------------------------------------------------------------ recovery

def test_recovers_known_parameters_from_simulated_sweep(chinchilla_fit):
    """α and β within 5%, E within 2% of the truth; the fit reports success with every diagnostic clean."""
    fit, truth = chinchilla_fit, CHINCHILLA_2022
    assert fit.success, fit.message
    assert fit.alpha == pytest.approx(truth.alpha, rel=0.05)
    assert fit.beta == pytest.approx(truth.beta, rel=0.05)
    assert fit.E == pytest.approx(truth.E, rel=0.02)
    assert fit.on_bound == () and fit.starts_agree and fit.n_converged >= 3
    assert fit.n_starts == 4500 and fit.n_runs == 240
    assert fit.a == pytest.approx(fit.beta / (fit.alpha + fit.beta)) and fit.a + fit.b == pytest.approx(1.0)
    assert np.std(fit.residuals) == pytest.approx(0.01, rel=0.25)  # the simulated log-space noise


def test_recovers_small_scale_parameters_on_a_grid_design():
    """A 6×6 grid sweep at 10^5-10^7 parameters recovers a different law (E within 2%, exponents 5%)."""
    runs = simulate_grid(sizes=np.logspace(5, 7, 6), tokens=np.logspace(7, 9.5, 6), params=SMALL_LAB, noise=0.003, seed=2)
    fit = fit_parametric(runs)
    assert fit.success, fit.message
    assert fit.E == pytest.approx(SMALL_LAB.E, rel=0.02)
    assert fit.alpha == pytest.approx(SMALL_LAB.alpha, rel=0.05)
    assert fit.beta == pytest.approx(SMALL_LAB.beta, rel=0.05)


def test_fixed_E_is_held_exactly_and_exponents_still_recovered(chinchilla_runs):
    fit = fit_parametric(chinchilla_runs, fix_E=CHINCHILLA_2022.E)
    assert fit.fixed_E and fit.E == pytest.approx(CHINCHILLA_2022.E, rel=1e-12)
    assert fit.n_starts == 900  # the e axis of the grid collapses
    assert fit.alpha == pytest.approx(CHINCHILLA_2022.alpha, rel=0.05)
    assert fit.beta == pytest.approx(CHINCHILLA_2022.beta, rel=0.05)


def test_zero_weight_equals_dropping_the_run(chinchilla_runs):
    """Weights enter the summed objective: weight 0 on a corrupted run gives the fit without it."""
    runs = chinchilla_runs.head(60).copy()
    runs.loc[runs.index[5], "loss"] *= 1.5
    weights = np.ones(len(runs))
    weights[5] = 0.0
    weighted = fit_parametric(runs, weights=weights)
    dropped = fit_parametric(runs.drop(index=runs.index[5]))
    np.testing.assert_allclose(weighted.x, dropped.x, rtol=1e-5, atol=1e-6)


def test_excluded_rows_warn_and_the_fit_uses_the_rest(chinchilla_runs):
    runs = chinchilla_runs.head(40).copy()
    runs.loc[runs.index[0], "status"] = "diverged"
    with pytest.warns(ExcludedRunsWarning, match="sim-00000"):
        fit = fit_parametric(runs)
    assert fit.n_runs == 39


# ------------------------------------------------------------------------------------------ fast path vs naive

@pytest.mark.parametrize("seed, params, budgets", [
    (11, CHINCHILLA_2022, np.logspace(18, 21, 4)),
    (12, SMALL_LAB, np.logspace(12, 15, 4)),
    (13, ChinchillaParams(E=2.0, A=2000.0, B=800.0, alpha=0.6, beta=0.45), np.logspace(14, 17, 4)),
])
def test_fast_path_reaches_the_optimum_of_scipy_from_every_start(seed, params, budgets):
    """On a 48-point subset of the Chinchilla grid, batched L-BFGS from the 8 best-ranked starts ends
    where scipy's L-BFGS-B (one call per start, all 48) finds its best point."""
    runs = simulate_runs(budgets=budgets, n_per_budget=8, params=params, noise=0.01, seed=seed)
    grid = start_grid()
    subset = grid[np.random.default_rng(seed).choice(len(grid), 48, replace=False)]
    naive = fit_each_start(runs["N"], runs["D"], runs["loss"], subset)
    fast = fit_parametric_arrays(runs["N"], runs["D"], runs["loss"], grid=subset, n_starts=8)
    best = int(np.argmin(naive.fun))
    assert fast.objective <= naive.fun[best] * (1 + 1e-9)
    assert fast.objective == pytest.approx(naive.fun[best], rel=1e-7)
    np.testing.assert_allclose(fast.x, naive.x[best], rtol=1e-4, atol=1e-4)


def test_full_grid_fast_path_is_at_least_as_good_as_scipy_from_sampled_starts(chinchilla_runs, chinchilla_fit):
    """The default 4,500-start fit on 240 runs vs scipy from 12 random grid starts: same optimum."""
    runs = chinchilla_runs
    grid = start_grid()
    subset = grid[np.random.default_rng(0).choice(len(grid), 12, replace=False)]
    naive = fit_each_start(runs["N"], runs["D"], runs["loss"], subset)
    best = int(np.argmin(naive.fun))
    assert chinchilla_fit.objective <= naive.fun[best] * (1 + 1e-9)
    np.testing.assert_allclose(chinchilla_fit.x, naive.x[best], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------ honesty

def test_parameter_on_bound_is_reported_not_hidden():
    """Loss that rises with N cannot give α > 0: the fit says α sits on its bound and success is False."""
    runs = simulate_runs(budgets=np.logspace(17, 20, 4), n_per_budget=8, noise=0.0, seed=0)
    rng = np.random.default_rng(0)
    loss = (1.5 + 400 / runs["D"] ** 0.28 + 0.02 * np.log(runs["N"])) * np.exp(0.005 * rng.standard_normal(len(runs)))
    fit = fit_parametric_arrays(runs["N"], runs["D"], loss)
    assert not fit.success
    assert "alpha" in fit.on_bound and "bound" in fit.message
    assert not fit.starts_agree and "not identified" in fit.message  # A and E trade off once α = 0
    assert np.isfinite(fit.predict_loss(1e8, 1e9))  # the fitted surface is still usable ...
    with pytest.raises(ValueError, match="alpha"):
        fit.compute_optimal(1e20)  # ... but with α = 0 there is no compute-optimal allocation


def test_disagreeing_best_starts_fail_the_fit_but_worse_local_minima_do_not():
    """Two end points with the same objective and different parameters: not identified, success False.
    A second end point 1% worse is a local minimum: the best is kept and the fit succeeds."""
    x1, x2 = np.array([0.5, 6.0, 6.0, 0.34, 0.28]), np.array([0.5, 7.0, 6.0, 0.40, 0.28])
    n, d = np.logspace(6, 8, 6), np.geomspace(1e9, 1e11, 6)[::-1]
    # losses on x1's law (to 1e-4), so that the law beats a constant loss (analysis.significance)
    loss = predict_loss(ChinchillaParams.from_log(x1), n, d) * np.exp(1e-4 * np.array([1, -1, 1, -1, 1, -1]))
    data = log_data(n, d, loss)
    w = np.ones(6)
    lower, upper = bounds_for(None)
    for fun2, agree in ((1.0, False), (1.01, True)):
        batch = BatchResult(x=np.stack([x1, x2]), fun=np.array([1.0, fun2]), status=np.array([1, 1]), nit=np.ones(2))
        fit = summarize(data, w, batch, lower, upper, n_starts=2, n_agree=2, fixed_E=False, delta=1e-3)
        assert fit.starts_agree is agree and fit.success is agree
        np.testing.assert_array_equal(fit.x, x1)


def test_an_end_point_with_a_dead_term_that_fits_better_is_the_answer_and_fails_the_fit():
    """A converged end point and one where a term is negligible for every run (status DEGENERATE): when the dead
    term's fits better (by more than a tie) it is the answer, reported as not identified, whichever was met first;
    when it fits worse, or ties, the converged one is kept and the fit succeeds."""
    x1, dead = np.array([0.5, 6.0, 6.0, 0.34, 0.28]), np.array([-20.0, 2.3, 8.6, 0.08, 0.39])
    n, d = np.logspace(6, 8, 6), np.geomspace(1e9, 1e11, 6)[::-1]
    loss = predict_loss(ChinchillaParams.from_log(x1), n, d) * np.exp(1e-4 * np.array([1, -1, 1, -1, 1, -1]))
    data, w, (lower, upper) = log_data(n, d, loss), np.ones(6), bounds_for(None)
    for dead_fun, dead_wins in ((0.5, True), (1.0, False), (2.0, False)):
        batch = BatchResult(x=np.stack([x1, dead]), fun=np.array([1.0, dead_fun]), status=np.array([1, DEGENERATE]),
                            nit=np.ones(2))
        fit = summarize(data, w, batch, lower, upper, n_starts=2, n_agree=1, fixed_E=False, delta=1e-3)
        np.testing.assert_array_equal(fit.x, dead if dead_wins else x1)
        assert fit.success is not dead_wins
        assert ("the best fit has a term of L(N, D) negligible for every run (objective 0.5 against 1" in fit.message) \
            is dead_wins


def test_runs_that_prefer_a_dead_term_give_a_failed_fit_and_unreliable_intervals_on_any_blas():
    """Porian et al.'s Kaplan setting without its largest budget: the best end point has E → 0 at half the
    objective of the best one with a floor (α = 7.6, where one BLAS build's rounding met it and took it as the
    answer before this rule), so the fit is not identified on every machine, and its intervals are unreliable
    (replicates whose own best end point has a dead term are dropped by the same rule)."""
    runs = pd.read_csv(Path(__file__).parent / "golden" / "porian_kaplan.csv")
    train = runs[runs["budget"] < runs["budget"].max()]
    fit = fit_parametric(train)
    assert not fit.success and fit.E < 1e-6
    boot = bootstrap_parametric(train, n_resamples=40, seed=0, fit=fit)
    assert boot.n_converged < 20 and not boot.interval_reliable


@pytest.mark.parametrize("n, d, match", [
    ([1e6, 2e6, 3e6, 4e6], [1e9, 2e9, 3e9, 4e9], "5 distinct"),
    ([1e6] * 6, [1e9, 2e9, 3e9, 4e9, 5e9, 6e9], "2 distinct N"),
    ([1e6, 2e6, 3e6, 4e6, 5e6, 6e6], [1e9] * 6, "2 distinct D"),
])
def test_too_few_runs_is_a_clear_error(n, d, match):
    with pytest.raises(ValueError, match="too few runs") as err:
        fit_parametric_arrays(n, d, np.full(len(n), 3.0))
    assert "distinct" in str(err.value)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"loss\[1\]"):
        fit_parametric_arrays([1e6, 2e6], [1e9, 2e9], [3.0, -1.0])
    with pytest.raises(ValueError, match="missing column"):
        fit_parametric(pd.DataFrame({"N": [1.0], "D": [1.0]}))
    with pytest.raises(ValueError, match="fix_E"):
        fit_parametric_arrays(np.logspace(6, 7, 6), np.logspace(9, 10, 6), np.full(6, 3.0), fix_E=-1.0)


# ------------------------------------------------------------------------------------------ closed forms

def test_compute_optimal_spends_exactly_C_and_minimises_loss_on_the_isoflop_curve():
    params = CHINCHILLA_2022
    for C in (1e18, 5.76e23, 1e26):
        n_opt, d_opt = compute_optimal(params, C)
        assert 6 * n_opt * d_opt == pytest.approx(C, rel=1e-10)
        along = lambda log_n: float(predict_loss(params, math.exp(log_n), C / (6 * math.exp(log_n))))
        found = minimize_scalar(along, bounds=(math.log(n_opt) - 5, math.log(n_opt) + 5), method="bounded",
                                options={"xatol": 1e-9})
        assert math.exp(found.x) == pytest.approx(float(n_opt), rel=1e-4)
    # Hoffmann et al. (2022) Table 3 (Approach 3): 5.76e23 FLOPs -> ~40B parameters
    assert float(compute_optimal(params, 5.76e23)[0]) == pytest.approx(40e9, rel=0.25)


def test_predict_loss_matches_the_formula_and_handles_zero_E():
    p = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    n, d = np.array([1e6, 1e9]), np.array([1e9, 1e12])
    np.testing.assert_allclose(predict_loss(p, n, d), 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28, rtol=1e-12)
    zero = ChinchillaParams(E=0.0, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    np.testing.assert_allclose(predict_loss(zero, n, d), 406.4 / n**0.34 + 410.7 / d**0.28, rtol=1e-12)


def test_params_validate_their_fields():
    with pytest.raises(ValueError, match="alpha"):
        ChinchillaParams(E=1.0, A=1.0, B=1.0, alpha=0.0, beta=0.3)
    with pytest.raises(ValueError, match="E must be"):
        ChinchillaParams(E=-1.0, A=1.0, B=1.0, alpha=0.3, beta=0.3)


# ------------------------------------------------------------------------------------------ bootstrap

@pytest.fixture(scope="module")
def chinchilla_bootstrap(chinchilla_runs, chinchilla_fit):
    return bootstrap_parametric(chinchilla_runs, n_resamples=300, seed=7, fit=chinchilla_fit)


def test_bootstrap_intervals_contain_the_truth_and_report_convergence(chinchilla_bootstrap):
    boot, truth = chinchilla_bootstrap, CHINCHILLA_2022
    assert boot.n_resamples == 300 and boot.n_converged == 300 and boot.seed == 7
    for name in ("E", "alpha", "beta", "a", "b"):
        lo, hi = boot.intervals[name]
        assert lo < getattr(truth, name) < hi, (name, lo, hi)
        assert boot.intervals[name].n_finite == 300
    lo, hi = boot.compute_optimal_intervals(5.76e23)["n_opt"]
    assert lo < float(compute_optimal(truth, 5.76e23)[0]) < hi
    lo, hi = boot.loss_interval(1e9, 2e10)
    assert lo < float(predict_loss(truth, 1e9, 2e10)) < hi


def test_bootstrap_replicates_reach_their_own_optimum(chinchilla_runs, chinchilla_bootstrap):
    """A replicate's sample equals a full independent fit on that resample (counts as weights), drawn within
    each budget."""
    counts = bootstrap_counts(len(chinchilla_runs), 300, seed=7, strata=budget_strata(chinchilla_runs))
    for r in (0, 1):
        refit = fit_parametric(chinchilla_runs, weights=counts[r])
        sample = chinchilla_bootstrap.samples[r]
        np.testing.assert_allclose(sample, [refit.E, refit.A, refit.B, refit.alpha, refit.beta], rtol=1e-4)


def test_bootstrap_prediction_samples_match_closed_forms(chinchilla_bootstrap):
    samples = chinchilla_bootstrap.samples[:5]
    out = optimum_samples(samples, 1e21)
    for row, n_opt, d_opt, loss in zip(samples, out["n_opt"], out["d_opt"], out["loss"]):
        p = ChinchillaParams(E=row[0], A=row[1], B=row[2], alpha=row[3], beta=row[4])
        assert (n_opt, d_opt) == pytest.approx(tuple(float(v) for v in compute_optimal(p, 1e21)), rel=1e-10)
        assert loss == pytest.approx(float(predict_loss(p, n_opt, d_opt)), rel=1e-10)
    grid = loss_samples(samples, np.array([1e7, 1e8]), np.array([1e9, 1e10]))
    assert grid.shape == (5, 2)


def test_bootstrap_resampling_helpers():
    counts = bootstrap_counts(10, 4, seed=0)
    assert counts.shape == (4, 10) and counts.min() >= 0 and np.all(counts.sum(axis=1) == 10)
    np.testing.assert_array_equal(counts, bootstrap_counts(10, 4, seed=0))  # fixed seed, same draw
    with pytest.raises(ValueError, match="≥ 1"):
        bootstrap_counts(0, 4, seed=0)
    groups = np.repeat(["x", "y", "z"], [2, 3, 5])
    grouped = bootstrap_counts(10, 50, seed=1, groups=groups)
    for label in "xyz":  # every row of a group is drawn together
        block = grouped[:, groups == label]
        assert np.all(block == block[:, :1])


def test_stratified_counts_keep_each_stratum_whole():
    """Drawn within strata (Approach 3's default, by budget): each stratum draws as many units as it has, groups
    are drawn whole inside their stratum, and a group across strata is refused."""
    strata = np.repeat([1e18, 1e19, 1e20], [3, 4, 5])
    counts = bootstrap_counts(12, 200, seed=3, strata=strata)
    for label, size in ((1e18, 3), (1e19, 4), (1e20, 5)):
        assert np.all(counts[:, strata == label].sum(axis=1) == size)
    assert counts[:, strata == 1e20].std(axis=0).min() > 0  # still resampled inside a stratum
    groups = np.array([0, 0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 7])
    grouped = bootstrap_counts(12, 200, seed=3, groups=groups, strata=strata)
    for g in np.unique(groups):
        block = grouped[:, groups == g]
        assert np.all(block == block[:, :1])
    with pytest.raises(ValueError, match="inside one stratum"):
        bootstrap_counts(12, 5, seed=0, groups=np.r_[groups[:3], [0], groups[4:]], strata=strata)


def test_budget_strata_pool_budgets_too_small_to_resample():
    runs = pd.DataFrame({"budget": [1e18] * 5 + [1e19] * 2 + [1e20] * 1, "N": np.arange(8) + 1.0})
    labels = budget_strata(runs)
    assert len(set(labels[:5])) == 1 and labels[0] == 1e18
    assert set(labels[5:]) == {-1.0}  # 2 and 1 runs: pooled, so they are still resampled
    # no budget or C column: budgets from C = 6·N·D; a table with every C its own is one stratum
    grid = pd.DataFrame({"N": [1e7, 2e7, 4e7, 8e7], "D": [1e9, 3e9, 1e10, 3e10]})
    assert set(budget_strata(grid)) == {-1.0}
    isoflop = pd.DataFrame({"N": [1e7, 2e7, 4e7] * 2, "D": [1e9, 5e8, 2.5e8, 1e10, 5e9, 2.5e9]})
    assert len(set(budget_strata(isoflop))) == 2


def test_the_bootstrap_draws_within_budgets_by_default(chinchilla_runs, chinchilla_bootstrap):
    """fit_all's and the backtest's bootstrap keep every budget's count in every replicate (the pairs scheme
    before, `stratify=False`, did not); docs/methods.md gives the calibration that chose it."""
    counts = bootstrap_counts(len(chinchilla_runs), 300, seed=7, strata=budget_strata(chinchilla_runs))
    budgets = chinchilla_runs["budget"].to_numpy()
    for b in np.unique(budgets):
        assert np.all(counts[:, budgets == b].sum(axis=1) == (budgets == b).sum())
    pairs = bootstrap_parametric(chinchilla_runs, n_resamples=20, seed=7, fit=chinchilla_bootstrap.fit, stratify=False)
    assert not np.allclose(pairs.samples, chinchilla_bootstrap.samples[:20])


def test_a_new_runs_noise_is_drawn_from_residuals_scaled_for_the_fitted_parameters(chinchilla_fit):
    n = chinchilla_fit.residuals.size
    np.testing.assert_allclose(chinchilla_fit.noise_residuals, chinchilla_fit.residuals * np.sqrt(n / (n - 5)))


# ------------------------------------------------------------------------------------------ power-law helper

def test_power_law_recovers_exact_law_and_reports_fit_quality():
    x = np.logspace(18, 22, 6)
    fit = fit_power_law(x, 0.1 * x**0.5)
    assert fit.success and fit.n_points == 6
    assert (fit.k, fit.p, fit.r2) == pytest.approx((0.1, 0.5, 1.0), rel=1e-9)
    np.testing.assert_allclose(fit.predict([1e24]), [0.1 * 1e12], rtol=1e-9)
    weighted = fit_power_law([1, 2, 4, 8], [1, 2, 4, 100], weights=[1, 1, 1, 0])
    assert weighted.p == pytest.approx(1.0)
    assert not fit_power_law([3, 3], [1, 2]).success
    with pytest.raises(ValueError, match=r"y\[1\]"):
        fit_power_law([1, 2], [1, 0])


def test_percentile_interval_is_nan_safe_and_counts_finite_samples():
    values = np.concatenate([np.arange(1.0, 101.0), [np.nan, np.inf]])
    interval = percentile_interval(values, 0.9)
    lo, hi = interval
    assert (lo, hi) == pytest.approx((5.95, 95.05))
    assert interval.n_finite == 100 and interval.n_total == 102
    assert all(math.isnan(v) for v in percentile_interval([np.nan, 1.0]))


# ------------------------------------------------------------------------------------------ batched L-BFGS

def test_minimize_batch_solves_independent_problems_with_bounds():
    """Rosenbrock from several starts reaches (1, 1); a quadratic whose minimum lies outside the box
    ends on the projection of that minimum, with the free coordinate still optimised."""
    def rosenbrock(x, rows):
        a, b = x[:, 0], x[:, 1]
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g = np.column_stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        return f, g

    starts = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, 3.0], [-0.5, 2.0]])
    res = minimize_batch(rosenbrock, starts, np.full(2, -5.0), np.full(2, 5.0))
    assert res.converged.all()
    np.testing.assert_allclose(res.x, np.ones((4, 2)), atol=1e-5)

    centres = np.array([[3.0, 0.5], [-2.0, -0.25]])

    def quadratic(x, rows):
        return np.sum((x - centres[rows]) ** 2, axis=1), 2 * (x - centres[rows])

    res = minimize_batch(quadratic, np.zeros((2, 2)), np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(res.x, [[1.0, 0.5], [-1.0, -0.25]], atol=1e-8)
    assert res.converged.all()
