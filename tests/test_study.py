"""The whole loop on a tiny study: sweep on local Ray, fits, plots, a validation run, the report; a rerun
trains nothing new."""

import json

from experiments import store as st
from scaling.cli import main
from sweeps.plan import plan
from sweeps.config import load_sweep


def test_tiny_study_end_to_end_and_rerun_trains_nothing(tmp_path, capsys):
    store, out = tmp_path / "store", tmp_path / "report"
    args = ["study", "tiny", "--store", str(store), "--out", str(out), "--bootstrap", "100"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "validation at C" in printed and "report:" in printed

    summary = json.loads((out / "summary.json").read_text())
    validation = summary["validation"]
    for key in ("budget", "n", "d", "predicted_loss", "actual_loss", "relative_error", "inside_interval"):
        assert validation[key] is not None, key
    largest = max(r.spec.budget for r in plan(load_sweep("tiny")).runs)
    assert validation["budget"] >= 4 * largest
    assert abs(validation["relative_error"] - (validation["predicted_loss"] / validation["actual_loss"] - 1)) < 1e-12
    assert summary["fits"]["approach3"]["alpha"] is not None
    assert summary["runs"]["trained_now"] == 6
    for name in ("report.md", "report.html"):
        assert (out / name).stat().st_size > 1000
    assert "data:image/png;base64," in (out / "report.html").read_text()
    pngs = [p for p in summary["plots"] if p.endswith(".png")]
    assert pngs and all((out / p).stat().st_size > 5000 for p in pngs)
    validation_row = st.read_row(store, validation["run_id"])
    assert validation_row["status"] == "completed" and validation_row["sweep"] == "tiny-validation"

    assert main(args) == 0  # the rerun reuses every run, the validation run included
    again = json.loads((out / "summary.json").read_text())
    assert again["runs"]["trained_now"] == 0 and again["runs"]["already_done"] == 6
    assert st.read_row(store, validation["run_id"])["attempts"] == 1
    assert again["validation"]["actual_loss"] == validation["actual_loss"]
