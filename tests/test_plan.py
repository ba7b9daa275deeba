"""Planning: IsoFLOP runs hit their budgets in whole steps, extending a sweep keeps old run ids, axes multiply
cells, and the estimates are the accounting module's numbers."""

import copy
import json
import math

import pytest

from lm.accounting import param_counts, training_flops_per_token, training_memory
from sweeps.config import SweepConfigError, parse_sweep
from sweeps.plan import DEFAULT_FLOPS_PER_SECOND, plan

FINE = {"depth": 2, "head_size": 4}  # a family with fine enough widths for these 10^4-10^5-parameter sweeps
ISOFLOP = {
    "name": "unit", "kind": "isoflop", "family": FINE,
    "corpus": {"source": "stdlib", "vocab_size": 257, "max_bytes": 1_000_000},
    "training": {"context_length": 64, "batch_size": 16, "lr": 1e-2, "eval_tokens": 4096, "precision": "fp32"},
    "isoflop": {"budgets": [1e11, 3e11], "sizes_per_budget": 5, "span": 3},
    "resources": {"gpus_per_run": 0},
}
GRID = {
    "name": "unit-grid", "kind": "grid", "family": FINE,
    "corpus": {"source": "stdlib", "vocab_size": 257},
    "training": {"context_length": 64, "batch_size": 16, "lr": [3e-3, 1e-2], "eval_tokens": 4096},
    "grid": {"N": [1e4, 3e4], "tokens_per_param": [20, 80]},
    "planning": {"device": "cpu"},
}


