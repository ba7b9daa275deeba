"""prediction.json is written once per test: the same fit and design keep the file (its time included), a
changed fit or design replaces it naming the one replaced, and a file that is not a record is refused."""

import json
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from analysis.prediction import Estimate
from analysis.serialize import to_tree
from analysis.simulate import simulate_runs
from analysis.study_fit import fit_all
from scaling.prediction_file import PlannedValidation, fit_sha256, fix_prediction, read_record


def _fit(noise: float):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what the fits leave out is in the result
        return fit_all(simulate_runs(budgets=np.geomspace(1e9, 1e11, 3), n_per_budget=5, width=6.0, noise=noise),
                       n_bootstrap=10, holdout=[])


def _run(multiple: float) -> PlannedValidation:
    return PlannedValidation(multiple=multiple, budget=multiple * 1e11, run_id=f"r{multiple:g}", N=1000, D=20000,
                             lr=1e-2, batch_size=16, seed=1, n_layers=2, d_model=32, n_heads=2,
                             predicted=(("approach3", Estimate(2.0, (1.9, 2.1))),))


def test_same_test_is_kept_and_a_changed_fit_or_design_replaces_it(tmp_path):
    path, fit = tmp_path / "prediction.json", _fit(0.003)
    assert fit_sha256(fit) == fit_sha256(_fit(0.003)) != fit_sha256(_fit(0.004))  # deterministic, and sensitive
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = fix_prediction(path, fit=fit, headline=fit.headline, runs=(_run(4), _run(10)), now=t0)
    assert first.action == "written" and to_tree(read_record(path)) == to_tree(first.record)
    assert first.record.created_at == t0.isoformat(timespec="microseconds") and first.record.replaces is None

    again = fix_prediction(path, fit=fit, headline=fit.headline, runs=(_run(4), _run(10)), now=t0 + timedelta(hours=1))
    assert again.action == "kept" and again.record.created_at == first.record.created_at

    other = _fit(0.004)
    changed = fix_prediction(path, fit=other, headline=other.headline, runs=(_run(4), _run(10)),
                             now=t0 + timedelta(hours=2))
    assert changed.action == "replaced" and "the fit changed" in changed.message
    assert changed.record.replaces == (first.record.fit_sha256, first.record.created_at)
    assert json.loads(path.read_text())["fit_sha256"] == fit_sha256(other)

    redesigned = fix_prediction(path, fit=other, headline=other.headline, runs=(_run(4),), now=t0 + timedelta(hours=3))
    assert redesigned.action == "replaced" and "design changed" in redesigned.message


def test_a_file_that_is_not_a_record_is_refused_naming_it(tmp_path):
    path, fit = tmp_path / "prediction.json", _fit(0.003)
    path.write_text('{"fit_sha256": 3}')
    with pytest.raises(ValueError, match="prediction.json: not a prediction record"):
        fix_prediction(path, fit=fit, headline=fit.headline, runs=(_run(4),))
    path.write_text("{")
    with pytest.raises(ValueError, match="prediction.json: unreadable or not JSON"):
        fix_prediction(path, fit=fit, headline=fit.headline, runs=(_run(4),))
    assert path.read_text() == "{"  # left as it was


def test_an_unreliable_interval_is_shown_marked_and_not_scored():
    """An off-centre sweep (sizes 1.66× above the optimum, as the demo's) whose frontier bootstrap kept 25 of 100
    replicates: its prediction carries the interval marked unreliable, and a validation run is not scored by it."""
    from analysis.calibration import FAMILIES
    from scaling.study import Comparison

    family = FAMILIES["off-centre"]
    runs = simulate_runs(budgets=family.budgets, n_per_budget=5, width=3.0, center=family.center,
                         params=family.params, noise=0.006, seed=19)
    fit = fit_all(runs, approaches=(2,), n_bootstrap=100, seed=19, holdout=())
    predicted = fit.predict_run(1e5, 1e7, by="frontier")
    assert predicted.has_interval and not predicted.reliable and not fit.frontier.interval_reliable
    inside = (predicted.interval[0] + predicted.interval[1]) / 2
    unscored = Comparison("frontier", predicted, actual=inside)
    assert unscored.inside_interval is None and "unreliable" in unscored.verdict
    scored = Comparison("frontier", Estimate(predicted.value, predicted.interval), actual=inside)
    assert scored.inside_interval is True and scored.verdict == "inside the interval"
