"""Hyperparameter laws: lr_opt = k·C^p (and batch_opt) recovered from simulated sweeps; cells that cannot
be fitted are skipped with a reason; unbracketed optima are clamped, flagged and left out."""

import numpy as np
import pandas as pd
import pytest

from analysis.hyperparams import fit_hyperparam_law, varies
from analysis.simulate import HyperparamAxis, simulate_runs

BUDGETS = np.geomspace(1e17, 1e19, 5)
# DeepSeek LLM (2024) reports η_opt = 0.3118·C^−0.125 and B_opt = 0.292·C^0.3271.
LR = HyperparamAxis(name="lr", k=0.3118, p=-0.125, n_points=5, span=4.0)
BATCH = HyperparamAxis(name="batch_size", k=0.292, p=0.3271, n_points=5, span=4.0, curvature=0.02)


def lr_sweep(noise=0.001, axis=LR, **kwargs):
    return simulate_runs(budgets=BUDGETS, n_per_budget=3, width=2.0, noise=noise, hyperparams=(axis,), **kwargs)


def test_lr_law_recovers_k_and_p():
    """From parabolic lr valleys at 5 budgets × 3 sizes (+0.1% noise): p within 0.01 of −0.125, k within
    25% of 0.3118, and both 95% intervals cover the truth."""
    fit = fit_hyperparam_law(lr_sweep(), "lr", n_bootstrap=300)
    assert fit.success, fit.message
    assert fit.p == pytest.approx(LR.p, abs=0.01)
    assert fit.k == pytest.approx(LR.k, rel=0.25)
    assert fit.p_interval[0] <= LR.p <= fit.p_interval[1]
    assert fit.k_interval[0] <= LR.k <= fit.k_interval[1]
    assert len(fit.cells) == 15 and all(c.status == "ok" for c in fit.cells)


def test_each_cell_optimum_is_the_true_optimum_without_noise():
    """Noise-free, each cell's parabola vertex is exactly k·C^p (the simulated valley is a parabola in log lr)."""
    fit = fit_hyperparam_law(lr_sweep(noise=0.0), "lr", n_bootstrap=0)
    for cell in fit.cells:
        assert cell.optimum == pytest.approx(LR.optimum(cell.compute), rel=1e-4)
    assert fit.p == pytest.approx(LR.p, abs=1e-4)


def test_batch_and_lr_laws_from_one_two_dimensional_grid():
    """On an lr × batch grid, lr cells fix the batch size and batch cells fix the lr: both laws come back."""
    runs = simulate_runs(budgets=BUDGETS, n_per_budget=1, noise=0.001, hyperparams=(LR, BATCH))
    lr_fit = fit_hyperparam_law(runs, "lr", n_bootstrap=0)
    batch_fit = fit_hyperparam_law(runs, "batch_size", n_bootstrap=0)
    assert lr_fit.p == pytest.approx(LR.p, abs=0.01)
    assert batch_fit.p == pytest.approx(BATCH.p, abs=0.02)
    assert len(lr_fit.cells) == len(batch_fit.cells) == 25


def test_cells_with_fewer_than_three_values_are_skipped_with_reason():
    """A cell with 2 lr values is listed in `skipped` with the reason; the others still give the law."""
    runs = lr_sweep()
    first_cell = (runs["budget"] == BUDGETS[0]) & (runs["N"] == runs["N"].min())
    drop = runs.index[first_cell][:3]
    fit = fit_hyperparam_law(runs.drop(index=drop), "lr", n_bootstrap=0)
    assert len(fit.cells) == 14
    assert len(fit.skipped) == 1 and "2 distinct lr value(s); need ≥ 3" in fit.skipped[0][1]
    assert "skipped" in fit.message


def test_no_fittable_cell_is_a_clear_error():
    """Only two lr values anywhere: ValueError that says why; a missing column names it."""
    runs = simulate_runs(budgets=BUDGETS, n_per_budget=3, noise=0.0, hyperparams=(HyperparamAxis(n_points=2),))
    with pytest.raises(ValueError, match="no cell has ≥ 3 distinct lr"):
        fit_hyperparam_law(runs, "lr")
    with pytest.raises(ValueError, match="lr"):
        fit_hyperparam_law(runs.drop(columns="lr"), "lr")


def test_unbracketed_optimum_is_clamped_flagged_and_excluded():
    """A cell whose lr values all lie above the optimum gets the smallest sampled lr, status 'clamped', and
    does not enter the law (p unchanged from the fit without that cell)."""
    axis = HyperparamAxis(name="lr", k=0.3118, p=-0.125, n_points=7, span=8.0)
    runs = lr_sweep(noise=0.0, axis=axis)
    cell = (runs["budget"] == BUDGETS[2]) & (runs["N"] == runs.loc[runs["budget"] == BUDGETS[2], "N"].min())
    low = runs.index[cell][:4]  # the four smallest lr values of that cell
    fit = fit_hyperparam_law(runs.drop(index=low), "lr", n_bootstrap=0)
    clamped = [c for c in fit.cells if c.status == "clamped"]
    assert len(clamped) == 1
    assert clamped[0].optimum == pytest.approx(clamped[0].values.min())
    assert "clamped (excluded)" in fit.message
    without = fit_hyperparam_law(runs.drop(index=runs.index[cell]), "lr", n_bootstrap=0)
    assert fit.p == pytest.approx(without.p, abs=1e-12)


def test_diverged_run_dropped_as_outlier():
    """A run that blew up (loss +2 nats, status still completed) is dropped by the parabola's outlier test
    and named; the law is unchanged to within 0.01 in p."""
    runs = lr_sweep()
    runs.loc[7, "loss"] += 2.0
    fit = fit_hyperparam_law(runs, "lr", n_bootstrap=0)
    assert runs.loc[7, "run_id"] in fit.message
    assert fit.p == pytest.approx(LR.p, abs=0.01)


def test_varies_detects_hyperparameter_axes():
    """`varies` is True only where some cell holds ≥ 2 values of the column."""
    runs = lr_sweep()
    assert varies(runs, "lr")
    assert not varies(runs, "batch_size")
    assert not varies(runs.assign(lr=1e-3), "lr")
    assert not varies(pd.DataFrame({"N": [1, 2], "C": [1.0, 2.0], "loss": [1.0, 1.0]}), "lr")
