"""RunResult, the typed row: it is row.json at the storage edge and back, older rows keep loading, and a row
it may not hold is refused naming the column."""

import dataclasses
import json

import pytest

from experiments import store as st
from experiments.run_result import RunResult
from experiments.runner import record_failure
from experiments.spec import ExperimentSpec


def failed_run(store) -> RunResult:
    """A real row without training: a run its driver recorded as failed."""
    spec = ExperimentSpec(n_layers=1, d_model=16, n_heads=2, tokens=40 * 8 * 32, batch_size=8, context_length=32,
                          lr=1e-2, corpus_source="stdlib", vocab_size=512)
    return record_failure(spec, store=store, sweep="unit", error="worker lost")


def test_the_row_is_the_table_columns_in_order_and_reads_back_equal(tmp_path):
    row = failed_run(tmp_path)
    assert RunResult.columns() == st.ROW_COLUMNS == tuple(row.to_row())
    stored = (st.run_dir(tmp_path, row.run_id) / st.ROW).read_bytes()
    st.write_json(tmp_path / "again.json", row.to_row())
    assert stored == (tmp_path / "again.json").read_bytes()  # row.json is to_row(), byte for byte
    assert RunResult.from_row(json.loads(stored)) == row == st.read_result(tmp_path, row.run_id)
    assert not row.success and row.role == "run"


def test_a_row_written_before_the_later_columns_existed_still_loads(tmp_path):
    old = failed_run(tmp_path).to_row()
    for column in ("passes", "seed", "beta2", "role", "trunk_id", "branch_tokens", "compute", "C_exact"):
        del old[column]
    loaded = RunResult.from_row(old)
    assert (loaded.passes, loaded.seed, loaded.compute, loaded.C_exact) == (None, None, None, None)
    assert loaded.role == "run"  # every run before WSD trunks and branches was an independent run


def test_a_row_it_may_not_hold_is_refused_naming_the_column(tmp_path):
    row = failed_run(tmp_path)
    with pytest.raises(ValueError, match=r"row.json: unknown column\(s\) \['tokens'\]"):
        RunResult.from_row({**row.to_row(), "tokens": 1}, where="row.json")
    with pytest.raises(ValueError, match="status: a run's row has one of"):
        dataclasses.replace(row, status="running")
    with pytest.raises(ValueError, match="role"):
        dataclasses.replace(row, role="leaf")
    with pytest.raises(ValueError, match="loss: nan is not finite"):
        dataclasses.replace(row, loss=float("nan"))
