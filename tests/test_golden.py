"""Our fits on published sweeps against the published figures (tests/golden/, built by scripts/make_golden.py).

Each CSV's sidecar JSON names its source, what its N counts and the figures checked here. A miss is not tuned
away: it is an xfail(strict=True) whose reason is the measured figure, so the suite stays green and the miss
stays visible (and an improvement that fixes it turns the xfail into a failure, to be promoted to a test).
"""

import json
import warnings
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from analysis.backtest import backtest, split_holdout
from analysis.isoflop import fit_isoflop
from analysis.parametric import fit_parametric
from analysis.study_fit import fit_all

GOLDEN = Path(__file__).parent / "golden"
PORIAN = ("porian_kaplan", "porian_head", "porian_warmup", "porian_cosine", "porian_tuned")


@cache
def golden(name: str) -> tuple[pd.DataFrame, dict]:
    """(runs as our fits take them, sidecar): Epoch's 5 highest losses dropped, the OLMo ladder's paper runs only."""
    runs = pd.read_csv(GOLDEN / f"{name}.csv")
    if "epoch_excluded" in runs:
        runs = runs[~runs["epoch_excluded"]].drop(columns="epoch_excluded")
    if "paper_fit" in runs:
        runs = runs[runs["paper_fit"]].drop(columns=["paper_fit", "multiplier"])
    return runs.reset_index(drop=True), json.loads((GOLDEN / f"{name}.json").read_text())


@cache
def approach2(name: str):
    return fit_isoflop(golden(name)[0], n_bootstrap=0, warn=False)  # the unbracketed budgets are in its notes


def miss(name: str, measured: str):
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=f"measured {measured}"))


def test_the_golden_files_are_what_their_sidecars_say():
    runs, side = golden("epoch_chinchilla")
    assert len(runs) == 240 and side["source"]["repository"] == "epoch-research/analyzing-chinchilla"
    assert len(golden("olmo_ladder")[0]) == 16
    for name in PORIAN:
        runs, side = golden(name)
        assert runs["budget"].nunique() >= 11 and len(side["source"]["commit"]) == 40
        assert (6 * runs["N"] * runs["D"] / runs["budget"]).between(0.999, 1.001).all()


@pytest.mark.parametrize("name", PORIAN)
def test_approach2_reproduces_porian_et_al_a(name):
    """a within 0.03 of Porian et al.'s (Table 2). Same points and N as theirs; they take each budget's minimum
    from an Akima interpolant and weight budgets by 1/var(log N*), we from a parabola around the lowest run."""
    fit = approach2(name)
    assert fit.success, fit.message
    assert fit.a == pytest.approx(golden(name)[1]["published"]["a"], abs=0.03)


@pytest.mark.parametrize("name", [
    "porian_kaplan", "porian_head", "porian_warmup",
    miss("porian_cosine", "-0.66% at 2.5e16 FLOPs: its window is 3 runs, 4.881 between 5.085 and 4.971"),
    miss("porian_tuned", "-0.72% at 1.25e16 FLOPs: 4.525 against its lowest run's 4.557 (Porian et al.: 4.543)"),
])
def test_no_budget_minimum_far_below_its_lowest_run(name):
    """No fitted minimum more than 0.5% below the lowest loss observed at its budget (one parabola over each
    whole profile was up to 4.7% below on these sweeps)."""
    for profile in approach2(name).profiles:
        if profile.included:
            assert profile.loss_opt >= (1 - 0.005) * profile.loss.min(), f"budget {profile.budget:.3g}"


def test_approach3_reproduces_epochs_chinchilla_refit():
    """Besiroglu et al. 2024's refit of Chinchilla's runs: E = 1.817, α = 0.3473, β = 0.3672."""
    runs, side = golden("epoch_chinchilla")
    fit = fit_parametric(runs)
    published = side["published"]
    assert fit.success, fit.message
    assert fit.E == pytest.approx(published["E"], rel=0.005)
    assert fit.alpha == pytest.approx(published["alpha"], rel=0.01)
    assert fit.beta == pytest.approx(published["beta"], rel=0.01)


def test_approach3_reproduces_the_olmo_ladders_13b_prediction():
    """The OLMo ladder's step-1 law (Chinchilla's form, Huber on log loss, the paper's 16 runs) predicts the
    13B-5T model's C4 loss at 2.3444 (actual 2.4379, so the law itself is 3.8% low)."""
    runs, side = golden("olmo_ladder")
    fit = fit_parametric(runs)
    target = side["target"]
    assert fit.success, fit.message
    assert float(fit.predict_loss(target["N"], target["D"])) == pytest.approx(side["published"]["predicted"], rel=0.005)


def test_the_olmo_ladders_13b_model_is_inside_its_prediction_interval():
    """The law is 3.8% low on the 13B-5T model (10× the largest size it was fitted on, 200× the compute); the
    headline's 95% prediction interval, fitted on the same 16 runs, must hold the actual loss all the same."""
    runs, side = golden("olmo_ladder")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_all(runs, n_bootstrap=200, seed=0)
    target = side["target"]
    estimate = fit.predict_run(target["N"], target["D"], by=fit.headline.predictor)
    assert fit.headline.predictor == "approach3" and estimate.reliable
    assert estimate.interval[0] <= side["published"]["actual"] <= estimate.interval[1], estimate


