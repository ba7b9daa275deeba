"""Consistency flags disagreeing approaches; the backtest scores held-out runs honestly; fit_all bundles every
component into JSON-safe output and records what it could not fit instead of crashing."""

import json
import math
import warnings

import numpy as np
import pytest

from analysis.backtest import backtest, split_holdout
from analysis.consistency import ExponentEstimate, InconsistentExponentsWarning, check_consistency
from analysis.parametric import CHINCHILLA_2022, compute_optimal
from analysis.simulate import HyperparamAxis, simulate_curves, simulate_runs, write_store
from analysis.serialize import to_tree
from analysis.study_fit import StudyFit, fit_all
from analysis.table import read_curves, read_table

BUDGETS = np.geomspace(1e17, 1e19, 5)


def study_runs(noise=0.005, **kwargs):
    return simulate_runs(budgets=BUDGETS, n_per_budget=7, width=6.0, noise=noise, **kwargs)


# ---------------------------------------------------------------------------------------------- consistency

def test_chinchilla_table_2_disagreement_is_flagged():
    """Hoffmann et al. (2022, Table 2) intervals for a: Approach 3's (0.454, 0.455) overlaps neither
    Approach 1's (0.488, 0.502) nor Approach 2's (0.462, 0.534); both pairs are named and a warning raised."""
    estimates = [
        ExponentEstimate("Approach 1", 0.50, (0.488, 0.502), 0.50, (0.501, 0.512)),
        ExponentEstimate("Approach 2", 0.49, (0.462, 0.534), 0.51, (0.483, 0.529)),
        ExponentEstimate("Approach 3", 0.46, (0.454, 0.455), 0.54, (0.542, 0.543)),
    ]
    with pytest.warns(InconsistentExponentsWarning, match="do not overlap") as record:
        result = check_consistency(estimates)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = check_consistency(estimates, warn=False)  # the same message, in the result only
    assert result.notes == quiet.notes == (str(record[0].message),)
    assert not result.consistent
    a_pairs = [d for d in result.disagreements if d.startswith("a:")]
    assert len(a_pairs) == 2 and all("Approach 3" in d for d in a_pairs)
    assert not any("Approach 1" in d and "Approach 2" in d for d in a_pairs)


def test_an_interval_holding_every_split_of_compute_is_not_counted_as_agreement():
    """Approach 2 on Epoch's extraction of Chinchilla's runs gives a in [−0.45, 1.56]: it would overlap any
    interval inside [0, 1], so it is not compared (for a and b alike) and nothing is called consistent."""
    wide = ExponentEstimate("Approach 2", 0.52, (-0.453, 1.561), 0.48, (-0.561, 1.453))
    narrow = ExponentEstimate("Approach 3", 0.514, (0.486, 0.556), 0.486, (0.444, 0.514))
    result = check_consistency([wide, narrow], warn=False)
    assert not result.consistent and result.disagreements == ()
    assert "nothing to compare" in result.message
    assert "Approach 2: its interval for a, [-0.453, 1.561], holds every split of compute" in result.message
    assert "its interval for b" in result.message
    # one exponent informative, the other not: the informative one is still compared
    half = ExponentEstimate("Approach 2", 0.52, (0.40, 0.60), 0.48, (-0.1, 1.2))
    result = check_consistency([half, narrow], warn=False)
    assert result.consistent and "all 1 interval pair(s) overlap" in result.message


