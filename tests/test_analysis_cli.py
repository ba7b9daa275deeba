"""`scaling fit`, `scaling predict` and `scaling plot` (scaling/analysis_cli.py), driven through `scaling.cli.main`."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from analysis.parametric import ChinchillaParams, compute_optimal, predict_loss
from analysis.simulate import HyperparamAxis, simulate_curves, simulate_runs, write_store
from scaling.cli import main

FAST = ["--bootstrap", "40", "--holdout", "none"]
SHAPE = ["--vocab-size", "1024", "--context", "128"]


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
    fit = doc["fit"]
    a3, boot = fit["approach3"], fit["approach3_bootstrap"]
    for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
        interval = boot["intervals"][name]
        assert interval["lo"] <= a3[name] <= interval["hi"], name
    assert boot["n_resamples"] == 40 and len(boot["samples"]) == 40
    assert fit["lr_law"]["success"] and fit["lr_law"]["p"] == pytest.approx(-0.1, abs=0.05)
    assert fit["headline"]["predictor"] in ("frontier", "approach3")


def test_fit_json_loads_back_into_the_same_objects(store, fit_file):
    """StudyFit.from_dict(to_dict()) rebuilds the fit: every prediction from the file equals the live fit's."""
    from analysis.study_fit import StudyFit
    from analysis.table import read_curves, read_table
    from analysis.study_fit import fit_all

    fit = StudyFit.from_dict(json.loads(fit_file.read_text())["fit"])
    live = fit_all(read_table(store), read_curves(store), n_bootstrap=40, holdout=[])
    for c in (1e19, 1e21):
        assert fit.predict_at(c).best == live.predict_at(c).best
    assert fit.predict_run(1e8, 2e9) == live.predict_run(1e8, 2e9)


def test_predict_from_fit_json_matches_the_closed_forms_and_builds_a_shape(fit_file, capsys):
    doc = json.loads(fit_file.read_text())["fit"]
    capsys.readouterr()
    assert main(["predict", "--from", str(fit_file), "--compute", "1e21", "--json", "--predictor", "approach3",
                 *SHAPE]) == 0
    out = json.loads(capsys.readouterr().out)
    a3 = doc["approach3"]
    params = ChinchillaParams(**{k: a3[k] for k in ("E", "A", "B", "alpha", "beta")})
    n_opt, d_opt = (float(v) for v in compute_optimal(params, 1e21))
    assert out["headline"]["predictor"] == "approach3"
    best = next(a for a in out["allocations"] if a["approach"] == "approach3")
    assert best["n_opt"]["value"] == pytest.approx(n_opt, rel=1e-12)
    assert best["d_opt"]["value"] == pytest.approx(d_opt, rel=1e-12)
    assert best["loss"]["value"] == pytest.approx(float(predict_loss(params, n_opt, d_opt)), rel=1e-12)
    for estimate in (best["n_opt"], best["d_opt"], best["loss"], out["lr"]):
        lo, hi = estimate["interval"]
        assert lo < estimate["value"] < hi
    assert out["lr"]["value"] == pytest.approx(doc["lr_law"]["k"] * 1e21 ** doc["lr_law"]["p"])
    assert out["batch_size"]["value"] is None  # no batch-size axis in this sweep: null, said so
    frontier = doc["frontier"]  # Approach 2's loss is the loss frontier's, with an interval from its samples
    a2 = next(a for a in out["allocations"] if a["approach"] == "approach2")
    assert a2["loss"]["value"] == pytest.approx(frontier["E"] + frontier["G"] * 1e21 ** -frontier["gamma"], rel=1e-12)
    assert a2["loss"]["interval"][0] < a2["loss"]["value"] < a2["loss"]["interval"][1]
    assert a2["d_opt"]["value"] == pytest.approx(1e21 / (6 * a2["n_opt"]["value"]))
    assert a2["d_opt"]["interval"][0] == pytest.approx(1e21 / (6 * a2["n_opt"]["interval"][1]))
    shape = out["shape"]
    assert shape["n_params"] == pytest.approx(n_opt, rel=0.06)  # lm.shapes lands within 5% of a target
    assert shape["train_flops_6ND"] == pytest.approx(6 * shape["n_params"] * d_opt)
    assert shape["memory_bytes"]["total"] > 16 * shape["params"]["total"]  # AdamW state alone is 16 B/param
    assert shape["vocab_size"] == 1024 and "from the flag" in shape["from"]


def test_predict_from_source_equals_predict_from_its_fit_file(store, tmp_path, capsys):
    """`predict SOURCE` and `fit SOURCE --out f.json && predict --from f.json` give the same headline and numbers,
    and so does a SOURCE that is the fit file itself."""
    fit_path = tmp_path / "f.json"
    assert main(["fit", str(store), "--format", "json", "--out", str(fit_path), "--bootstrap", "40"]) == 0
    outputs = []
    for argv in (["--from", str(fit_path)], [str(fit_path)], [str(store), "--bootstrap", "40"]):
        capsys.readouterr()
        assert main(["predict", *argv, "--compute", "3e20", "--json", *SHAPE]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] == outputs[2]


