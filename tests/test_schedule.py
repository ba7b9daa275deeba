"""Scheduling decisions without Ray: what is pending, longest first, GPU fractions, concurrency, makespan."""

import subprocess
import sys
from pathlib import Path

import pytest

from experiments.spec import ExperimentSpec
from sweeps.config import load_sweep
from sweeps.plan import plan
from sweeps.schedule import (
    concurrency_cap, gpu_fraction, makespan_seconds, memory_estimate, order_longest_first, pending_runs, resources_for,
)

GiB = 2**30


def spec(seed: int = 0, **overrides) -> ExperimentSpec:
    fields = dict(n_layers=2, d_model=64, n_heads=4, tokens=100 * 16 * 64, batch_size=16, context_length=64, lr=1e-2,
                  vocab_size=257, seed=seed)
    fields.update(overrides)
    return ExperimentSpec(**fields)


def test_pending_skips_done_runs_and_keeps_partial_ones_in_plan_order():
    specs = [spec(i) for i in range(7)]
    states = {specs[0].run_id: "completed", specs[1].run_id: "diverged", specs[2].run_id: "failed",
              specs[3].run_id: "running", specs[4].run_id: "interrupted", specs[5].run_id: "pending"}
    assert pending_runs(specs, states) == specs[3:]  # specs[6] was never started
    assert pending_runs(specs, states, retry_failed=True) == [specs[2], *specs[3:]]
    assert pending_runs(specs + specs[3:5], {}) == specs  # each run once


def test_pending_takes_a_plan_and_an_empty_store_means_everything():
    tiny = plan(load_sweep("tiny"))
    assert pending_runs(tiny, {}) == tiny.specs
    assert pending_runs(tiny, {i: "completed" for i in tiny.run_ids}) == []


def test_longest_first_with_stable_ties_and_a_clear_error_for_a_missing_estimate():
    a, b, c, d = (spec(i) for i in range(4))
    est = {a.run_id: 5.0, b.run_id: 50.0, c.run_id: 5.0, d.run_id: 20.0}
    assert order_longest_first([a, b, c, d], est) == [b, d, a, c]
    with pytest.raises(KeyError, match=spec(9).run_id):
        order_longest_first([spec(9)], est)


@pytest.mark.parametrize("memory, fraction", [
    (0.0, 1 / 16), (0.01 * GiB, 1 / 16), (10 * GiB, 1 / 5), (20 * GiB, 1 / 2), (100 * GiB, 1.0), (32 * GiB, 1.0),
])
def test_gpu_fraction_is_the_memory_share_with_headroom_rounded_up_to_one_kth(memory, fraction):
    # 80 GiB GPU, safety 1.5: 10 GiB -> 0.1875 -> 1/5; 20 GiB -> 0.375 -> 1/2; 32 GiB -> 0.6 -> 1
    assert gpu_fraction(memory, 80 * GiB) == pytest.approx(fraction)
    assert gpu_fraction(memory, 80 * GiB) >= min(1.0, memory * 1.5 / (80 * GiB))


@pytest.mark.parametrize("k", range(1, 17))
def test_a_run_needing_exactly_one_kth_of_the_gpu_gets_one_kth(k):
    # memory·1.5/gpu lands a hair off 1/k for k = 3, 6, 12: float error must not cost a whole step of k
    assert gpu_fraction(80 * GiB / (1.5 * k), 80 * GiB) == pytest.approx(1 / k)


def test_small_runs_share_a_gpu_and_large_ones_get_it_alone():
    small, large = spec(), spec(n_layers=24, d_model=2048, n_heads=16, batch_size=64, context_length=2048,
                                tokens=64 * 2048 * 100, vocab_size=32768)
    small_r = resources_for(small, device_kind="gpu", gpu_memory_bytes=80 * GiB, cpus_per_run=2)
    large_r = resources_for(large, device_kind="gpu", gpu_memory_bytes=80 * GiB, cpus_per_run=2)
    assert small_r["num_gpus"] == pytest.approx(1 / 16) and large_r["num_gpus"] == 1.0
    assert small_r["num_cpus"] == 2 and set(small_r) == {"num_cpus", "num_gpus", "memory"}
    assert large_r["memory"] == int(12 * large.param_counts().total * 1.5)  # the checkpoint, staged on the host
    fixed = resources_for(large, device_kind="gpu", gpus_per_run=0.5)
    assert fixed["num_gpus"] == 0.5


def test_cpu_runs_ask_for_their_memory_estimate_and_no_gpu():
    r = resources_for(spec(), device_kind="cpu", cpus_per_run=1)
    assert r == {"num_cpus": 1, "num_gpus": 0, "memory": int(memory_estimate(spec(), device_kind="cpu") * 1.5)}
    assert memory_estimate(spec(), device_kind="gpu") < memory_estimate(spec(), device_kind="cpu")  # bf16 activations


def test_resource_requests_that_cannot_be_sized_are_errors():
    with pytest.raises(ValueError, match="gpu_memory_bytes"):
        resources_for(spec(), device_kind="gpu")
    with pytest.raises(ValueError, match="gpus_per_run"):
        resources_for(spec(), device_kind="gpu", gpus_per_run=2)
    with pytest.raises(ValueError, match="device_kind"):
        resources_for(spec(), device_kind="tpu")


def test_concurrency_is_whole_runs_per_cpu_capped_and_at_least_one():
    assert concurrency_cap(total_cpus=2, cpus_per_run=1) == 2
    assert concurrency_cap(total_cpus=16, cpus_per_run=4, max_concurrent=3) == 3
    assert concurrency_cap(total_cpus=2, cpus_per_run=4) == 1


def test_makespan_is_greedy_longest_first():
    assert makespan_seconds([2, 3, 2, 3, 2], slots=2) == 7  # LPT: {3, 2, 2} and {3, 2}; optimum is 6
    assert makespan_seconds([10, 1, 1, 1], slots=2) == 10
    assert makespan_seconds([4.0] * 6, slots=3) == 8.0
    assert makespan_seconds([], slots=4) == 0.0


def test_the_planning_and_scheduling_modules_never_import_ray():
    code = "import sys, sweeps.schedule, sweeps.plan, sweeps.config, experiments.runner; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "False"
