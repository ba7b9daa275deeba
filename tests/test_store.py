"""The run store: what run_experiment writes is exactly what analysis reads; failures are recorded, not
raised; interrupted runs resume; names never escape the store; every write is atomic."""

import csv
import json
import math
import os

import pytest

from analysis.table import COLUMNS, ExcludedRunsWarning, read_curves, read_table
from experiments import provenance, store as st
from experiments.runner import record_failure, run_experiment
from experiments.spec import ExperimentSpec
from lm import checkpoint

RUN = dict(threads=1, device="cpu", peak_flops=1e11)  # one thread: tiny models slow down when cores are shared


def tiny_spec(**overrides) -> ExperimentSpec:
    """40 steps of a 1-layer, width-16 model on the session corpus (tests/conftest.py)."""
    fields = dict(n_layers=1, d_model=16, n_heads=2, tokens=40 * 8 * 32, batch_size=8, context_length=32, lr=1e-2,
                  eval_tokens=1024, corpus_source="stdlib", vocab_size=512, corpus_max_bytes=400_000)
    fields.update(overrides)
    return ExperimentSpec(**fields)


@pytest.fixture(scope="module")
def runs(stdlib_corpus, tmp_path_factory):
    """A store holding one completed, one diverged and one failed run."""
    store = tmp_path_factory.mktemp("store")
    too_long = stdlib_corpus.val.size + 10  # a window longer than the validation split: a data error
    specs = {
        "completed": tiny_spec(),
        "diverged": tiny_spec(lr=50.0, grad_clip=0.0, schedule="constant", warmup_fraction=0.0),
        "failed": tiny_spec(context_length=too_long, batch_size=1, tokens=too_long),
    }
    rows = {k: run_experiment(s, store=store, corpus_path=stdlib_corpus.path, sweep="unit", **RUN) for k, s in specs.items()}
    return store, specs, rows


def test_what_the_store_writes_is_exactly_what_analysis_reads(runs):
    store, specs, rows = runs
    with pytest.warns(ExcludedRunsWarning) as caught:
        table = read_table(store)
    message = str(caught[0].message)
    assert specs["diverged"].run_id in message and specs["failed"].run_id in message
    assert set(COLUMNS) <= set(st.ROW_COLUMNS)  # every column analysis knows is written
    assert list(table.columns) == list(st.ROW_COLUMNS)  # and nothing else appears
    assert len(table) == 1
    read_back = table.iloc[0].to_dict()
    written = json.loads((store / "runs" / specs["completed"].run_id / "row.json").read_text())
    assert written == rows["completed"].to_row()
    for column in st.ROW_COLUMNS:
        value, expected = read_back[column], written[column]
        if expected is None:
            assert value is None or (isinstance(value, float) and math.isnan(value)), column
        elif isinstance(expected, float):
            assert value == pytest.approx(expected, rel=1e-12), column
        else:
            assert value == expected, column


def test_curves_read_by_analysis_are_the_run_curve(runs, stdlib_corpus):
    store, specs, rows = runs
    with pytest.warns(ExcludedRunsWarning):
        curves = read_curves(store)
    run_id = specs["completed"].run_id
    with open(store / "runs" / run_id / "curve.csv") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == list(st.CURVE_COLUMNS)
    assert len(curves) == len(written) == 40 and set(curves["run_id"]) == {run_id}
    assert curves["tokens"].iloc[-1] == rows["completed"].D == 40 * 8 * 32
    assert sum(1 for r in written if r["val_loss"]) == curves["val_loss"].notna().sum() >= 2


def test_completed_row_reports_the_paper_symbols(runs):
    store, specs, rows = runs
    row, spec = rows["completed"], specs["completed"]
    counts = spec.param_counts()
    assert row.status == "completed" and row.sweep == "unit" and row.error is None
    assert row.N == counts.with_head and row.n_convention == "with_head"
    assert (row.N_total, row.N_embedding, row.N_head, row.N_blocks, row.N_norms) == (
        counts.total, counts.embedding, counts.head, counts.blocks, counts.norms)
    assert row.compute == "exact" and row.C == row.C_exact == row.flops  # the spec's default convention
    assert row.C_6N_with_head == 6 * row.N * row.D
    assert row.C_6N_total == 6 * counts.total * row.D and row.C_6N_non_embedding == 6 * (
        counts.blocks + counts.norms) * row.D
    assert row.flops > row.C_6N_with_head  # the exact count adds attention's QK^T and AV
    assert 0 < row.loss < math.log(512) and row.train_loss > 0
    assert (row.attempts, row.resumed_from_step, row.budget) == (1, None, None)


