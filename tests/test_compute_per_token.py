"""Compute per token (analysis/compute_per_token.py): fitted from the runs' C/D, exactly 6·N on a C = 6·N·D
table, and used by every C → D conversion, so that D_opt·f(N_opt) is the budget for every approach."""

import json
import math

import numpy as np
import pytest

from analysis.compute_per_token import SIX_N, ComputePerToken, fit_compute_per_token, split_compute
from analysis.parametric import CHINCHILLA_2022, compute_optimal, predict_loss
from analysis.simulate import simulate_curves, simulate_runs, write_store
from analysis.study_fit import StudyFit, fit_all
from analysis.table import read_curves, read_table

CONTEXT = 256


def exact_style(n):
    """6·N + 12·L·ctx·d per token for a model of N ≈ 12·L·d² at L = d/64 (attention over the context)."""
    d = (64 * np.asarray(n, dtype=float) / 12) ** (1 / 3)
    return 6 * np.asarray(n, dtype=float) + 12 * (d / 64) * CONTEXT * d


def exact_table(seed=0):
    """A demo-sized IsoFLOP sweep (N ~ 1e4-1e6, f/6N ~ 1.2-1.9) whose C counts attention: C = D·f(N), each
    cell's budget the geometric mean of its runs' C (as analysis/compute.py regroups), loss L(N, D) unchanged."""
    table = simulate_runs(budgets=np.geomspace(1e11, 1e13, 5), n_per_budget=7, width=6.0, noise=0.005, seed=seed)
    table["C"] = table["D"].astype(float) * exact_style(table["N"])
    table["budget"] = table.groupby("budget")["C"].transform(lambda c: math.exp(np.log(c).mean()))
    return table


def test_a_6n_table_gives_exactly_6n_and_the_closed_form():
    n = np.geomspace(1e4, 1e8, 9).round()
    per_token = fit_compute_per_token(n, 6 * n)
    assert per_token.is_6n and per_token.n_runs == 9 and per_token == ComputePerToken(n_runs=9)
    assert fit_compute_per_token([], []).is_6n
    c = np.geomspace(1e12, 1e22, 4)
    for left, right in zip(compute_optimal(CHINCHILLA_2022, c, per_token), compute_optimal(CHINCHILLA_2022, c)):
        np.testing.assert_array_equal(left, right)  # the closed form itself, not a search near it


def test_the_exact_form_is_recovered_and_other_excesses_get_a_log_log_line():
    n = np.geomspace(1e4, 1e6, 7)
    per_token = fit_compute_per_token(n, exact_style(n))
    assert not per_token.is_6n and per_token.max_rel_error < 1e-9
    assert per_token.b == pytest.approx(2 / 3, rel=1e-9) and per_token.k == 6 and per_token.p == 1
    below = fit_compute_per_token(n, 5.0 * n**1.01)  # C/D below 6·N for some runs: no excess to take a log of
    assert below.c == 0 and below.p == pytest.approx(1.01) and below.k == pytest.approx(5.0)
    with pytest.raises(ValueError, match="c ≥ 0"):
        ComputePerToken(c=-1.0)


def test_split_compute_is_the_constrained_minimum():
    per_token = fit_compute_per_token(np.geomspace(1e4, 1e6, 7), exact_style(np.geomspace(1e4, 1e6, 7)))
    c = np.geomspace(1e11, 1e15, 5)
    n_opt, d_opt = compute_optimal(CHINCHILLA_2022, c, per_token)
    np.testing.assert_allclose(d_opt * per_token(n_opt), c, rtol=1e-12)
    for step in (1 - 1e-3, 1 + 1e-3):  # any other split of the same C has a higher loss
        n = n_opt * step
        assert np.all(predict_loss(CHINCHILLA_2022, n, c / per_token(n)) > predict_loss(CHINCHILLA_2022, n_opt, d_opt))
    params = CHINCHILLA_2022
    n_six, _ = split_compute(math.log(params.A), params.alpha, math.log(params.B), params.beta, c, SIX_N)
    np.testing.assert_allclose(n_six, compute_optimal(params, c)[0], rtol=1e-6)  # the search agrees with eq. 4


