"""The whole loop on a tiny study: sweep on local Ray, fits, plots, a validation run, the report; a rerun
trains nothing new."""

import json
import warnings
from datetime import datetime

import numpy as np
import pytest

from analysis.simulate import simulate_runs
from analysis.study_fit import StudyFit, fit_all
from experiments import store as st
from lm.accounting import training_flops_per_token
from experiments.spec import ExperimentSpec
from scaling.cli import main
from scaling.prediction_file import fit_sha256
from scaling.study import depth_note, validation_spec
from sweeps.config import load_sweep
from sweeps.plan import plan


def test_tiny_study_end_to_end_and_rerun_trains_nothing(tmp_path, capsys):
    """Sweep, fit, prediction.json, two validation runs (tiny's multiples, a fresh seed, the sweep's shape family),
    plots and report; prediction.json is written before either validation run starts; the corpus is prepared
    once for the sweep and the validation runs; a rerun trains nothing and keeps prediction.json as it was."""
    store, out = tmp_path / "store", tmp_path / "report"
    args = ["study", "tiny", "--store", str(store), "--out", str(out), "--bootstrap", "100"]
    assert main(args) == 0
    printed, logged = capsys.readouterr()
    assert logged.count("corpus: ") == 1 and "corpus: tokenized at" in logged  # once for sweep and validation
    assert "validation at C" in printed and "report:" in printed and "prediction.json: recorded" in printed

    summary = json.loads((out / "summary.json").read_text())
    sweep_plan = plan(load_sweep("tiny"))
    largest = max(r.spec.budget for r in sweep_plan.runs)
    multiples = load_sweep("tiny").validation.multiples  # two, cheap ones for a test (sweeps/tiny.yaml)
    assert summary["validation_multiples"] == list(multiples) and len(summary["validations"]) == 2
    record = json.loads((out / "prediction.json").read_text())
    assert record == summary["prediction"]["record"] and summary["prediction"]["action"] == "written"
    assert record["fit_sha256"] == fit_sha256(StudyFit.from_dict(summary["fit"]))
    assert record["headline"] == summary["fit"]["headline"]  # fixed before the runs trained: the fit's own
    sweep_seeds = {r.spec.seed for r in sweep_plan.runs}
    for multiple, validation, planned in zip(multiples, summary["validations"], record["runs"]):
        for key in ("n", "d", "actual_loss"):
            assert validation[key] is not None, key
        design = validation["design"]
        assert design["budget"] == planned["budget"] == multiple * largest
        spec = ExperimentSpec.from_dict(design["spec"])
        assert planned["run_id"] == spec.run_id and (planned["N"], planned["D"]) == (validation["n"], validation["d"])
        assert spec.seed == planned["seed"] and spec.seed not in sweep_seeds
        comparisons = {c["predictor"]: c for c in validation["comparisons"]}
        assert comparisons and set(comparisons) <= {"frontier", "approach3"}
        assert {name: c["predicted"] for name, c in comparisons.items()} == dict(planned["predicted"])
        for c in comparisons.values():
            assert abs(c["relative_error"] - (c["predicted"]["value"] / validation["actual_loss"] - 1)) < 1e-12
        headline = design["prediction"]["headline"]
        # the headline predicts the loss, unless no loss law converged (then Approach 1 leads, with no loss)
        assert headline["predictor"] in comparisons or headline["predictor"] == "approach1"
        row, status = st.read_row(store, spec.run_id), st.read_status(store, spec.run_id)
        assert row["status"] == "completed" and row["sweep"] == "tiny-validation" and row["N"] == validation["n"]
        # prediction.json was written before the run started, and before its row was written
        assert validation["trained_after_prediction"] is True
        assert datetime.fromisoformat(record["created_at"]).replace(microsecond=0) <= \
            datetime.fromisoformat(status["started_at"])
        assert (out / "prediction.json").stat().st_mtime_ns < (st.run_dir(store, spec.run_id) / st.ROW).stat().st_mtime_ns
    assert summary["fit"]["approach3"]["alpha"] is not None
    assert summary["runs"]["trained_now"] == 6
    for name in ("report.md", "report.html"):
        assert (out / name).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "Headline predictor" in report and record["fit_sha256"] in report and record["created_at"] in report
    pngs = [p for p in summary["plots"] if p.endswith(".png")]
    assert pngs and all((out / p).stat().st_size > 5000 for p in pngs)
    assert "plots/loss_vs_compute.png" in pngs

    written = (out / "prediction.json").read_bytes()
    assert main(args) == 0  # the rerun reuses every run, the validation runs included
    assert capsys.readouterr().err.count("corpus: opened from the cache at") == 1
    again = json.loads((out / "summary.json").read_text())
    assert again["runs"]["trained_now"] == 0 and again["runs"]["already_done"] == 6
    assert again["prediction"]["action"] == "kept" and (out / "prediction.json").read_bytes() == written
    for validation, first in zip(again["validations"], summary["validations"]):
        run_id = ExperimentSpec.from_dict(validation["design"]["spec"]).run_id
        assert st.read_row(store, run_id)["attempts"] == 1
        assert validation["actual_loss"] == first["actual_loss"]


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
    by_frontier = validation_spec(config, template, fit, budget, "frontier", seed=1)
    assert by_frontier.prediction.best.approach == "approach2" and by_frontier.headline.predictor == "frontier"
    assert by_frontier.n_opt_predicted == pytest.approx(float(fit.approach2.n_opt(budget)))
    by_a3 = validation_spec(config, template, fit, budget, "approach3", seed=1)
    assert by_a3.prediction.best.approach == "approach3" and by_a3.headline.predictor == "approach3"
    assert by_a3.n_opt_predicted == pytest.approx(float(fit.approach3.compute_optimal(budget)[0]))
    assert validation_spec(config, template, fit, budget, seed=1).headline == fit.headline
    spec = by_frontier.spec
    assert spec.budget == budget and spec.tokens % (spec.batch_size * spec.context_length) == 0
    assert abs(spec.tokens * training_flops_per_token(spec.model_config(), "exact") / budget - 1) <= 0.01  # tiny: exact
    assert spec.compute == "exact" and spec.n_layers == 2 and spec.d_model // spec.n_heads == 4  # tiny's family
    assert depth_note(2, [(10, 4), (80, 2), (100, 2)]) is None and depth_note(3, [(60, 3), (100, 2)]) is None
    assert "3 layers, the sweep's largest models 2" in depth_note(3, [(10, 3), (100, 2)])
    with pytest.raises(ValueError, match="predictor must be"):
        validation_spec(config, template, fit, budget, "kaplan", seed=1)


def test_validation_multiples_are_checked_before_anything_trains(tmp_path, capsys):
    """A multiple not above 1 (inside the sweep) is refused, naming the setting, before the sweep starts."""
    store = tmp_path / "store"
    assert main(["study", "tiny", "--store", str(store), "--out", str(tmp_path / "out"),
                 "--validation-multiples", "4", "1"]) != 0
    assert "validation_multiples: multiples[1]: must be > 1" in capsys.readouterr().err
    assert not store.exists()