def test_each_run_folder_is_self_describing(runs):
    store, specs, _ = runs
    folder = store / "runs" / specs["completed"].run_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [st.SPEC, st.STATUS, st.PROVENANCE, st.CURVE, st.RESULT, st.ROW])  # checkpoint deleted once done
    assert st.read_spec(store, specs["completed"].run_id) == specs["completed"]
    assert json.loads((folder / st.SPEC).read_text())["run_id"] == specs["completed"].run_id
    prov = json.loads((folder / st.PROVENANCE).read_text())
    assert {"git_sha", "git_dirty", "packages", "python", "hostname"} <= set(prov)
    assert set(prov["packages"]) == {"torch", "numpy", "ray", "scaling-lab"} and prov["packages"]["torch"]
    result = json.loads((folder / st.RESULT).read_text())
    assert "curve" not in result and result["status"] == "completed" and result["steps"] == 40
    status = json.loads((folder / st.STATUS).read_text())
    assert (status["status"], status["attempts"], status["resumed_from_step"]) == ("completed", 1, [])
    assert status["pid"] == os.getpid() and status["host"] and status["finished_at"]


def test_failures_are_recorded_with_status_and_error_not_raised(runs):
    store, specs, rows = runs
    diverged, failed = rows["diverged"], rows["failed"]
    assert diverged.status == "diverged" and diverged.loss is None and "step" in diverged.error
    assert diverged.D < specs["diverged"].tokens
    assert failed.status == "failed" and "context_length" in failed.error and "CorpusError" in failed.error
    assert failed.D is None and failed.loss is None and failed.N == specs["failed"].n
    for kind, spec in specs.items():
        assert st.is_done(store, spec.run_id) and st.run_state(store, spec.run_id) == kind
    assert "Traceback" in st.read_status(store, specs["failed"].run_id)["traceback"]
    assert st.run_states(store) == {s.run_id: k for k, s in specs.items()}
    assert [r["run_id"] for r in st.read_rows(store)] == sorted(s.run_id for s in specs.values())


def test_a_done_run_is_returned_from_the_store_not_retrained(runs, stdlib_corpus):
    store, specs, rows = runs
    again = run_experiment(specs["completed"], store=store, corpus_path=stdlib_corpus.path, sweep="other", **RUN)
    assert again == rows["completed"]
    assert st.read_status(store, specs["completed"].run_id)["attempts"] == 1


def test_a_failed_run_is_tried_again_as_a_new_attempt(stdlib_corpus, tmp_path):
    too_long = stdlib_corpus.val.size + 10
    spec = tiny_spec(context_length=too_long, batch_size=1, tokens=too_long)
    for attempt in (1, 2):
        row = run_experiment(spec, store=tmp_path, corpus_path=stdlib_corpus.path, sweep="unit", **RUN)
        assert (row.status, row.attempts) == ("failed", attempt)


def test_keyboard_interrupt_propagates_and_the_run_resumes_to_the_same_loss(runs, stdlib_corpus, tmp_path):
    spec = runs[1]["completed"]

    def interrupt_at_step_25(point, total):
        if point.step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, store=tmp_path, corpus_path=stdlib_corpus.path, sweep="unit", checkpoint_every=10,
                       on_progress=interrupt_at_step_25, **RUN)
    assert st.run_state(tmp_path, spec.run_id) == "interrupted" and not st.is_done(tmp_path, spec.run_id)
    assert (st.run_dir(tmp_path, spec.run_id) / checkpoint.FILENAME).exists()
    row = run_experiment(spec, store=tmp_path, corpus_path=stdlib_corpus.path, sweep="unit", **RUN)
    assert (row.status, row.attempts, row.resumed_from_step) == ("completed", 2, 20)
    assert st.read_status(tmp_path, spec.run_id)["resumed_from_step"] == [20]
    assert row.loss == runs[2]["completed"].loss  # bit for bit the uninterrupted run's loss


def test_stop_after_step_leaves_a_resumable_run_without_a_row(runs, stdlib_corpus, tmp_path):
    spec = runs[1]["completed"]
    row = run_experiment(spec, store=tmp_path, corpus_path=stdlib_corpus.path, sweep="unit", stop_after_step=15,
                         keep_checkpoint=True, **RUN)
    assert row.status == "interrupted" and st.read_row(tmp_path, spec.run_id) is None
    assert st.run_state(tmp_path, spec.run_id) == "interrupted"
    row = run_experiment(spec, store=tmp_path, corpus_path=stdlib_corpus.path, sweep="unit", keep_checkpoint=True, **RUN)
    assert (row.status, row.resumed_from_step) == ("completed", 15)
    assert (st.run_dir(tmp_path, spec.run_id) / checkpoint.FILENAME).exists()  # kept on request


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/abs", "", ".hidden", "x..y", "-flag", "a b", "x" * 129])
def test_names_that_could_escape_the_store_are_rejected(name, tmp_path):
    with pytest.raises(ValueError, match="not allowed"):
        st.check_name(name, "sweep name")
    with pytest.raises(ValueError, match="run id"):
        st.run_dir(tmp_path, name)