def config(base=ISOFLOP, **changes):
    """A copy of `base` with dotted-key changes, e.g. config(**{"isoflop.span": 2})."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    return parse_sweep(data)


def test_every_isoflop_run_is_within_one_percent_of_its_budget_in_whole_steps():
    result = plan(config())
    assert len(result.runs) == 10
    for run in result.runs:
        spec = run.spec
        assert run.N == param_counts(spec.model_config()).with_head == spec.n  # the real shape's N
        assert run.D == spec.tokens and run.D % (16 * 64) == 0 and run.steps >= 100
        assert spec.compute == "exact"  # the default: budgets count exact FLOPs, attention and head included
        assert abs(run.flops - spec.budget) <= 0.01 * spec.budget
        assert run.C == run.flops == run.D * training_flops_per_token(spec.model_config(), "exact")


def test_a_6n_sweep_plans_6nd_budgets_and_its_runs_are_others():
    """compute: 6N sizes D by 6·N under the sweep's n_convention: D is larger than under exact (the head and
    attention make exact compute larger), so the runs and their ids differ."""
    exact, six = plan(config()), plan(config(compute="6N"))
    for run in six.runs:
        assert run.spec.compute == "6N" and abs(6 * run.N * run.D - run.spec.budget) <= 0.01 * run.spec.budget
        assert run.C == 6 * run.N * run.D < run.flops
    assert [r.N for r in exact.runs] == [r.N for r in six.runs]  # the same shapes
    assert all(a.D < b.D for a, b in zip(exact.runs, six.runs))
    assert set(exact.run_ids).isdisjoint(six.run_ids)


def test_isoflop_sizes_are_log_spaced_around_the_chinchilla_optimum():
    result = plan(config())
    for C in (1e11, 3e11):
        sizes = sorted(r.N for r in result.runs if r.spec.budget == C)
        n_opt = math.sqrt(C / (6 * 20))
        assert len(sizes) == 5
        assert sizes[0] == pytest.approx(n_opt / 3, rel=0.1) and sizes[-1] == pytest.approx(n_opt * 3, rel=0.1)
        assert math.sqrt(sizes[0] * sizes[-1]) == pytest.approx(n_opt, rel=0.1)
        ratios = [b / a for a, b in zip(sizes, sizes[1:])]
        assert all(ratio == pytest.approx(math.sqrt(3), rel=0.15) for ratio in ratios)


def test_the_sizing_convention_changes_n_and_hence_d():
    with_head = plan(config())
    other = plan(config(n_convention="non_embedding"))
    assert all(r.spec.n_convention == "non_embedding" for r in other.runs)
    assert all(r.N == param_counts(r.spec.model_config()).non_embedding for r in other.runs)
    assert all(abs(r.flops - r.spec.budget) <= 0.01 * r.spec.budget for r in other.runs)
    six = plan(config(n_convention="non_embedding", compute="6N"))  # 6N counts the sweep's N
    assert all(abs(6 * r.N * r.D - r.spec.budget) <= 0.01 * r.spec.budget for r in six.runs)
    assert {r.run_id for r in with_head.runs}.isdisjoint(r.run_id for r in other.runs)


def test_adding_budgets_keeps_the_old_runs_unchanged():
    old = plan(config())
    new = plan(config(**{"isoflop.budgets": [1e11, 3e11, 1e12]}))
    old_specs = {r.run_id: r.spec for r in old.runs}
    new_specs = {r.run_id: r.spec for r in new.runs}
    assert set(old_specs) < set(new_specs) and len(new_specs) == 15
    assert all(new_specs[i] == s for i, s in old_specs.items())


def test_extending_a_log_range_reproduces_the_shared_budgets_exactly():
    old = plan(config(**{"isoflop.budgets": {"log_range": [1e11, 1e12], "num": 3}}))
    new = plan(config(**{"isoflop.budgets": {"log_range": [1e11, 1e13], "num": 5}}))
    assert set(old.run_ids) < set(new.run_ids)


def test_adding_sizes_between_the_old_ones_keeps_the_old_runs():
    old = plan(config(**{"isoflop.sizes_per_budget": 3}))
    new = plan(config(**{"isoflop.sizes_per_budget": 5}))
    assert set(old.run_ids) < set(new.run_ids)
    grid_old = plan(config(GRID))
    grid_new = plan(config(GRID, **{"grid.N": [1e4, 3e4, 1e5], "grid.tokens_per_param": [20, 80, 320]}))
    assert set(grid_old.run_ids) < set(grid_new.run_ids)


def test_lr_and_batch_axes_multiply_every_cell_and_each_batch_rounds_its_own_d():
    result = plan(config(**{"training.lr": [3e-3, 1e-2], "training.batch_size": [8, 16]}))
    assert len(result.runs) == 2 * 5 * 2 * 2
    for run in result.runs:
        assert run.D % (run.spec.batch_size * 64) == 0
        assert abs(run.flops - run.spec.budget) <= 0.01 * run.spec.budget
    cells = {(r.spec.budget, r.N) for r in result.runs}
    assert all({(r.spec.lr, r.spec.batch_size) for r in result.runs if (r.spec.budget, r.N) == cell}
               == {(3e-3, 8), (3e-3, 16), (1e-2, 8), (1e-2, 16)} for cell in cells)


def test_an_lr_rule_in_n_gives_each_size_its_own_rounded_rate():
    result = plan(config(**{"training.lr": {"rule": "power", "k": 0.5, "p": -0.35, "of": "N"}}))
    for run in result.runs:
        assert run.spec.lr == float(f"{0.5 * run.N ** -0.35:.6g}")
    assert len({r.spec.lr for r in result.runs}) == len({r.N for r in result.runs})


def test_a_smaller_aspect_builds_deeper_shapes_of_the_same_sizes():
    """family.aspect (d_model per layer) sets the depth: at 3.6e5 parameters (vocab 257, with the head) an aspect
    of 64 gives 2 layers and 24 gives 4, both of 8-dim heads."""
    at = {"isoflop.budgets": [8e12], "isoflop.sizes_per_budget": 1, "isoflop.center": {"k": 6.5e-3, "p": 0.6}}
    (a,) = plan(config(family={"aspect": 24, "head_size": 8}, **at)).runs
    (b,) = plan(config(family={"aspect": 64, "head_size": 8}, **at)).runs
    assert (b.spec.n_layers, b.spec.d_model) == (2, 120) and (a.spec.n_layers, a.spec.d_model) == (4, 80)
    assert a.spec.d_model // a.spec.n_heads == b.spec.d_model // b.spec.n_heads == 8
    assert a.N == pytest.approx(b.N, rel=0.15)  # whole 8-dim heads: each the family member nearest 3.6e5


def test_grid_runs_have_no_budget_and_d_follows_tokens_per_param():
    result = plan(config(GRID))
    assert len(result.runs) == 2 * 2 * 2
    for run in result.runs:
        assert run.spec.budget is None and run.D % 1024 == 0
        assert run.D / run.N == pytest.approx(20, rel=0.02) or run.D / run.N == pytest.approx(80, rel=0.02)


def test_grid_with_explicit_shapes_and_token_counts():
    shapes = [{"n_layers": 2, "d_model": 32, "n_heads": 2}, {"n_layers": 3, "d_model": 48, "n_heads": 4}]
    result = plan(config(GRID, **{"grid": {"shapes": shapes, "D": [2e5]}, "training.lr": 1e-2}))
    assert [(r.spec.n_layers, r.spec.d_model, r.spec.n_heads) for r in result.runs] == [(2, 32, 2), (3, 48, 4)]
    assert all(r.D == round(2e5 / 1024) * 1024 and r.n_target is None for r in result.runs)


def test_targets_on_one_shape_are_planned_once():
    result = plan(config(GRID, **{"grid.N": [3e4, 3.0001e4]}))
    assert len(result.runs) == len(set(result.run_ids)) == 2 * 2


def test_estimates_come_from_the_accounting_module_and_the_stated_throughput():
    result = plan(config(), flops_per_second=2e10, step_overhead_seconds=0.0)
    assert result.flops_per_second == 2e10 and result.device_kind == "cpu"
    for run in result.runs:
        model = run.spec.model_config()
        assert run.flops == run.D * training_flops_per_token(model)
        assert run.memory_bytes == training_memory(model, batch_size=16, precision="fp32").total
        assert run.flops / 2e10 + 1.0 < run.est_seconds < run.flops / 2e10 * 1.2 + 1.0  # + evaluation, + overhead
    assert result.serial_seconds == pytest.approx(sum(r.est_seconds for r in result.runs))
    assert result.total_flops == pytest.approx(sum(r.flops for r in result.runs))
    default = plan(config())
    assert default.flops_per_second == DEFAULT_FLOPS_PER_SECOND["cpu"]


def test_plan_rows_and_json_describe_every_run():
    result = plan(config())
    rows = result.to_rows()
    assert [r["run_id"] for r in rows] == result.run_ids
    assert {"run_id", "budget", "compute", "N", "D", "C", "flops_exact", "n_layers", "d_model", "n_heads", "lr",
            "batch_size", "memory_bytes", "est_seconds"} <= set(rows[0])
    data = json.loads(result.to_json())
    assert data["totals"]["runs"] == 10 and data["totals"]["flops"] == pytest.approx(result.total_flops)
    assert data["name"] == "unit" and data["kind"] == "isoflop"


def test_a_cell_too_small_to_round_is_an_error_naming_the_budget():
    with pytest.raises(SweepConfigError, match=r"isoflop.budgets\[0\].*min_steps"):
        plan(config(**{"isoflop.budgets": [2e10, 3e11], "isoflop.span": 1.5, "training.batch_size": 64}))
    with pytest.raises(SweepConfigError, match=r"isoflop.budgets.*1%"):  # ~6 steps: rounding misses by > 1%
        plan(config(**{"planning": {"min_steps": 1}, "isoflop.budgets": [1e10], "isoflop.span": 1.2,
                       "training.batch_size": 512}))
