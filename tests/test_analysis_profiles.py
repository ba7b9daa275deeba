"""Approaches 1 and 2 and the Kaplan fits recover known parameters from simulated sweeps, and say what they
excluded: the robust parabola, edge-minimum budgets, bad input."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.envelope import END_TOLERANCE, fit_envelope
from analysis.isoflop import assign_budgets, fit_isoflop, fit_parabola
from analysis.kaplan import compute_frontier, fit_kaplan, fit_single_power_law
from analysis.parametric import CHINCHILLA_2022, ChinchillaParams, compute_optimal, predict_loss
from analysis.simulate import simulate_curves, simulate_runs

BUDGETS = np.geomspace(1e17, 1e19, 5)
TRUE_A = CHINCHILLA_2022.beta / (CHINCHILLA_2022.alpha + CHINCHILLA_2022.beta)  # 0.4516


def isoflop_runs(noise=0.003, seed=0, **kwargs):
    return simulate_runs(budgets=BUDGETS, n_per_budget=9, width=6.0, noise=noise, seed=seed, **kwargs)


# ---------------------------------------------------------------------------------------------- parabola

def test_parabola_recovers_vertex_of_exact_parabola():
    """A noise-free parabola's vertex and curvature come back exactly; no point is dropped."""
    x = np.linspace(-2, 3, 7)
    fit = fit_parabola(x, 1.5 + 0.4 * (x - 0.7) ** 2, noise_scale=0.01)
    assert fit.vertex == pytest.approx(0.7, abs=1e-9)
    assert fit.c2 == pytest.approx(0.4, rel=1e-9)
    assert fit.dropped is None


def test_parabola_drops_one_injected_outlier_and_keeps_its_vertex():
    """One wild point moves a plain least-squares vertex; the robust fit drops exactly it and recovers the vertex."""
    rng = np.random.default_rng(3)
    x = np.linspace(-2, 2, 9)
    y = 2.0 + 0.3 * (x - 0.4) ** 2 + 0.002 * rng.standard_normal(9)
    y[8] += 0.25
    plain = fit_parabola(x, y, noise_scale=0.002, outlier_threshold=None)
    robust = fit_parabola(x, y, noise_scale=0.002)
    assert abs(plain.vertex - 0.4) > 0.05
    assert robust.dropped == 8
    assert robust.vertex == pytest.approx(0.4, abs=0.01)


