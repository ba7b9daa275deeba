"""`scaling fit`, `scaling predict` and `scaling plot` (scaling/analysis_cli.py), driven through `scaling.cli.main`."""

import json
import subprocess
import sys

import numpy as np
import pytest

from analysis.parametric import ChinchillaParams, compute_optimal, predict_loss
from analysis.simulate import HyperparamAxis, simulate_curves, simulate_runs, write_store
from scaling.cli import main

FAST = ["--bootstrap", "40", "--holdout", "none"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A simulated IsoFLOP sweep with an lr axis (5 learning rates per point) and training curves."""
    runs = simulate_runs(budgets=np.logspace(17, 19, 3), n_per_budget=7, noise=0.01, seed=0,
                         hyperparams=(HyperparamAxis(name="lr", k=3.0, p=-0.1, curvature=0.05, n_points=5),))
    curves = simulate_curves(runs, n_points=8, noise=0.01)
    return write_store(runs, tmp_path_factory.mktemp("cli") / "store", curves=curves)


@pytest.fixture(scope="module")
def fit_file(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "fit.json"
    assert main(["fit", str(store), "--format", "json", "--out", str(out), *FAST]) == 0
    return out


def test_fit_json_names_approach3_parameters_with_intervals(fit_file):
    doc = json.loads(fit_file.read_text())
    a3 = doc["approach3"]
    for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
        lo, hi = a3[f"{name}_interval"]
        assert lo <= a3[name] <= hi, name
    assert a3["bootstrap"]["n_resamples"] == 40
    assert len(doc["samples"]["approach3"]) == a3["bootstrap"]["n_converged"]
    assert doc["lr_law"]["success"] and doc["lr_law"]["p"] == pytest.approx(-0.1, abs=0.05)


def test_predict_from_fit_json_matches_the_closed_forms_and_builds_a_shape(fit_file, capsys):
    doc = json.loads(fit_file.read_text())
    capsys.readouterr()
    assert main(["predict", "--from", str(fit_file), "--compute", "1e21", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    a3 = doc["approach3"]
    params = ChinchillaParams(**{k: a3[k] for k in ("E", "A", "B", "alpha", "beta")})
    n_opt, d_opt = (float(v) for v in compute_optimal(params, 1e21))
    assert out["approach"] == "approach3"
    assert out["n_opt"] == pytest.approx(n_opt, rel=1e-12) and out["d_opt"] == pytest.approx(d_opt, rel=1e-12)
    assert out["loss"] == pytest.approx(float(predict_loss(params, n_opt, d_opt)), rel=1e-12)
    for key in ("n_opt", "d_opt", "loss", "lr"):
        lo, hi = out[f"{key}_interval"]
        assert lo < out[key] < hi, key
    assert out["lr"] == pytest.approx(doc["lr_law"]["k"] * 1e21 ** doc["lr_law"]["p"])
    assert "batch_size" in out  # no batch-size axis in this sweep: null, said so
    frontier = doc["frontier"]  # Approach 2's loss is the loss frontier's, with an interval from its samples
    a2 = out["by_approach"]["approach2"]
    assert a2["loss"] == pytest.approx(frontier["E"] + frontier["G"] * 1e21 ** -frontier["gamma"], rel=1e-12)
    assert a2["loss_interval"][0] < a2["loss"] < a2["loss_interval"][1]
    shape = out["shape"]
    assert shape["n_params"] == pytest.approx(n_opt, rel=0.06)  # lm.shapes lands within 5% of a target
    assert shape["train_flops_6ND"] == pytest.approx(6 * shape["n_params"] * d_opt)
    assert shape["memory_bytes"]["total"] > 16 * shape["params"]["total"]  # AdamW state alone is 16 B/param


def test_predict_from_source_equals_predict_from_its_fit_file(store, fit_file, capsys):
    capsys.readouterr()
    main(["predict", "--from", str(fit_file), "--compute", "3e20", "--json"])
    via_file = json.loads(capsys.readouterr().out)
    assert main(["predict", str(store), "--compute", "3e20", "--json", "--bootstrap", "40"]) == 0
    via_source = json.loads(capsys.readouterr().out)
    for key in ("n_opt", "n_opt_interval", "d_opt", "loss", "loss_interval", "lr", "lr_interval"):
        assert via_source[key] == pytest.approx(via_file[key], rel=1e-9), key


def test_predict_loss_of_a_given_run(fit_file, capsys):
    capsys.readouterr()
    assert main(["predict", "--from", str(fit_file), "--params", "1e8", "--tokens", "2e9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    lo, hi = out["loss_interval"]
    assert lo < out["loss"] < hi and out["C"] == pytest.approx(1.2e18)


def test_fit_table_output_and_plot(store, tmp_path, capsys):
    capsys.readouterr()
    assert main(["fit", str(store), "--approach", "3", *FAST]) == 0
    text = capsys.readouterr().out
    assert "Approach 3" in text and "alpha" in text and "Approach 2" not in text and "Loss frontier" not in text
    assert main(["fit", str(store), *FAST]) == 0
    assert "Loss frontier" in capsys.readouterr().out
    assert main(["plot", str(store), "--out", str(tmp_path / "figs"), "--bootstrap", "20", "--approach", "3"]) == 0
    written = capsys.readouterr().out.split()
    assert written and all((tmp_path / "figs" / p.split("/")[-1]).is_file() for p in written)


@pytest.mark.parametrize("argv, needle", [
    (["fit", "{tmp}/missing.csv"], "missing.csv"),
    (["fit", "{csv}", "--loss-col", "val_loss"], "'val_loss'"),
    (["fit", "{nocol}"], "'loss'"),
    (["predict", "--from", "{csv}", "--compute", "1e20"], "not JSON"),
    (["predict", "--compute", "1e20"], "exactly one of SOURCE"),
    (["fit", "{csv}", "--holdout", "1e30", "--bootstrap", "20"], "--holdout"),
])
def test_bad_input_exits_2_with_one_line_naming_the_problem(argv, needle, store, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    simulate_runs(budgets=[1e18, 1e19], n_per_budget=5).to_csv(csv, index=False)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("N,D\n1,2\n")
    argv = [a.format(tmp=tmp_path, csv=csv, nocol=nocol) for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and needle in err[-1] and err[-1].startswith(f"scaling {argv[0]}: error:")
    assert not any("Traceback" in line for line in err)


def test_help_is_lazy_and_every_subcommand_has_help():
    """Building the parser imports neither analysis nor torch; each subcommand answers --help."""
    code = ("import sys, scaling.cli as c; c.build_parser(); "
            "print(any(m.startswith('analysis') for m in sys.modules), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    for command in ("fit", "predict", "plot"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
