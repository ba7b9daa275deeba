"""Intervals called 95% cover about 95% of the truth on simulated sweeps of known laws (analysis/calibration.py).

A quick version of benchmarks/calibration.py (whose 100-sweep figures at 200 replicates are in docs/methods.md):
100 sweeps per check (50 for Approach 3), fewer bootstrap replicates, Approach 3 from its variable-projection starts only (the same
optimum as the default's, to ~1e-13). The target is 90-98%; where we miss it the test is a strict xfail with the
measured figure, so an improvement shows.
"""


import numpy as np
import pytest

from analysis.calibration import FAMILIES, Coverage, calibrate, chance_inside
from analysis.simulate import simulate_runs
from analysis.study_fit import fit_all


@pytest.fixture(scope="module")
def chinchilla_law():
    """Hoffmann et al.'s law on 5 budgets × 9 sizes, 0.6% noise (our runs' seed-to-seed spread)."""
    return calibrate(FAMILIES["chinchilla"], n_sweeps=100, noise=0.006, factors=(4.0,), n_bootstrap=100,
                     approaches=("approach2",))


@pytest.fixture(scope="module")
def small_lab():
    """Our demo's fitted law on its design: 3 budgets × 5 sizes, 0.6% noise."""
    return calibrate(FAMILIES["small-lab"], n_sweeps=100, noise=0.006, factors=(4.0,), n_bootstrap=100,
                     approaches=("approach2",))


@pytest.mark.parametrize("quantity", ["approach2 n_opt", "frontier loss_opt", "frontier loss", "frontier loss_small",
                                      "frontier loss_large"])
def test_approach2_and_frontier_cover_the_truth_4x_beyond_a_chinchilla_sweep(chinchilla_law, quantity):
    """Measured: 0.99, 0.95, 0.97 (the benchmark before the lack-of-fit widening and the floor-law union: 0.92,
    0.45, 0.47), and for new runs at half and twice N_opt 0.99 and 0.98."""
    coverage = chinchilla_law.coverage(quantity, 4.0)
    assert coverage.n_scored >= 95 and coverage.coverage >= 0.90, coverage


def test_approach2_covers_the_truth_4x_beyond_a_small_lab_sweep(small_lab):
    """Measured 0.96 (0.81 before the lack-of-fit widening)."""
    coverage = small_lab.coverage("approach2 n_opt", 4.0)
    assert coverage.n_scored == 100 and coverage.coverage >= 0.90, coverage


def test_frontier_covers_the_truth_4x_beyond_a_small_lab_sweep(small_lab):
    """Measured 0.96 (L_opt), 0.96 (a new run) and 0.98, 0.98 (new runs at half and twice N_opt). Before the
    intervals held the floor law fitted exactly through the 3 minima: 0.85 and 0.89, all 15 and 11 misses above
    (the floorless law runs 4.6% low here, median), in the 15 sweeps whose one residual degree of freedom left
    the lack-of-fit widening at 1; with the union but the floorless law also widened by its own misfit (counted
    twice, docs/methods.md): 0.99, 0.98, 1.00, 0.99, with intervals 4× as wide."""
    for quantity in ("frontier loss_opt", "frontier loss", "frontier loss_small", "frontier loss_large"):
        coverage = small_lab.coverage(quantity, 4.0)
        assert coverage.n_scored == 100 and coverage.coverage >= 0.90, coverage


def test_approach2_and_frontier_cover_the_truth_beyond_an_off_centre_sweep():
    """Sizes centred where the demo's prior put them (1.66× the optimum): before the whole-profile noise scale, 90
    of 100 sweeps gave Approach 2 and the frontier no interval. Now Approach 2 has one in all 100, covering 0.98 at
    4× (100 replicates; 0.99 at 2×); the frontier's are unreliable in 17 and cover 0.93 (L_opt), 0.95 (a new run
    at N_opt) and 0.96, 0.96 (at half and twice it) in the other 83."""
    result = calibrate(FAMILIES["off-centre"], n_sweeps=100, noise=0.006, factors=(4.0,), n_bootstrap=100,
                       approaches=("approach2",))
    coverage = result.coverage("approach2 n_opt", 4.0)
    assert coverage.n_scored == 100 and coverage.coverage >= 0.90, coverage
    for quantity in ("frontier loss_opt", "frontier loss", "frontier loss_small", "frontier loss_large"):
        coverage = result.coverage(quantity, 4.0)
        assert coverage.n_scored >= 75 and coverage.coverage >= 0.90, coverage