def test_every_approach_spends_the_budget_under_the_tables_compute(tmp_path):
    """On a store whose C counts attention, read back from disk (curves carry C_per_token), each approach's
    D_opt·f(N_opt) is the budget, interval ends included, and the fit file round-trips f."""
    table = exact_table(seed=1)
    write_store(table, tmp_path, curves=simulate_curves(table, n_points=8, noise=0.002))
    fit = fit_all(read_table(tmp_path), read_curves(tmp_path), n_bootstrap=20, holdout=())
    assert fit.per_token.max_rel_error < 1e-6 and fit.per_token.b == pytest.approx(2 / 3, rel=1e-6)
    assert fit.approach1.success and fit.approach2.success and fit.approach3.success and fit.frontier.success
    for profile in fit.approach2.profiles:
        if profile.included:
            assert profile.d_opt * fit.per_token(profile.n_opt) == pytest.approx(profile.budget, rel=1e-9)
    for compute in (fit.largest_budget, 30 * fit.largest_budget):
        prediction = fit.predict_at(compute)
        assert {a.approach for a in prediction.allocations} == {"approach1", "approach2", "approach3"}
        for allocation in prediction.allocations:
            n, d = allocation.n_opt, allocation.d_opt
            assert d.value * fit.per_token(n.value) == pytest.approx(compute, rel=1e-6)
            if allocation.approach != "approach3":  # its interval ends are percentiles of each, not one pair
                assert d.interval[0] * fit.per_token(n.interval[1]) == pytest.approx(compute, rel=1e-6)
                assert d.interval[1] * fit.per_token(n.interval[0]) == pytest.approx(compute, rel=1e-6)
        samples = fit.approach3_bootstrap.compute_optimal_samples(compute, fit.per_token)
        np.testing.assert_allclose(samples["d_opt"] * fit.per_token(samples["n_opt"]), compute, rtol=1e-6)
        for law in (fit.approach1, fit.approach2):
            assert law.d_opt(compute) * fit.per_token(law.n_opt(compute)) == pytest.approx(compute, rel=1e-9)
    tree = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert StudyFit.from_dict(tree).per_token == fit.per_token
    for container in (tree, tree["approach1"], tree["approach2"]):  # a fit file written before the field
        del container["per_token"]
    old = StudyFit.from_dict(tree)
    assert old.per_token.is_6n and old.approach2.per_token.is_6n
    six = old.predict_at(fit.largest_budget).allocation("approach2")
    assert six.d_opt.value * 6 * six.n_opt.value == pytest.approx(fit.largest_budget, rel=1e-12)
    compute = np.array([fit.largest_budget, 30 * fit.largest_budget])
    for each in (fit, old):  # the plots' bands, every C at once, are the allocations one C at a time
        bands = {key: each.allocation_band(compute, key) for key in ("n_opt", "d_opt")}
        bands["loss"] = each.loss_at_optimum(compute)[1:]
        for i, c in enumerate(compute):
            allocation = each.predict_at(c).allocation("approach3")
            for key, band in bands.items():
                estimate = getattr(allocation, key)
                assert (band[0][i], band[1][i], band[2][i]) == (estimate.value, *estimate.interval), key


def test_d_opt_follows_the_true_optimum_under_exact_compute():
    """Approach 3's D_opt at the sweep's budgets is the truth's (L fitted on noise-free runs); under C = 6·N·D
    the same fit overstated it by the attention's share."""
    table = exact_table()
    table["loss"] = predict_loss(CHINCHILLA_2022, table["N"], table["D"])
    fit = fit_all(table, approaches=(2, 3), n_bootstrap=2, holdout=())
    compute = fit.largest_budget
    _, d_true = compute_optimal(CHINCHILLA_2022, compute, fit.per_token)
    _, d_six = compute_optimal(fit.approach3.params, compute)
    assert fit.predict_at(compute).allocation("approach3").d_opt.value == pytest.approx(float(d_true), rel=1e-3)
    assert d_six / d_true > 1.1