@cache
def held_out(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return backtest(golden(name)[0], n_bootstrap=100, seed=0)


@pytest.mark.parametrize("name", [
    miss("porian_kaplan", "not identified on the training runs: its best fit has E negligible (Huber objective "
                          "0.00353 against 0.00746 for the best end point with a floor), so its intervals are "
                          "unreliable (38 of 100 replicates kept; 4 of 6 runs inside, mean |error| 5.3%). Before "
                          "stop 20 the fit took the worse end point where a BLAS build met it first: 6 of 6 inside"),
    miss("porian_head", "2 of 6 held-out runs inside (mean |error| 8.4%; 1 of 6 with runs drawn from the whole "
                        "table, not within budgets)"),
    "porian_warmup", "porian_cosine", "porian_tuned",
    miss("epoch_chinchilla", "the one run at 1.3e22 outside (error 2.6%)"),
])
def test_backtest_approach3_covers_the_largest_budget(name):
    """Fitted without the largest budget, Approach 3's prediction intervals are reliable and hold every run of
    that budget."""
    result = held_out(name)
    assert result.loss_predictions and all(p.reliable and p.inside_interval for p in result.loss_predictions), \
        result.message


def test_a_backtest_whose_training_fit_is_not_identified_shows_its_intervals_unscored():
    """porian_kaplan without its largest budget: Approach 3 is not identified (its best end point has E → 0), so
    its held-out predictions keep their errors but their intervals are marked unreliable and not scored; the
    frontier's are reliable and scored."""
    result = held_out("porian_kaplan")
    assert result.loss_predictions and not any(p.reliable for p in result.loss_predictions)
    assert result.loss_coverage != result.loss_coverage  # NaN: nothing scored
    assert result.mean_rel_loss_error == pytest.approx(0.0527, abs=5e-4)
    assert "their 95% intervals unreliable" in result.message and "not scored" in result.message
    assert all(p.reliable for p in result.frontier_loss_predictions) and result.frontier_loss_coverage == 1.0


@pytest.mark.parametrize("name", [
    "porian_kaplan",  # 6 of 6 inside, mean |error| 0.40% (4 of 6 and 1.0% with the parabolic shape before)
    miss("porian_head", "5 of 6 inside (mean |error| 1.49%; parabolic shape before: 4 of 6, 4.1%)"),
    miss("porian_warmup", "0 of 6 inside (mean |error| 1.95%, L_opt itself 2.0% high; before: 0 of 6, 4.4%)"),
    miss("porian_cosine", "0 of 5 inside (mean |error| 2.65%, L_opt itself 2.1% high; before: 2 of 5, 4.6%)"),
    miss("porian_tuned", "5 of 6 inside (mean |error| 0.71%; before: 3 of 6, 1.0%)"),
    miss("epoch_chinchilla", "2.077 below (2.164, 2226), predicted 8.0% high, Approach 2's N_opt widened ×46 "
                             "(before: inside (2.070, 3.003), 16.6% high)"),
])
def test_backtest_frontier_covers_the_largest_budget(name):
    """Fitted without the largest budget, the loss frontier's prediction intervals hold every run of that budget."""
    result = held_out(name)
    assert result.frontier_loss_predictions, result.message
    assert all(p.reliable and p.inside_interval for p in result.frontier_loss_predictions), result.message


@cache
def headline_beyond(name: str):
    """The headline as a user meets it: the largest budget dropped, `fit_all` on the rest (whose own backtest holds
    out *its* largest budget and picks the headline by the rule), and the dropped budget's runs predicted by the
    headline: (predictor, [(actual, Estimate)])."""
    train, held = split_holdout(golden(name)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_all(train, approaches=(2, 3), n_bootstrap=200, seed=0)
    predictor = fit.headline.predictor
    return predictor, [(run.loss, fit.predict_run(run.N, run.D, by=predictor)) for run in held.itertuples()]


@pytest.mark.parametrize("name", [
    "porian_kaplan",  # frontier: 6 of 6, mean |error| 0.40%
    "porian_head",  # frontier: 6 of 6, 1.49%
    "porian_warmup",  # Approach 3: 6 of 6, 1.19%
    "porian_cosine",  # Approach 3: 5 of 5, 1.91%
    miss("porian_tuned", "the frontier: 5 of 6 inside (mean |error| 0.71%; its farthest run 2.5% high)"),
    miss("epoch_chinchilla", "Approach 3: its one run outside (error 2.6%)"),
])
def test_the_headline_chosen_without_the_largest_budget_covers_it(name):
    """The whole rule out of sample (docs/methods.md, "The headline predictor"): chosen on the smaller budgets, the
    headline's prediction intervals hold every run of the largest. (Before the frontier's shape followed
    Chinchilla's form: 24 of 30 runs inside, against 28 now.)"""
    predictor, predictions = headline_beyond(name)
    assert predictions and all(estimate.reliable for _, estimate in predictions)
    outside = [(actual, estimate) for actual, estimate in predictions
               if not estimate.interval[0] <= actual <= estimate.interval[1]]
    assert not outside, f"{predictor}: {outside}"