def test_kaplans_law_has_its_optimum_where_its_loss_is_least():
    """The closed-form N_opt of analysis/kaplan_law.py against a search of L(N, C/6N), and its exponent 1/(1 + r)."""
    law = FAMILIES["kaplan-form"].params
    for compute in (1e18, 1e20, 1e22):
        n_opt, d_opt = (float(v) for v in law.optimum(compute))
        assert 6 * n_opt * d_opt == pytest.approx(compute, rel=1e-12)
        grid = n_opt * np.exp(np.linspace(-0.5, 0.5, 2001))
        assert grid[np.argmin(law.loss(grid, compute / (6 * grid)))] == pytest.approx(n_opt, rel=1e-3)
    slope = np.log(law.optimum(1e22)[0] / law.optimum(1e18)[0]) / np.log(1e4)
    assert slope == pytest.approx(1 / (1 + law.alpha_N / law.alpha_D), rel=1e-9)
    with pytest.raises(ValueError, match="alpha_D"):
        type(law)(N_c=1.0, D_c=1.0, alpha_N=0.1, alpha_D=0.0)


def test_approach2_and_frontier_cover_the_truth_beyond_a_sweep_of_another_form():
    """Kaplan et al. 2020's L(N, D) (analysis/kaplan_law.py), a truth whose form none of our fits assumes, on 5
    budgets × 9 sizes: measured 0.95 (N_opt), 0.97 (L_opt), 0.96, 0.96, 0.98 (new runs at N_opt, half and twice)."""
    result = calibrate(FAMILIES["kaplan-form"], n_sweeps=100, noise=0.006, factors=(4.0,), n_bootstrap=100,
                       approaches=("approach2",))
    for quantity in ("approach2 n_opt", "frontier loss_opt", "frontier loss", "frontier loss_small",
                     "frontier loss_large"):
        coverage = result.coverage(quantity, 4.0)
        assert coverage.n_scored == 100 and coverage.coverage >= 0.90, coverage


def test_where_the_form_is_wrong_approach3_misses_the_fit_says_so_and_the_headline_is_the_frontier():
    """On the same sweeps Chinchilla's form invents a floor (E ≈ 2.4) under a law that has none, and Approach 3
    predicts a compute-optimal run 4× beyond the sweep about 8% high, its intervals holding none of the truths
    (calibration, docs/methods.md). What protects a user: the lack-of-fit F-test names the misfit (measured in
    19 of 20 sweeps), and the headline rule, which scores both predictors on the sweep's own largest budget,
    leads with the frontier (20 of 20; its median error +0.02%)."""
    family = FAMILIES["kaplan-form"]
    compute = 4 * max(family.budgets)
    n, d = (float(v) for v in family.params.optimum(compute))
    truth = float(family.params.loss(n, d))
    errors, flagged, headlines = [], 0, []
    for seed in range(20):
        runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                             params=family.params, noise=0.006, seed=seed)
        fit = fit_all(runs, approaches=(2, 3), n_bootstrap=50, seed=seed)
        errors.append(fit.predict_run(n, d, by="approach3").value / truth - 1)
        flagged += any("misses these runs by more than their noise" in w for w in fit.warnings)
        headlines.append(fit.headline.predictor)
    assert np.median(errors) > 0.05
    assert flagged >= 17 and headlines.count("frontier") >= 18, (flagged, headlines)


