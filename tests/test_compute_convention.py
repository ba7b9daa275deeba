"""Refitting under another compute convention (analysis/compute.py, `scaling fit --compute --n-convention`):
N, C and the IsoFLOP budgets move together, and a cell planned under one convention is regrouped, never mixed."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.compute import under_convention
from lm.accounting import compute_columns, flop_convention
from scaling.cli import main
from sweeps.config import load_sweep
from sweeps.plan import plan


def planned_table(compute: str = "exact") -> pd.DataFrame:
    """The demo's planned runs as results-table rows (what the runner would write), with a loss from a known
    law, so that regrouping is checked on the real plan's N, D and budgets without training."""
    config = load_sweep("demo")
    config = dataclasses.replace(config, compute=compute)
    rows = []
    for run in plan(config).runs:
        spec, model = run.spec, run.spec.model_config()
        counts = spec.param_counts()
        rows.append({
            "run_id": run.run_id, "status": "completed", "N": run.N, "N_total": counts.total,
            "N_embedding": counts.embedding, "N_head": counts.head, "N_blocks": counts.blocks, "N_norms": counts.norms,
            "n_convention": spec.n_convention, "D": run.D, "C": run.C, "flops": run.flops, "budget": spec.budget,
            "compute": flop_convention(spec.compute, spec.n_convention), **compute_columns(model, run.D),
            "loss": 1.2 + 73.0 / run.N**0.53 + 3400.0 / run.D**0.67,
        })
    return pd.DataFrame(rows)


def cells(table: pd.DataFrame) -> dict[float, set[str]]:
    return {b: set(g["run_id"]) for b, g in table.groupby("budget")}


def test_refitting_under_the_planned_convention_changes_nothing():
    table = planned_table("exact")
    result = under_convention(table, compute="exact", n_convention="with_head")
    assert result.regrouped_cells == 0 and result.message is None and result.convention == "exact"
    pd.testing.assert_series_equal(result.runs["budget"], table["budget"])
    assert (result.runs["C"] == table["C_exact"]).all() and (result.runs["N"] == table["N"]).all()


def test_refitting_exact_budgets_as_6n_regroups_each_cell_under_6n():
    table = planned_table("exact")
    result = under_convention(table, compute="6N", n_convention="with_head")
    runs = result.runs
    assert result.convention == "6N_with_head" and (runs["compute"] == "6N_with_head").all()
    assert (runs["C"] == 6.0 * runs["N"] * runs["D"]).all() and (runs["C"] == table["C_6N_with_head"]).all()
    assert result.regrouped_cells == 3 and sorted(cells(runs).values(), key=min) == sorted(cells(table).values(), key=min)
    for budget, group in runs.groupby("budget"):  # each cell's budget is the geometric mean of its own 6·N·D
        assert budget == pytest.approx(math.exp(np.log(group["C"]).mean()), rel=1e-12)
        planned = table.loc[group.index, "budget"].iloc[0]
        assert budget < planned  # 6·N·D leaves out attention: less than the exact budget it was planned at
    # an exact cell is far from iso-FLOP under 6·N·D (the small models' attention and head), and the message says so
    assert 0.1 < result.spread < 0.5 and f"{result.spread:.0%}" in result.message


def test_a_6n_sweep_refitted_exact_or_under_another_n_is_regrouped_and_its_own_is_kept():
    table = planned_table("6N")
    assert (abs(table["C_6N_with_head"] / table["budget"] - 1) <= 0.01).all()
    same = under_convention(table, compute="6N", n_convention="with_head")
    assert same.regrouped_cells == 0 and (same.runs["budget"] == table["budget"]).all()
    exact = under_convention(table, compute="exact", n_convention="with_head")
    assert exact.regrouped_cells == 3 and (exact.runs["budget"] > table["budget"]).all()
    total = under_convention(table, compute="6N", n_convention="total")
    assert (total.runs["N"] == table["N_total"]).all() and (total.runs["C"] == table["C_6N_total"]).all()
    assert total.regrouped_cells == 3 and (total.runs["n_convention"] == "total").all()


def test_scaling_fit_regroups_budgets_and_n_col_no_longer_keeps_the_stored_c(tmp_path, capsys):
    table = planned_table("exact")
    source = tmp_path / "runs.csv"
    table.to_csv(source, index=False)
    fast = ["--approach", "2", "--bootstrap", "20", "--holdout", "none", "--format", "json"]

    def budgets(*flags) -> list[float]:
        out = tmp_path / "fit.json"
        assert main(["fit", str(source), *flags, *fast, "--out", str(out)]) == 0
        return sorted(p["budget"] for p in json.loads(out.read_text())["fit"]["approach2"]["profiles"])

    assert budgets() == pytest.approx(sorted(table["budget"].unique()))  # as planned: exact
    capsys.readouterr()
    expected = sorted(under_convention(table, compute="6N", n_convention="total").runs["budget"].unique())
    assert budgets("--compute", "6N", "--n-convention", "total") == pytest.approx(expected)
    assert "regrouped under 6N_total" in capsys.readouterr().err
    # --n-col used to swap N and keep the stored (exact) C and budgets; now C = 6·N·D with that N, regrouped
    assert budgets("--n-col", "N_total") == pytest.approx(expected)
    with pytest.raises(SystemExit) as caught:
        main(["fit", str(source), "--compute", "12N"])
    assert caught.value.code == 2


def test_the_demo_plans_exact_compute_is_what_the_analysis_spends():
    """On the demo's real plan (lm.accounting's exact C), the analysis's f(N) = 6·N + c·N^b is within 1% of every
    run's C/D, and Approaches 2 and 3 allocate D_opt = C / f(N_opt), not C / (6·N_opt) (which overstated it ≥ 10%
    at the sweep's largest budget)."""
    from analysis.compute_per_token import from_runs
    from analysis.study_fit import fit_all

    table = planned_table("exact")
    per_token = from_runs(table)
    assert not per_token.is_6n and per_token.max_rel_error < 0.01
    assert from_runs(under_convention(table, compute="6N", n_convention="with_head").runs).is_6n
    fit = fit_all(table, n_bootstrap=2, holdout=())
    assert fit.per_token == per_token
    compute = fit.largest_budget
    for allocation in fit.predict_at(compute).allocations:
        n, d = allocation.n_opt.value, allocation.d_opt.value
        assert d * per_token(n) == pytest.approx(compute, rel=1e-6)
        assert compute / (6 * n) > 1.1 * d