def test_overlapping_intervals_are_consistent_without_warning():
    """Overlapping intervals for a and b: consistent, no disagreement, no warning."""
    estimates = [ExponentEstimate("x", 0.45, (0.43, 0.47), 0.55, (0.53, 0.57)),
                 ExponentEstimate("y", 0.46, (0.44, 0.48), 0.54, (0.52, 0.56))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = check_consistency(estimates)
    assert result.consistent and result.disagreements == ()


def test_estimates_without_intervals_are_not_compared():
    """An approach with NaN intervals is named as not compared; alone it cannot be called consistent."""
    result = check_consistency([ExponentEstimate("x", 0.45, (0.43, 0.47), 0.55, (0.53, 0.57)),
                                ExponentEstimate("y", 0.60, (math.nan, math.nan), 0.4, (math.nan, math.nan))])
    assert not result.consistent and result.disagreements == ()
    assert "y: no interval" in result.message


# ---------------------------------------------------------------------------------------------- backtest

@pytest.fixture(scope="module")
def runs():
    return study_runs()


@pytest.fixture(scope="module")
def largest_budget_backtest(runs):
    return backtest(runs, n_bootstrap=60, seed=0)


def test_backtest_holds_out_the_largest_budget(runs, largest_budget_backtest):
    """By default every run of the largest budget is held out, and none of them is fitted on."""
    result = largest_budget_backtest
    top = set(runs.loc[runs["budget"] == BUDGETS[-1], "run_id"])
    assert set(result.holdout_run_ids) == top
    assert not top & set(result.train_run_ids)
    assert result.holdout_budgets == (pytest.approx(BUDGETS[-1]),)


def test_backtest_inside_interval_matches_interval_and_is_mostly_true(largest_budget_backtest):
    """inside_interval is exactly lo ≤ actual ≤ hi; on well-specified simulated data most held-out losses
    (≥ 6 of 7) fall inside their 95% prediction intervals; errors are small (< 2%)."""
    result = largest_budget_backtest
    for p in result.loss_predictions + result.n_opt_predictions:
        assert p.inside_interval == (p.interval[0] <= p.actual <= p.interval[1])
        assert p.abs_error == pytest.approx(abs(p.predicted - p.actual))
    assert sum(p.inside_interval for p in result.loss_predictions) >= 6
    assert result.mean_rel_loss_error < 0.02


def test_backtest_n_opt_predictions_near_truth(largest_budget_backtest):
    """Approaches 2 and 3, fitted on the four smaller budgets, predict the top budget's N_opt within 15% of
    the truth, and their intervals hold the held-out budget's own IsoFLOP minimum."""
    result = largest_budget_backtest
    truth, _ = compute_optimal(CHINCHILLA_2022, BUDGETS[-1])
    assert {p.key for p in result.n_opt_predictions} == {"approach2", "approach3"}
    for p in result.n_opt_predictions:
        assert p.predicted == pytest.approx(float(truth), rel=0.15)
        assert p.inside_interval


def test_backtest_flags_a_shifted_budget_as_outside(runs):
    """If the held-out runs' losses are 0.3 nats worse than the law, every loss falls outside its interval,
    while the N_opt comparison (unaffected by a constant shift) stays inside."""
    shifted = runs.copy()
    top = shifted["budget"] == BUDGETS[-1]
    shifted.loc[top, "loss"] += 0.3
    result = backtest(shifted, n_bootstrap=40, seed=0)
    assert not any(p.inside_interval for p in result.loss_predictions)
    assert result.loss_coverage == 0.0
    assert all(p.inside_interval for p in result.n_opt_predictions)


def test_backtest_named_runs_and_bad_holdouts(runs):
    """Named run ids are held out as given; unknown ids and a holdout that leaves nothing to fit are errors."""
    ids = list(runs["run_id"].iloc[[3, 20]])
    train, held = split_holdout(runs, ids)
    assert list(held["run_id"]) == ids and len(train) == len(runs) - 2
    with pytest.raises(ValueError, match="not among the usable runs"):
        split_holdout(runs, ["nope"])
    with pytest.raises(ValueError, match="leaves no budget"):
        split_holdout(runs, n_budgets=len(BUDGETS))


# ---------------------------------------------------------------------------------------------- fit_all

@pytest.fixture(scope="module")
def study(runs):
    lr = HyperparamAxis(name="lr", k=0.3, p=-0.1, n_points=3, span=4.0)
    table = study_runs(hyperparams=(lr,), seed=1)
    curves = simulate_curves(table, n_points=12, noise=0.002)
    return fit_all(table, curves, n_bootstrap=40, seed=0)


def test_fit_all_fits_every_component(study):
    """On a simulated study with curves and an lr axis every component is fitted; nothing is skipped; the
    three approaches' a are within 5% of β/(α+β)."""
    assert study.skipped == ()
    for part in ("approach1", "approach2", "approach3", "approach3_bootstrap", "kaplan", "lr_law",
                 "consistency", "backtest"):
        assert getattr(study, part) is not None, part
    assert study.batch_law is None
    truth = CHINCHILLA_2022.a
    for number, exponents in study.exponents().items():
        assert exponents["a"] == pytest.approx(truth, rel=0.05), number
    assert "best run of each (budget, N)" in study.notes[0]


def test_fit_all_to_dict_is_json_with_the_named_keys(study):
    """to_dict() survives json.dumps(allow_nan=False) and names Approach 3's E, A, B, alpha, beta, a, b, each
    with a finite two-sided interval; Approaches 1 and 2 give a and b with intervals."""
    out = json.loads(json.dumps(study.to_dict(), allow_nan=False))
    for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
        interval = out["approach3_bootstrap"]["intervals"][name]
        assert interval["lo"] <= out["approach3"][name] <= interval["hi"], name
    for approach in ("approach1", "approach2"):
        assert set(out[approach]) >= {"a", "a_interval", "b", "b_interval", "success", "message"}
    assert set(out) >= {"kaplan", "lr_law", "batch_law", "consistency", "backtest", "skipped", "warnings", "headline"}
    back = StudyFit.from_dict(out)  # loads back into the same objects: the same tree, the same predictions
    assert to_tree(back) == out and back.predict_at(1e21) == study.predict_at(1e21)


def test_predict_at_gives_every_approach_with_intervals(study):
    """predict_at(C) holds n_opt, d_opt, tokens_per_param with intervals per approach, Approach 3's loss,
    and the lr law; 6·n_opt·d_opt = C; all JSON-safe."""
    compute = 1e21
    prediction = study.predict_at(compute)
    json.dumps(to_tree(prediction), allow_nan=False)
    for approach in ("approach1", "approach2", "approach3"):
        entry = prediction.allocation(approach)
        assert 6 * entry.n_opt.value * entry.d_opt.value == pytest.approx(compute, rel=1e-9)
        for key in ("n_opt", "d_opt", "tokens_per_param"):
            lo, hi = getattr(entry, key).interval
            assert lo <= getattr(entry, key).value <= hi, (approach, key)
    loss = prediction.allocation("approach3").loss
    assert loss.interval[0] <= loss.value <= loss.interval[1]
    assert prediction.lr.value == pytest.approx(0.3 * compute**-0.1, rel=0.3)
    assert prediction.best == prediction.allocation(prediction.headline.approach)
    assert prediction.extrapolation == pytest.approx(compute / BUDGETS[-1], rel=0.01)
    with pytest.raises(ValueError, match="compute"):
        study.predict_at(-1.0)


def test_fit_all_records_what_it_cannot_fit():
    """A single budget without curves: Approach 1 skipped (no curves), consistency skipped (nothing to compare),
    the backtest skipped (Approach 3 not asked for); Approach 2 present but unsuccessful; valid JSON."""
    table = simulate_runs(budgets=[1e18], n_per_budget=9, noise=0.005)
    result = fit_all(table, None, approaches=(1, 2), n_bootstrap=20)
    skipped = dict(result.skipped)
    assert skipped["approach1"] == "no training curves given"
    assert skipped["backtest"] == "Approach 3 not requested"
    assert "need ≥ 2 to compare" in skipped["consistency"]
    assert result.approach2 is not None and not result.approach2.success
    json.dumps(result.to_dict(), allow_nan=False)


def test_fit_all_warns_once_about_excluded_runs():
    """Diverged runs are excluded with one warning naming them, recorded in the result (not raised)."""
    table = study_runs()
    table.loc[4, "status"] = "diverged"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recorded in the result, not raised again
        result = fit_all(table, None, approaches=(2,), n_bootstrap=20)
    naming = [w for w in result.warnings if table.loc[4, "run_id"] in w]
    assert len(naming) == 1
    assert result.n_runs == len(table) - 1


def test_fit_all_returns_every_fits_notes_in_its_result():
    """The table's exclusion, Approach 2's unbracketed budget and the lr law's run without an lr come back in
    StudyFit.warnings, in the order the fits ran, each once, and nothing is raised as a Python warning."""
    table = simulate_runs(budgets=BUDGETS, n_per_budget=7, width=6.0, noise=0.005,
                          hyperparams=(HyperparamAxis(name="lr", k=3.0, p=-0.1, curvature=0.05, n_points=3),))
    table.loc[0, "status"] = "diverged"
    table.loc[1, "lr"] = np.nan
    top = table["budget"] == BUDGETS[-1]
    log_n = np.log(table.loc[top, "N"])
    table.loc[top, "loss"] = 3.0 - 0.05 * (log_n - log_n.mean()) ** 2  # peaks in the middle: not bracketed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fit_all(table, None, approaches=(2,), n_bootstrap=20)
    assert len(result.warnings) == 3
    excluded, isoflop, lr = result.warnings
    assert excluded.startswith("fit_all: excluded 1 of") and table.loc[0, "run_id"] in excluded
    assert isoflop.startswith("IsoFLOP fit: budget") and "edge" in isoflop
    assert lr == f"lr law: run(s) [{table.loc[1, 'run_id']!r}] excluded (lr missing or ≤ 0)"
    assert result.approach2.notes == (isoflop,) and result.lr_law.notes == (lr,)


def test_fit_all_on_a_run_store_read_back(tmp_path):
    """The contract end to end: a simulated store written to disk, read by read_table / read_curves (integer
    N and D, nullable batch sizes), fitted by fit_all without error; Approach 2's a within 5% of the truth."""
    table = study_runs(seed=2)
    write_store(table, tmp_path, curves=simulate_curves(table, n_points=8))
    result = fit_all(read_table(tmp_path), read_curves(tmp_path), approaches=(1, 2), n_bootstrap=20)
    assert result.skipped == (("backtest", "Approach 3 not requested"),)
    assert result.approach2.a == pytest.approx(CHINCHILLA_2022.a, rel=0.05)
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_table_without_budget_or_compute_columns_is_fitted_at_6ND():
    """The OLMo ladder's table has N, D and loss only (no budget, no C): fit_all fills C = 6·N·D as every fit
    does, instead of failing on the missing column."""
    from test_golden import golden

    runs = golden("olmo_ladder")[0]
    assert not {"C", "budget"} & set(runs.columns)
    fit = fit_all(runs, approaches=(3,), n_bootstrap=2, holdout=())
    assert fit.approach3.success and fit.largest_budget == pytest.approx(float((6 * runs["N"] * runs["D"]).max()))
