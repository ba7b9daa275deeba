"""WSD sweeps on a real local Ray: runs wait for the trunk checkpoint they start from, a killed trunk
resumes, every trunk and branch is trained once, an extension trains only new runs, a relaunch nothing."""

import dataclasses
import os
import signal
import threading

import pytest

from analysis.table import ExcludedRunsWarning, read_table
from experiments import store as st
from experiments.wsd import final_checkpoint
from sweeps.config import load_sweep
from sweeps.launch import launch
from sweeps.plan import plan
from sweep_helpers import wait_for

DIVERGING = """
name: diverging
kind: isoflop
corpus: {source: stdlib, vocab_size: 257, max_bytes: 300000}
training: {context_length: 64, batch_size: 16, lr: 50.0, grad_clip: 0, precision: fp32, eval_tokens: 4096,
           schedule: wsd, cooldown: {fraction: 0.2, shape: linear}}
isoflop: {budgets: [6.5e9, 1.4625e10], sizes_per_budget: 1, span: 1.5, center: {tokens_per_param: 6}}
wsd: {warmup_tokens: 0}
resources: {cpus_per_run: 1, gpus_per_run: 0}
planning: {device: cpu, min_steps: 50}
"""


def test_a_killed_trunk_resumes_each_run_trains_once_and_an_extension_trains_only_new_runs(local_ray, tmp_path):
    full = load_sweep("tiny-wsd")
    config = dataclasses.replace(full, isoflop=dataclasses.replace(full.isoflop, budgets=full.isoflop.budgets[:2]))
    planned = plan(config)
    reports = []
    seen = []
    thread = threading.Thread(target=lambda: reports.append(
        launch(config, store=tmp_path, poll_seconds=0.2, on_progress=lambda p: seen.append((p.trunks_done,
                                                                                            p.trunks_planned)))))
    thread.start()

    def trunk_training_with_checkpoint():
        for run_id in planned.branching.trunks:
            status = st.read_status(tmp_path, run_id) or {}
            if (st.run_dir(tmp_path, run_id) / "checkpoint.pt").exists() and status.get("status") == "running":
                return run_id, status["pid"]
        return None

    victim, pid = wait_for(trunk_training_with_checkpoint)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive() and reports[0].retries >= 1
    assert seen[0] == (0, len(planned.branching.trunks)) and seen[-1] == (len(planned.branching.trunks),) * 2
    rows = {run_id: st.read_row(tmp_path, run_id) for run_id in planned.run_ids}
    assert all(row["status"] == "completed" for row in rows.values())
    assert rows[victim]["attempts"] == 2 and rows[victim]["resumed_from_step"] > 0
    for run_id, (source, step) in planned.branching.starts.items():  # started off the trunk before it, once
        assert rows[run_id]["resumed_from_step"] == step and final_checkpoint(tmp_path, source, step).exists()
    assert all(rows[b]["attempts"] == 1 for b in planned.branching.branches)
    with pytest.warns(ExcludedRunsWarning, match="WSD trunk"):
        table = read_table(tmp_path)
    assert sorted(table["run_id"]) == sorted(planned.branching.branches)

    extended = launch(full, store=tmp_path, poll_seconds=0.2)
    new = set(plan(full).run_ids) - set(planned.run_ids)
    assert {r.run_id for r in extended.rows} == new and extended.already_done == len(planned.runs)
    assert any(st.read_row(tmp_path, t)["resumed_from_step"] for t in new & set(plan(full).branching.trunks))
    again = launch(full, store=tmp_path)
    assert again.rows == () and "nothing to train" in again.message


def test_the_branches_of_a_diverged_trunk_are_recorded_failed_naming_it(local_ray, tmp_path):
    path = tmp_path / "diverging.yaml"
    path.write_text(DIVERGING)
    config = load_sweep(path)
    planned = plan(config)
    report = launch(config, store=tmp_path, poll_seconds=0.2)
    assert report.count("diverged") == len(planned.branching.trunks) >= 1
    for branch in planned.branching.branches.values():
        row = st.read_row(tmp_path, branch.run_id)
        assert row["status"] == "failed" and branch.trunk_id in row["error"] and "diverged" in row["error"]
