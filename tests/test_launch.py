"""Sweeps on a real local Ray: every run exactly once, relaunches train nothing, extensions train only what
is new, and a run whose worker is killed resumes from its checkpoint."""

import os
import signal
import threading

import pytest

from analysis.table import read_table
from experiments import store as st
from lm.data import prepare_corpus
from sweeps.config import load_sweep
from sweeps.launch import launch
from sweeps.plan import plan
from sweep_helpers import assert_every_run_completed_once, sweep_file, wait_for


def test_tiny_sweep_runs_end_to_end_and_a_relaunch_trains_nothing(local_ray, tmp_path):
    """Handed its plan and a corpus prepared elsewhere (as a study does), the launch trains on that corpus and
    prepares none of its own."""
    config = load_sweep("tiny")
    planned = plan(config)
    corpus = prepare_corpus(config.corpus.corpus_config(), cache_dir=tmp_path / "prepared")
    store = tmp_path / "store"
    report = launch(config, store=store, sweep_plan=planned, corpus=corpus)
    assert report.count("completed") == len(planned.runs)
    assert not (store / "corpora").exists()  # the runs opened the corpus they were handed
    table = read_table(store)
    assert sorted(table["run_id"]) == sorted(planned.run_ids)  # one row per planned run
    assert (table["loss"] > 0).all()

    again = launch(config, store=store)
    assert again.rows == () and again.already_done == len(planned.runs)
    assert "nothing to train" in again.message


def test_a_plan_or_corpus_of_another_sweep_is_refused_before_writing(stdlib_corpus, tmp_path):
    config = load_sweep("tiny")
    store = tmp_path / "store"
    other = plan(load_sweep(sweep_file(tmp_path, name="other")))
    with pytest.raises(ValueError, match="sweep_plan: a plan of sweep 'other', not of 'tiny'"):
        launch(config, store=store, sweep_plan=other)
    with pytest.raises(ValueError, match="prepared from a different CorpusConfig.*vocab_size"):
        launch(config, store=store, corpus=stdlib_corpus)  # the session corpus: another vocabulary
    assert not store.exists()


def test_an_extended_sweep_trains_only_the_new_runs(local_ray, tmp_path):
    first = launch(load_sweep(sweep_file(tmp_path, budgets="[6.5e9]")), store=tmp_path)
    extended = load_sweep(sweep_file(tmp_path, budgets="[6.5e9, 1.3e10]"))
    second = launch(extended, store=tmp_path)
    first_ids = {r.run_id for r in first.rows}
    second_ids = {r.run_id for r in second.rows}
    assert len(first_ids) == 2 and len(second_ids) == 2 and not first_ids & second_ids
    assert {r.budget for r in second.rows} == {1.3e10}
    assert set(st.run_ids(tmp_path)) == set(plan(extended).run_ids)


def test_a_killed_worker_resumes_from_its_checkpoint_and_no_run_is_duplicated(local_ray, tmp_path):
    config = load_sweep(sweep_file(tmp_path, budgets="[4.0e10]", sizes=2))
    reports = []
    thread = threading.Thread(target=lambda: reports.append(launch(config, store=tmp_path, poll_seconds=0.2)))
    thread.start()

    def training_with_checkpoint():
        for run_id in st.run_ids(tmp_path):
            status = st.read_status(tmp_path, run_id) or {}
            if (st.run_dir(tmp_path, run_id) / "checkpoint.pt").exists() and status.get("status") == "running":
                return run_id, status["pid"]
        return None

    victim, pid = wait_for(training_with_checkpoint)
    os.kill(pid, signal.SIGKILL)
    assert_every_run_completed_once(thread, reports, tmp_path, config)
    killed = st.read_row(tmp_path, victim)
    assert killed["attempts"] == 2
    assert killed["resumed_from_step"] is not None and killed["resumed_from_step"] > 0