@pytest.mark.parametrize("name", ["demo", "a.b-c_1", "0f3a9c", "Sweep-2025.v2"])
def test_ordinary_names_are_accepted(name):
    assert st.check_name(name) == name


def test_a_bad_sweep_name_or_a_foreign_corpus_is_refused_before_writing(stdlib_corpus, tmp_path):
    with pytest.raises(ValueError, match="sweep name '../x'"):
        run_experiment(tiny_spec(), store=tmp_path / "s", corpus_path=stdlib_corpus.path, sweep="../x", **RUN)
    with pytest.raises(ValueError, match="CorpusConfig.*max_bytes"):
        run_experiment(tiny_spec(corpus_max_bytes=300_000), store=tmp_path / "s", corpus_path=stdlib_corpus.path,
                       sweep="unit", **RUN)
    assert not (tmp_path / "s").exists()


def test_writes_are_atomic_strict_json_and_leave_no_temporaries(tmp_path):
    path = tmp_path / "x.json"
    st.write_json(path, {"a": float("nan"), "b": [1.0, float("inf")], "c": "ok"})
    st.write_json(path, {"a": float("nan"), "b": [1.0, float("inf")], "c": "ok"})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": "ok"}
    path.write_text("{not json")
    with pytest.raises(ValueError, match="x.json"):
        st.read_json(path)


def test_a_tampered_spec_json_is_detected(runs, tmp_path):
    spec = tiny_spec()
    st.prepare_run(tmp_path, spec, sweep="unit")
    folder = st.run_dir(tmp_path, spec.run_id)
    data = json.loads((folder / st.SPEC).read_text())
    data["lr"] = 0.5
    (folder / st.SPEC).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not match"):
        st.read_spec(tmp_path, spec.run_id)
    assert st.run_state(tmp_path, spec.run_id) == "pending" and st.run_state(tmp_path, "0" * 16) is None


def test_sweep_manifest_records_the_runs_a_sweep_asked_for(tmp_path):
    st.write_manifest(tmp_path, "demo", ["a1", "b2"], source="sweeps/demo.yaml")
    assert st.read_manifest(tmp_path, "demo") == {"sweep": "demo", "run_ids": ["a1", "b2"], "source": "sweeps/demo.yaml"}
    with pytest.raises(ValueError, match="run id"):
        st.write_manifest(tmp_path, "demo", ["../etc"])


def test_provenance_is_null_where_git_cannot_answer(tmp_path, monkeypatch):
    assert provenance.git_state(tmp_path) == {"git_sha": None, "git_dirty": None}  # not a checkout
    monkeypatch.setenv("PATH", "")  # no git executable at all
    assert provenance.git_state() == {"git_sha": None, "git_dirty": None}


def test_status_json_shows_progress_while_a_run_trains(stdlib_corpus, tmp_path, monkeypatch):
    from experiments import runner

    monkeypatch.setattr(runner, "PROGRESS_SECONDS", 0.0)  # write at every curve point
    spec = tiny_spec()
    seen = []

    def look(point, total):  # called before the runner records `point`, so the store shows the one before
        seen.append((point.step, st.read_status(tmp_path, spec.run_id).get("step"), total))

    run_experiment(spec, store=tmp_path, corpus_path=stdlib_corpus.path, sweep="unit", stop_after_step=5,
                   on_progress=look, **RUN)
    assert seen == [(1, None, 40), (2, 1, 40), (3, 2, 40), (4, 3, 40), (5, 4, 40)]
    assert st.read_status(tmp_path, spec.run_id)["step"] == 5


def test_a_driver_can_record_a_run_lost_with_its_worker_as_failed(tmp_path):
    spec = tiny_spec()
    row = record_failure(spec, store=tmp_path, sweep="unit", error="worker died 3 times")
    assert tuple(row.to_row()) == st.ROW_COLUMNS and st.read_row(tmp_path, spec.run_id) == row.to_row()
    assert st.read_result(tmp_path, spec.run_id) == row
    assert (row.status, row.error, row.N, row.D) == ("failed", "worker died 3 times", spec.n, None)
    assert st.is_done(tmp_path, spec.run_id) and st.read_status(tmp_path, spec.run_id)["status"] == "failed"