def test_parabola_rejects_fewer_than_three_distinct_x():
    """Two distinct x cannot fix a parabola: a clear ValueError."""
    with pytest.raises(ValueError, match="3 distinct"):
        fit_parabola([1.0, 1.0, 2.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------------------------- Approach 2

def test_isoflop_recovers_allocation_exponent():
    """a from IsoFLOP parabolas on data drawn from Chinchilla's parameters (+0.3% noise) is within 3% of
    β/(α+β), its interval covers it, b = 1 − a, and each budget's N* is within 10% of the true N_opt."""
    fit = fit_isoflop(isoflop_runs(), n_bootstrap=300)
    assert fit.success, fit.message
    assert fit.a == pytest.approx(TRUE_A, rel=0.03)
    assert fit.a_interval[0] <= TRUE_A <= fit.a_interval[1]
    assert fit.b == pytest.approx(1 - fit.a, abs=1e-3)
    n_true, _ = compute_optimal(CHINCHILLA_2022, BUDGETS)
    assert all(p.included for p in fit.profiles)
    assert np.allclose([p.n_opt for p in fit.profiles], n_true, rtol=0.10)


def test_isoflop_robust_to_one_outlier_per_budget():
    """A broken run (+0.3 nats) in one budget is dropped and named; a stays within 3% of the truth."""
    runs = isoflop_runs()
    bad = runs.index[(runs["budget"] == BUDGETS[2])][6]
    runs.loc[bad, "loss"] += 0.3
    fit = fit_isoflop(runs, n_bootstrap=0)
    assert fit.profiles[2].dropped_run_id == runs.loc[bad, "run_id"]
    assert sum(p.dropped_run_id is not None for p in fit.profiles) == 1
    assert runs.loc[bad, "run_id"] in fit.message
    assert fit.a == pytest.approx(TRUE_A, rel=0.03)


def test_isoflop_no_outlier_dropped_from_clean_data():
    """With ordinary noise no run is called an outlier (no false positives over 5 seeds)."""
    for seed in range(5):
        fit = fit_isoflop(isoflop_runs(noise=0.01, seed=seed), n_bootstrap=0)
        assert all(p.dropped_run_id is None for p in fit.profiles)


def test_edge_minimum_budget_flagged_excluded_and_warned():
    """A budget whose sizes all lie above its optimum is flagged, left out of the law (a unchanged), and a
    warning names it."""
    runs = isoflop_runs()
    n_opt, _ = compute_optimal(CHINCHILLA_2022, [3e19])
    n = n_opt[0] * np.geomspace(3, 30, 5)
    shifted = pd.DataFrame({"run_id": [f"edge-{i}" for i in range(5)], "status": "completed", "N": n,
                            "D": 3e19 / (6 * n), "budget": 3e19})
    shifted["loss"] = predict_loss(CHINCHILLA_2022, shifted["N"], shifted["D"])
    with pytest.warns(UserWarning, match="3e\\+19: (edge|outside)"):
        fit = fit_isoflop(pd.concat([runs, shifted], ignore_index=True), n_bootstrap=0)
    edge = [p for p in fit.profiles if p.budget == 3e19][0]
    assert edge.status in ("edge", "outside") and not edge.included
    assert fit.a == pytest.approx(fit_isoflop(runs, n_bootstrap=0).a, abs=1e-12)


def test_quiet_fits_return_the_warnings_as_notes():
    """warn=False: fit_isoflop and fit_envelope raise nothing, and their notes are the very messages the
    warning calls raise (a diverged run, a budget whose minimum is not bracketed, bad curve points)."""
    runs = isoflop_runs()
    top = runs["budget"] == BUDGETS[-1]
    log_n = np.log(runs.loc[top, "N"])
    runs.loc[top, "loss"] = 3.0 - 0.05 * (log_n - log_n.mean()) ** 2
    runs.loc[0, "status"] = "diverged"
    curves = simulate_curves(isoflop_runs(noise=0.0), n_points=10, noise=0.0)
    curves.loc[[3, 4], "loss"] = [np.nan, -1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        isoflop = fit_isoflop(runs, n_bootstrap=0, warn=False)
        envelope = fit_envelope(curves, n_bootstrap=0, warn=False)
    for quiet, fit_function, data in ((isoflop, fit_isoflop, runs), (envelope, fit_envelope, curves)):
        with pytest.warns(UserWarning) as record:
            fit_function(data, n_bootstrap=0)
        assert tuple(str(w.message) for w in record) == quiet.notes
    assert len(isoflop.notes) == 2 and runs.loc[0, "run_id"] in isoflop.notes[0] and "edge" in isoflop.notes[1]
    assert envelope.notes == ("curves: 2 row(s) with NaN or non-positive N, tokens or loss excluded",)


def test_a_profile_peaking_in_the_middle_is_not_bracketed():
    """A budget whose losses peak in the middle has its lowest run at an end: status 'edge', excluded.
    (The parabola is fitted around the lowest run, so the bracket is checked first; before the window, this
    profile's whole-profile parabola was reported as 'downward'.)"""
    runs = isoflop_runs()
    top = runs["budget"] == BUDGETS[-1]
    log_n = np.log(runs.loc[top, "N"])
    runs.loc[top, "loss"] = 3.0 - 0.05 * (log_n - log_n.mean()) ** 2
    with pytest.warns(UserWarning, match="edge"):
        fit = fit_isoflop(runs, n_bootstrap=0)
    assert fit.profiles[-1].status == "edge"
    assert sum(p.included for p in fit.profiles) == 4


def test_downward_parabola_around_an_interior_minimum_flagged():
    """A lowest run between two higher neighbours whose next neighbours are lower again (a ragged profile): the
    window's parabola opens downward, so the budget gets status 'downward' and is excluded."""
    runs = isoflop_runs()
    top = runs["budget"] == BUDGETS[-1]
    runs.loc[top, "loss"] = [3.3, 3.2, 3.1, 2.90, 2.95, 2.89, 2.95, 2.90, 3.1]
    with pytest.warns(UserWarning, match="downward"):
        fit = fit_isoflop(runs, n_bootstrap=0, outlier_threshold=None)
    assert fit.profiles[-1].status == "downward"
    assert sum(p.included for p in fit.profiles) == 4


def test_the_parabola_sees_only_the_runs_around_the_minimum():
    """A lopsided profile (runs far up one wall, as at Porian et al.'s smallest budgets): the parabola is fitted to
    the lowest run and two sizes on each side, so its minimum stays near the lowest run's loss, where one
    parabola over all nine runs dips far below it."""
    runs = isoflop_runs(noise=0.0)
    top = runs["budget"] == BUDGETS[-1]
    u = np.log(runs.loc[top, "N"]) - np.log(runs.loc[top, "N"]).iloc[2]
    runs.loc[top, "loss"] = 3.0 + 0.05 * u**2 + 0.2 * np.clip(u, 0, None) ** 3  # steep towards large N
    fit = fit_isoflop(runs, n_bootstrap=0, outlier_threshold=None)  # noise-free: no outlier test
    profile = fit.profiles[-1]
    assert profile.included and profile.window.sum() == 5 and profile.fitted.sum() == 5
    assert profile.loss_opt == pytest.approx(3.0, rel=0.005)
    whole = fit_parabola(np.log(profile.n), profile.loss, outlier_threshold=None)
    assert whole.minimum < 0.95 * 3.0


def test_windows_of_three_sizes_take_the_noise_scale_from_the_whole_profiles():
    """A sweep centred 1.66× above the optimum (the demo's prior against its own fitted law): each lowest run is
    one size from the small end, so every window is 3 sizes and leaves no residual. The noise scale then comes
    from the whole profiles, the fit says so, and N* has an interval (before: none, and no frontier interval)."""
    law = ChinchillaParams(E=1.180, A=73.1, B=3368.0, alpha=0.534, beta=0.667)  # calibration's small-lab law
    runs = simulate_runs(budgets=(1e11, 3.16e11, 1e12), n_per_budget=5, width=3.0, center=1.66, params=law,
                         noise=0.006, seed=3)
    fit = fit_isoflop(runs, n_bootstrap=200, warn=False)
    assert all(p.window.sum() == 3 for p in fit.profiles)
    assert math.isfinite(fit.noise_scale) and any("from the whole profiles" in note for note in fit.notes)
    assert all(math.isfinite(v) for v in fit.a_interval) and fit.interval_reliable
    centred = fit_isoflop(simulate_runs(budgets=(1e11, 3.16e11, 1e12), n_per_budget=5, width=3.0, params=law,
                                        noise=0.006, seed=3), n_bootstrap=0, warn=False)
    assert not any("whole profiles" in note for note in centred.notes)  # its windows have residuals


def test_isoflop_single_budget_is_not_a_power_law():
    """One budget gives its profile but success=False and a message saying ≥ 2 budgets are needed."""
    fit = fit_isoflop(simulate_runs(budgets=[1e18], n_per_budget=7, noise=0.003), n_bootstrap=0)
    assert not fit.success and "≥ 2 budgets" in fit.message
    assert fit.profiles[0].included and math.isnan(fit.a)


def test_isoflop_bad_input_is_a_clear_error_or_named_warning():
    """Missing columns and one-size budgets raise; diverged and NaN runs are excluded by name."""
    runs = isoflop_runs()
    with pytest.raises(ValueError, match="loss"):
        fit_isoflop(runs.drop(columns="loss"))
    one_size = runs.drop_duplicates("budget")
    with pytest.raises(ValueError, match="3 distinct model sizes"):
        fit_isoflop(one_size)
    broken = runs.copy()
    broken.loc[0, "status"] = "diverged"
    broken.loc[1, "loss"] = np.nan
    with pytest.warns(UserWarning, match=f"{runs.loc[0, 'run_id']}.*{runs.loc[1, 'run_id']}"):
        fit = fit_isoflop(broken, n_bootstrap=0)
    assert len(fit.profiles[0].run_ids) == 7


def test_budgets_from_clustered_compute_when_column_absent():
    """Without a budget column runs are grouped by C on a log scale: one group per nominal budget."""
    runs = isoflop_runs().drop(columns="budget")
    budgets = assign_budgets(runs)
    assert budgets.nunique() == len(BUDGETS)
    assert np.allclose(np.sort(budgets.unique()), BUDGETS, rtol=1e-3)


# ---------------------------------------------------------------------------------------------- Approach 1

def test_envelope_recovers_allocation_exponent_from_curves():
    """a from the envelope of simulated training curves is within 5% of β/(α+β) and b = 1 − a; the
    interval covers the truth; every envelope point satisfies D = C/(6N)."""
    runs = isoflop_runs(noise=0.0)
    curves = simulate_curves(runs, n_points=30, noise=0.001)
    fit = fit_envelope(curves, n_bootstrap=200)
    assert fit.success, fit.message
    assert fit.a == pytest.approx(TRUE_A, rel=0.05)
    assert fit.b == pytest.approx(1 - fit.a, abs=1e-9)
    assert fit.a_interval[0] <= TRUE_A <= fit.a_interval[1]
    assert np.allclose(6 * fit.n_opt_points * fit.d_opt_points, fit.levels)


def test_envelope_point_is_the_lowest_curve_at_its_level():
    """At every level the chosen run's interpolated loss is the minimum over all runs covering it (a curve
    covers C up to END_TOLERANCE beyond its ends, holding its end value); the top level is the top budget."""
    runs = isoflop_runs(noise=0.0)
    curves = simulate_curves(runs, n_points=15, noise=0.0)
    fit = fit_envelope(curves, n_bootstrap=0, n_levels=12)
    for level, loss in zip(fit.levels, fit.loss):
        best = np.inf
        for _, curve in curves.groupby("run_id"):
            log_c = np.log(6.0 * curve["N"].to_numpy(float) * curve["tokens"].to_numpy(float))
            if log_c.min() - END_TOLERANCE <= np.log(level) <= log_c.max() + END_TOLERANCE:
                at = np.clip(np.log(level), log_c.min(), log_c.max())
                best = min(best, np.interp(at, log_c, curve["loss"]))
        assert loss == pytest.approx(best, rel=1e-12)
    assert fit.levels[-1] == pytest.approx(BUDGETS[-1], rel=0.01)


def test_envelope_needs_two_sizes():
    """Curves from a single model size are a clear error, not a flat line."""
    runs = simulate_runs(budgets=BUDGETS, sizes=[5e7], noise=0.0)
    with pytest.raises(ValueError, match="2 sizes"):
        fit_envelope(simulate_curves(runs, n_points=5))


def test_envelope_warns_about_bad_curve_points():
    """Non-finite curve losses are excluded with a warning that counts them."""
    curves = simulate_curves(isoflop_runs(noise=0.0), n_points=10, noise=0.0)
    curves.loc[[3, 4], "loss"] = [np.nan, -1.0]
    with pytest.warns(UserWarning, match="2 row"):
        fit_envelope(curves, n_bootstrap=0)


# ---------------------------------------------------------------------------------------------- Kaplan

def test_kaplan_power_law_exact_recovery():
    """Points on L = (x_c/x)^α and L = E + (x_c/x)^α give back their parameters."""
    x = np.geomspace(1e6, 1e9, 8)
    plain = fit_single_power_law(x, (8.8e13 / x) ** 0.076, irreducible=False, variable="N")
    assert plain.success and plain.alpha == pytest.approx(0.076, rel=1e-6)
    assert plain.x_c == pytest.approx(8.8e13, rel=1e-4)
    with_e = fit_single_power_law(x, 1.7 + (3e5 / x) ** 0.3, irreducible=True, variable="N")
    assert with_e.success, with_e.message
    assert with_e.E == pytest.approx(1.7, rel=1e-4) and with_e.alpha == pytest.approx(0.3, rel=1e-4)


def test_kaplan_frontier_fit_recovers_compute_exponent():
    """Along the compute frontier of a Chinchilla-form sweep, L(C) = E + (C_c/C)^α_C has α_C ≈ αβ/(α+β)
    (the loss at the optimal allocation), and E near the true 1.69."""
    fits = fit_kaplan(isoflop_runs(noise=0.0005))
    p = CHINCHILLA_2022
    assert fits.loss_vs_c_irreducible.alpha == pytest.approx(p.alpha * p.beta / (p.alpha + p.beta), rel=0.1)
    assert fits.loss_vs_c_irreducible.E == pytest.approx(p.E, rel=0.05)


def test_kaplan_reports_too_few_points_and_bounds():
    """Three points cannot fit three parameters plus a residual: success=False with the reason; an E pushed
    to its bound is named in the message."""
    few = fit_single_power_law([1e6, 1e7, 1e8], [3.0, 2.8, 2.7], irreducible=True, variable="N")
    assert not few.success and "need ≥ 4" in few.message
    x = np.geomspace(1e6, 1e9, 6)
    no_floor = fit_single_power_law(x, (8.8e13 / x) ** 0.076, irreducible=True, variable="N")
    assert not no_floor.success and "E on its lower bound" in no_floor.message


def test_compute_frontier_is_monotone_and_minimal():
    """Every frontier run beats all runs of smaller C; the frontier's loss decreases with C."""
    runs = isoflop_runs()
    frontier = compute_frontier(runs)
    assert np.all(np.diff(frontier["loss"]) < 0)
    for _, row in frontier.iterrows():
        assert (runs.loc[runs["C"] < row["C"], "loss"] > row["loss"]).all()