def test_approach3_covers_the_truth_4x_beyond_a_small_lab_sweep():
    """50 sweeps, 40 replicates each, to stay quick (Approach 3 costs most): measured 0.96 (N_opt) and 0.94 (a new
    run); the benchmark's 100 sweeps at 200 replicates: 0.97 and 0.96 (1.00 and 0.98 before stop 19's bootstrap)."""
    result = calibrate(FAMILIES["small-lab"], n_sweeps=50, noise=0.006, factors=(4.0,), n_bootstrap=40,
                       approaches=("approach3",), search="varpro")
    for quantity in ("approach3 n_opt", "approach3 loss"):
        coverage = result.coverage(quantity, 4.0)
        assert coverage.n_scored >= 48 and 0.88 <= coverage.coverage, coverage


def test_a_new_runs_chance_inside_is_the_share_of_its_noise_draws():
    """The expected coverage's term (analysis.calibration's docstring) against 400,000 draws of the run's noise."""
    rng = np.random.default_rng(0)
    for interval, loss, noise in [((0.99, 1.02), 1.0, 0.01), ((2.0, 2.004), 2.003, 0.002), ((1.1, 1.2), 1.0, 0.006)]:
        draws = loss * np.exp(noise * rng.standard_normal(400_000))
        share = float(np.mean((interval[0] <= draws) & (draws <= interval[1])))
        assert chance_inside(interval, loss, noise) == pytest.approx(share, abs=0.003)
    assert chance_inside((0.9, 1.1), 1.0, 0.0) == 1.0 and chance_inside((1.1, 1.2), 1.0, 0.0) == 0.0


def test_expected_coverage_agrees_with_the_draws_and_is_exact_for_fixed_truths(small_lab):
    """Over the same 100 sweeps: N_opt's truth is fixed, so both estimates are the share; a new run's expected
    coverage is within the draws' Monte Carlo error (two binomial standard errors) of their share."""
    fixed = small_lab.coverage("approach2 n_opt", 4.0)
    assert fixed.expected_coverage == fixed.coverage
    for quantity in ("frontier loss", "frontier loss_small", "frontier loss_large"):
        c = small_lab.coverage(quantity, 4.0)
        p = c.expected_coverage
        assert abs(c.coverage - p) <= 2 * np.sqrt(max(p * (1 - p), 0.01) / c.n_scored) + 1e-9, c
        assert c.expected_standard_error <= np.sqrt(0.25 / c.n_scored)
    with pytest.raises(ValueError, match="pair up"):
        Coverage("frontier loss", 4.0, (True,), (), 0, 0)


def test_calibrate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="approaches"):
        calibrate(FAMILIES["small-lab"], n_sweeps=1, approaches=("approach4",))
    with pytest.raises(ValueError, match="factors"):
        calibrate(FAMILIES["small-lab"], n_sweeps=1, factors=(-1.0,))


def test_a_bootstrap_that_dropped_most_replicates_is_marked_unreliable():
    """One of the chinchilla family's sweeps (seed 93): 102 of 200 frontier replicates drop a budget (a parabola's
    vertex leaves its window), so its intervals are marked unreliable, and the fit and its predictions say so."""
    import warnings

    from analysis.powerlaw import replicates_reliable
    from analysis.simulate import simulate_runs
    from analysis.study_fit import fit_all

    family = FAMILIES["chinchilla"]
    runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                         params=family.params, noise=0.006, seed=93)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what the fits leave out is in the result
        fit = fit_all(runs, approaches=(2,), n_bootstrap=200, seed=93, holdout=())
    frontier = fit.frontier
    assert frontier.success and frontier.n_converged < 100 and not frontier.interval_reliable
    sentence = f"the loss frontier's intervals are unreliable ({frontier.n_converged} of 200 bootstrap replicates kept)"
    assert fit.unreliable_intervals() == (sentence,)
    assert sentence in fit.predict_at(4 * max(family.budgets)).warnings
    assert replicates_reliable(100, 200) and not replicates_reliable(99, 200) and not replicates_reliable(1, 1)
