"""The whole loop on a tiny study: sweep on local Ray, fits, plots, a validation run, the report; a rerun
trains nothing new."""

import json
import warnings

import numpy as np
import pytest

from analysis.simulate import simulate_runs
from analysis.study_fit import fit_all
from experiments import store as st
from lm.accounting import training_flops_per_token
from scaling.cli import main
from scaling.study import depth_note, validation_spec
from sweeps.config import load_sweep
from sweeps.plan import plan


def test_tiny_study_end_to_end_and_rerun_trains_nothing(tmp_path, capsys):
    store, out = tmp_path / "store", tmp_path / "report"
    args = ["study", "tiny", "--store", str(store), "--out", str(out), "--bootstrap", "100"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "validation at C" in printed and "report:" in printed

    summary = json.loads((out / "summary.json").read_text())
    validation = summary["validation"]
    for key in ("n", "d", "actual_loss"):
        assert validation[key] is not None, key
    design = validation["design"]
    largest = max(r.spec.budget for r in plan(load_sweep("tiny")).runs)
    assert design["budget"] >= 4 * largest
    comparisons = {c["predictor"]: c for c in validation["comparisons"]}
    assert comparisons and set(comparisons) <= {"frontier", "approach3"}
    for c in comparisons.values():
        assert abs(c["relative_error"] - (c["predicted"]["value"] / validation["actual_loss"] - 1)) < 1e-12
    assert "shape_note" in validation
    headline = design["prediction"]["headline"]  # fixed before the run trained: the fit's own headline
    assert headline == summary["fit"]["headline"]
    # the headline predicts the loss, unless no loss law converged (then Approach 1 leads, with no loss)
    assert headline["predictor"] in comparisons or headline["predictor"] == "approach1"
    best = next(a for a in design["prediction"]["allocations"]
                if a["approach"] == {"frontier": "approach2"}.get(headline["predictor"], headline["predictor"]))
    assert summary["fit"]["approach3"]["alpha"] is not None
    assert summary["runs"]["trained_now"] == 6
    for name in ("report.md", "report.html"):
        assert (out / name).stat().st_size > 1000
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "Headline predictor" in (out / "report.md").read_text()
    pngs = [p for p in summary["plots"] if p.endswith(".png")]
    assert pngs and all((out / p).stat().st_size > 5000 for p in pngs)
    run_id = validation_spec_id(summary)
    validation_row = st.read_row(store, run_id)
    assert validation_row["status"] == "completed" and validation_row["sweep"] == "tiny-validation"
    assert validation_row["N"] == validation["n"] and best["n_opt"]["value"] > 0

    assert main(args) == 0  # the rerun reuses every run, the validation run included
    again = json.loads((out / "summary.json").read_text())
    assert again["runs"]["trained_now"] == 0 and again["runs"]["already_done"] == 6
    assert st.read_row(store, run_id)["attempts"] == 1
    assert again["validation"]["actual_loss"] == validation["actual_loss"]


def validation_spec_id(summary: dict) -> str:
    from experiments.spec import ExperimentSpec

    return ExperimentSpec.from_dict(summary["validation"]["design"]["spec"]).run_id


def test_validation_run_follows_the_chosen_predictor():
    """"frontier" builds the run at Approach 2's N_opt and predicts with the frontier; "approach3" uses Approach 3
    for both; "auto" is the fit's own headline; the choice is made before the run trains and an unknown name is
    refused. D comes from the planner's tokens_for: whole steps within 1% of the budget."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_all(simulate_runs(budgets=np.geomspace(1e9, 1e11, 3), n_per_budget=7, width=6.0, noise=0.003),
                      n_bootstrap=20, holdout=[])
    config = load_sweep("tiny")
    template = plan(config).runs[0].spec
    budget = 4e11
    by_frontier = validation_spec(config, template, fit, budget, "frontier")
    assert by_frontier.prediction.best.approach == "approach2" and by_frontier.headline.predictor == "frontier"
    assert by_frontier.n_opt_predicted == pytest.approx(float(fit.approach2.n_opt(budget)))
    by_a3 = validation_spec(config, template, fit, budget, "approach3")
    assert by_a3.prediction.best.approach == "approach3" and by_a3.headline.predictor == "approach3"
    assert by_a3.n_opt_predicted == pytest.approx(float(fit.approach3.compute_optimal(budget)[0]))
    assert validation_spec(config, template, fit, budget).headline == fit.headline
    spec = by_frontier.spec
    assert spec.budget == budget and spec.tokens % (spec.batch_size * spec.context_length) == 0
    assert abs(spec.tokens * training_flops_per_token(spec.model_config(), "exact") / budget - 1) <= 0.01  # tiny: exact
    assert spec.compute == "exact" and spec.n_layers == 2 and spec.d_model // spec.n_heads == 4  # tiny's family
    assert depth_note(2, [(10, 4), (80, 2), (100, 2)]) is None and depth_note(3, [(60, 3), (100, 2)]) is None
    assert "3 layers, the sweep's largest models 2" in depth_note(3, [(10, 3), (100, 2)])
    with pytest.raises(ValueError, match="predictor must be"):
        validation_spec(config, template, fit, budget, "kaplan")
