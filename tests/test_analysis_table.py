"""The results-table contract (analysis.table) and the simulator that produces it (analysis.simulate)."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.parametric import CHINCHILLA_2022, compute_optimal, predict_loss
from analysis.simulate import HyperparamAxis, simulate_curves, simulate_grid, simulate_runs, write_store
from analysis.table import (COLUMNS, REQUIRED, ExcludedRunsWarning, clean_runs, clean_table, load_curves, load_table,
                            read_curves, read_table, usable_runs)


def _bad_table() -> pd.DataFrame:
    return pd.DataFrame({
        "run_id": ["0012", "div", "zero", "nanloss", "ok2"],
        "status": ["completed", "diverged", "completed", "completed", "completed"],
        "N": [1e6, 1e6, 0, 2e6, 3e6],
        "D": [2e7, 2e7, 2e7, 4e7, 6e7],
        "loss": [3.1, 9.0, 3.0, math.nan, 2.8],
        "lr": [1e-3, 1e-3, 1e-3, 1e-3, math.nan],
    })


def test_columns_cover_the_contract():
    expected = {"run_id", "sweep", "status", "N", "N_total", "N_embedding", "N_head", "N_blocks", "N_norms", "D",
                "passes", "C", "flops", "budget", "compute", "C_exact", "C_6N_non_embedding", "C_6N_total",
                "C_6N_with_head", "loss", "train_loss", "lr", "seed", "beta2", "batch_size", "context_length",
                "vocab_size", "wall_seconds",
                "tokens_per_second", "mfu", "device", "error"}
    assert set(COLUMNS) == expected and REQUIRED == ("N", "D", "loss")


def test_clean_runs_is_pure_and_says_which_rows_and_why():
    df = _bad_table()
    before = df.copy()
    kept, excluded = clean_runs(df)
    pd.testing.assert_frame_equal(df, before)  # input untouched
    assert list(kept["run_id"]) == ["0012", "ok2"]
    reasons = dict(zip(excluded["run_id"], excluded["reason"]))
    assert set(reasons) == {"div", "zero", "nanloss"}
    assert "status 'diverged'" in reasons["div"]
    assert "N = 0" in reasons["zero"]
    assert "loss = nan" in reasons["nanloss"]


def test_usable_runs_warns_naming_every_excluded_run():
    with pytest.warns(ExcludedRunsWarning) as record:
        kept = usable_runs(_bad_table(), source="t.csv")
    message = str(record[0].message)
    assert len(kept) == 2
    for run_id in ("div", "zero", "nanloss"):
        assert f"run {run_id}" in message
    assert "t.csv: excluded 3 of 5 runs" in message


def test_wsd_trunks_are_left_out_as_trunks_and_counted_not_listed():
    """A WSD store's trunks (loss NaN by design: their branches are the points) are one count in the note, with
    no second reason; a bad branch beside them is still named."""
    df = _bad_table().assign(role=["branch", "branch", "trunk", "trunk", "branch"])
    note = clean_table(df, source="store").notes[0]
    assert note == ("store: excluded 3 of 5 runs: run div (status 'diverged', not 'completed'); "
                    "2 WSD trunk(s) (their cooldown branches are the points)")


def test_the_quiet_cleaning_returns_its_note_in_the_result(tmp_path):
    """clean_table / load_table / load_curves raise no warning: the note, the very message the warning
    wrappers raise, comes back in the CleanTable."""
    path = tmp_path / "results.csv"
    _bad_table().to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cleaned, loaded = clean_table(_bad_table(), source="t.csv"), load_table(path)
    assert list(cleaned.table["run_id"]) == ["0012", "ok2"] and len(cleaned.notes) == 1
    assert "t.csv: excluded 3 of 5 runs" in cleaned.notes[0] and "run div (status 'diverged'" in cleaned.notes[0]
    with pytest.warns(ExcludedRunsWarning) as record:
        read = read_table(path)
    assert loaded.notes == tuple(str(w.message) for w in record)
    pd.testing.assert_frame_equal(loaded.table, read)
    assert clean_table(_bad_table().iloc[[0, 4]]).notes == ()


def test_load_curves_names_the_excluded_runs_in_its_notes(tmp_path):
    runs = simulate_runs(budgets=[1e17, 1e18], n_per_budget=3, noise=0.0, seed=0)
    runs.loc[0, "status"] = "diverged"
    store = write_store(runs, tmp_path / "store", curves=simulate_curves(runs, n_points=4, noise=0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_curves(store)
    assert runs.loc[0, "run_id"] not in set(loaded.table["run_id"])
    assert len(loaded.notes) == 1 and f"run {runs.loc[0, 'run_id']} (status 'diverged'" in loaded.notes[0]


def test_read_csv_excludes_bad_rows_keeps_string_ids_and_computes_C(tmp_path):
    path = tmp_path / "results.csv"
    _bad_table().to_csv(path, index=False)
    with pytest.warns(ExcludedRunsWarning, match="run div .*status 'diverged'"):
        df = read_table(path)
    assert list(df["run_id"]) == ["0012", "ok2"]  # "0012" stays a string, not the integer 12
    assert df["N"].dtype == "int64" and df["D"].dtype == "int64" and df["lr"].dtype == "float64"
    np.testing.assert_allclose(df["C"], 6.0 * df["N"] * df["D"])
    assert df.attrs["source"] == str(path)


def test_read_table_errors_name_the_missing_column_and_file(tmp_path):
    path = tmp_path / "results.csv"
    pd.DataFrame({"N": [1e6], "D": [1e9]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"results\.csv.*missing required column.*'loss'"):
        read_table(path)
    with pytest.raises(ValueError, match=r"no column 'params'"):
        read_table(path, n_col="params")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("N,D,loss\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_table(tmp_path / "x.txt")


def test_column_mapping_copies_and_parquet_reads(tmp_path):
    df = pd.DataFrame({"params": [1e6, 2e6], "tokens": [1e9, 2e9], "val": [3.0, 2.9], "N": [5, 6]})
    path = tmp_path / "r.parquet"
    df.to_parquet(path)
    out = read_table(path, n_col="params", d_col="tokens", loss_col="val")
    assert list(out["N"]) == [1_000_000, 2_000_000] and list(out["params"]) == [1e6, 2e6]
    assert list(out["loss"]) == [3.0, 2.9]


def test_big_N_times_D_does_not_overflow(tmp_path):
    path = tmp_path / "big.csv"
    pd.DataFrame({"N": [7e10], "D": [1.5e12], "loss": [1.9]}).to_csv(path, index=False)
    assert read_table(path)["C"].iloc[0] == pytest.approx(6 * 7e10 * 1.5e12)


def test_store_round_trip_with_curves_and_an_unfinished_run(tmp_path):
    runs = simulate_grid(sizes=[1e6, 1e7], tokens=[1e8, 1e9], noise=0.0, seed=0)
    runs.loc[1, "status"] = "diverged"
    curves = simulate_curves(runs, n_points=4, noise=0.0)
    store = write_store(runs, tmp_path / "store", curves=curves)
    (store / "runs" / "pending").mkdir()
    with pytest.warns(ExcludedRunsWarning) as record:
        table = read_table(store)
    text = " ".join(str(r.message) for r in record)
    assert "run sim-00001" in text and "pending" in text
    assert list(table["run_id"]) == ["sim-00000", "sim-00002", "sim-00003"]
    np.testing.assert_allclose(table["loss"], runs.loc[[0, 2, 3], "loss"])
    with pytest.warns(ExcludedRunsWarning):
        long = read_curves(store)
    assert set(long["run_id"]) == set(table["run_id"])
    assert list(long.columns[:9]) == ["run_id", "N", "D", "step", "tokens", "flops", "loss", "train_loss", "val_loss"]
    assert (long.groupby("run_id")["tokens"].max() == table.set_index("run_id")["D"]).all()
    np.testing.assert_allclose(long["loss"], predict_loss(CHINCHILLA_2022, long["N"], long["tokens"]), rtol=1e-12)


def test_row_json_must_be_flat_and_match_its_folder(tmp_path):
    run = tmp_path / "store" / "runs" / "abc"
    run.mkdir(parents=True)
    (run / "row.json").write_text(json.dumps({"run_id": "xyz", "N": 1, "D": 1, "loss": 1.0}))
    with pytest.raises(ValueError, match="does not match its folder"):
        read_table(tmp_path / "store")
    (run / "row.json").write_text("{not json")
    with pytest.raises(ValueError, match="row.json: not a readable JSON row"):
        read_table(tmp_path / "store")


def test_curves_from_a_table_with_a_curve_column_and_from_long_format(tmp_path):
    runs = simulate_grid(sizes=[1e6, 1e7], tokens=[1e8], noise=0.0, seed=0)
    curves = simulate_curves(runs, n_points=3, noise=0.0)
    for run_id, group in curves.groupby("run_id"):
        group[["step", "tokens", "flops", "train_loss", "val_loss"]].to_csv(tmp_path / f"{run_id}.csv", index=False)
    runs.assign(curve=[f"{r}.csv" for r in runs["run_id"]]).to_csv(tmp_path / "results.csv", index=False)
    via_paths = read_curves(tmp_path / "results.csv")
    curves.to_csv(tmp_path / "long.csv", index=False)
    via_long = read_curves(tmp_path / "long.csv")
    cols = ["run_id", "N", "D", "step", "tokens", "loss"]
    pd.testing.assert_frame_equal(via_paths[cols], via_long[cols], check_dtype=False)


# ------------------------------------------------------------------------------------------ simulator

def test_isoflop_design_centres_sizes_on_the_true_optimum():
    runs = simulate_runs(budgets=[1e19, 1e21], n_per_budget=5, width=4.0, noise=0.0)
    assert len(runs) == 10 and set(runs["budget"]) == {1e19, 1e21}
    np.testing.assert_allclose(runs["C"], runs["budget"], rtol=1e-6)  # integer rounding only
    for budget, group in runs.groupby("budget"):
        n_opt = float(compute_optimal(CHINCHILLA_2022, budget)[0])
        assert group["N"].iloc[2] == pytest.approx(n_opt, rel=1e-6)
        assert group["loss"].idxmin() == group.index[2]  # noise-free valley bottoms at N_opt
        assert group["N"].max() / group["N"].min() == pytest.approx(16.0, rel=1e-5)


def test_noise_is_relative_in_log_space_and_seeded():
    a = simulate_grid(sizes=np.logspace(6, 8, 10), tokens=np.logspace(9, 11, 10), noise=0.02, seed=3)
    b = simulate_grid(sizes=np.logspace(6, 8, 10), tokens=np.logspace(9, 11, 10), noise=0.02, seed=3)
    pd.testing.assert_frame_equal(a, b)
    ratio = np.log(a["loss"] / predict_loss(CHINCHILLA_2022, a["N"], a["D"]))
    assert np.std(ratio) == pytest.approx(0.02, rel=0.2)


def test_hyperparameter_axis_has_its_minimum_at_the_true_optimum():
    axis = HyperparamAxis(name="lr", k=0.3, p=-0.1, curvature=0.05, n_points=5, span=4.0)
    runs = simulate_runs(budgets=[1e18], n_per_budget=2, noise=0.0, hyperparams=(axis,))
    assert len(runs) == 10
    for n, group in runs.groupby("N"):
        best = group.loc[group["loss"].idxmin()]
        assert best["lr"] == pytest.approx(float(axis.optimum(best["C"])), rel=1e-12)
        assert group["lr"].max() / group["lr"].min() == pytest.approx(16.0)
    with pytest.raises(ValueError, match="name must be one of"):
        HyperparamAxis(name="momentum")


def test_simulator_rejects_bad_designs():
    with pytest.raises(ValueError, match="budgets"):
        simulate_runs(budgets=[])
    with pytest.raises(ValueError, match="noise"):
        simulate_runs(budgets=[1e18], noise=-1.0)