def test_predict_without_the_vocabulary_gives_no_shape_but_the_prediction(fit_file, capsys):
    """Runs that do not say their vocabulary and context (a published table of N, D, loss): N_opt, D_opt and the
    loss all the same, no shape (none is assumed) and one warning saying which flags would give one."""
    capsys.readouterr()
    assert main(["predict", "--from", str(fit_file), "--compute", "1e21", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["shape"] is None and all(a["n_opt"]["value"] > 0 for a in out["allocations"])
    assert ("warning: no model shape: the runs do not say their vocab size and context; give --vocab-size and "
            "--context for one") in captured.err
    assert main(["predict", "--from", str(fit_file), "--compute", "1e21"]) == 0
    text = capsys.readouterr().out
    assert "N_opt" in text and "shape" not in text
    assert main(["predict", "--from", str(fit_file), "--compute", "1e21", "--json", *SHAPE]) == 0
    assert json.loads(capsys.readouterr().out)["shape"]["vocab_size"] > 0


def test_predict_loss_of_a_given_run(fit_file, capsys):
    capsys.readouterr()
    assert main(["predict", "--from", str(fit_file), "--params", "1e8", "--tokens", "2e9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    lo, hi = out["loss"]["interval"]
    assert lo < out["loss"]["value"] < hi and out["C"] == pytest.approx(1.2e18)
    assert set(out["by_predictor"]) == {"frontier", "approach3"}
    assert out["loss"] == out["by_predictor"][out["headline"]["predictor"]]


def test_an_excluded_run_is_printed_once_as_a_warning(tmp_path, capsys):
    """The table and the curves both exclude the diverged run with the same note: one stderr line names it,
    and nothing is raised as a Python warning (the notes travel in the readers' and the fit's results)."""
    runs = simulate_runs(budgets=np.logspace(17, 18, 2), n_per_budget=5, noise=0.01, seed=1)
    runs.loc[2, "status"] = "diverged"
    store = write_store(runs, tmp_path / "store", curves=simulate_curves(runs, n_points=6, noise=0.01))
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["fit", str(store), "--approach", "1", *FAST]) == 0
    naming = [line for line in capsys.readouterr().err.splitlines() if runs.loc[2, "run_id"] in line]
    assert len(naming) == 1 and naming[0].startswith("scaling fit: warning: ")
    assert "(status 'diverged', not 'completed')" in naming[0]


@pytest.mark.parametrize("rows", ["N,D,loss\n", "N,D,loss\n1000,20000,3.0\n", "N,D,loss\n1000,2000,0\n2000,1000,0\n"])
def test_nothing_fitted_exits_1_with_one_line(rows, tmp_path, capsys):
    """An empty table, one run, or only unusable losses: no approach fits, exit 1, no numpy internals quoted."""
    path = tmp_path / "runs.csv"
    path.write_text(rows)
    for command in (["fit", str(path)], ["predict", str(path), "--compute", "1e20"]):
        capsys.readouterr()
        assert main(command) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"scaling {command[0]}: no ") and "weights" not in err[-1]
        assert not any("Approach 1" in line for line in err)  # a table of final losses has no curves to warn of


def test_a_results_table_needs_no_curves_but_a_broken_curves_file_is_named(tmp_path, capsys):
    """A table of final losses skips Approach 1 quietly (the fit's "skipped" line says why), unless Approach 1
    alone was asked for (exit 2, one line); a long-format curves file missing a column is named in a warning."""
    table = tmp_path / "runs.csv"
    simulate_runs(budgets=[1e18, 1e19], n_per_budget=5).to_csv(table, index=False)
    capsys.readouterr()
    assert main(["fit", str(table), *FAST]) == 0
    captured = capsys.readouterr()
    assert "Approach 1" not in captured.err and "skipped approach1: no training curves given" in captured.out
    assert main(["fit", str(table), "--approach", "1", *FAST]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"scaling fit: error: {table}: no training curves (a results table of final losses; Approach 1 needs a "
        "long-format file with run_id, N, D, tokens, train_loss or loss, or a 'curve' column)"]
    curves = tmp_path / "curves.csv"
    simulate_runs(budgets=[1e18, 1e19], n_per_budget=5).assign(tokens=1.0).drop(columns="run_id").to_csv(curves, index=False)
    assert main(["fit", str(curves), *FAST]) == 0
    assert "warning: Approach 1 skipped" in capsys.readouterr().err


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
    (["predict", "--from", "{tmp}/bad.json", "--compute", "1e20"], "not JSON"),
    (["predict", "--compute", "1e20"], "exactly one of SOURCE"),
    (["fit", "{csv}", "--holdout", "1e30", "--bootstrap", "20"], "--holdout"),
])
def test_bad_input_exits_2_with_one_line_naming_the_problem(argv, needle, store, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    simulate_runs(budgets=[1e18, 1e19], n_per_budget=5).to_csv(csv, index=False)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("N,D\n1,2\n")
    (tmp_path / "bad.json").write_text("{not json")
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
