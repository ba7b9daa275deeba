"""WSD sweeps: trunks shared across budgets, branches linked to them, compute accounted exactly."""

import dataclasses
import json
import subprocess
import sys

import pytest

from experiments.wsd import branch_step, line_of
from lm.accounting import training_flops_per_token
from sweeps.config import SweepConfigError, load_sweep, parse_sweep
from sweeps.plan import plan
from sweeps.wsd import Branching


@pytest.fixture(scope="module")
def wsd_plan():
    return plan(load_sweep("tiny-wsd"))


def test_each_shared_size_trains_one_line_of_trunks_branched_per_budget(wsd_plan):
    b = wsd_plan.branching
    trunks = [r for r in wsd_plan.runs if r.spec.trunk]
    assert len(b.branches) == 9 and len(trunks) == len(b.trunks) == 9  # a trunk per branch step
    lines = {}
    for trunk in b.trunks.values():
        lines.setdefault(line_of(trunk), []).append(trunk.steps)
    assert sorted(len(v) for v in lines.values()) == [1, 1, 2, 2, 3]  # 3 budgets share 2 of 3 sizes pairwise
    for run in trunks:  # each trunk starts from the one before it in its line, and is charged its own part
        steps = sorted(lines[line_of(run.spec)])
        before = [s for s in steps if s < run.steps]
        assert b.starts.get(run.run_id, (None, None))[1] == (before[-1] if before else None)
        per_step = run.spec.tokens_per_step * training_flops_per_token(run.spec.model_config())
        assert run.flops == pytest.approx((run.steps - (before[-1] if before else 0)) * per_step, rel=1e-12)
    for branch in b.branches.values():
        assert branch.branch_step == branch_step(branch) and branch.warmup_steps == 5
        assert (branch.cooldown_fraction, branch.cooldown_shape) == (0.2, "1-sqrt")
        assert b.starts[branch.run_id] == (branch.trunk_id, branch.branch_step)


def test_flops_total_and_if_separate_are_sums_of_the_rows(wsd_plan):
    b, rows = wsd_plan.branching, wsd_plan.to_rows()
    totals = wsd_plan.to_dict()["totals"]
    assert totals["flops_total"] == pytest.approx(sum(r["flops_exact"] for r in rows), rel=1e-12)
    assert totals["flops_total"] == pytest.approx(sum(r["flops_share"] for r in rows if r["role"] == "branch"),
                                                  rel=1e-12)  # the shares add up to what is spent
    independent = plan(dataclasses.replace(load_sweep("tiny-wsd"), wsd=None))  # the same points on their own
    assert totals["flops_if_separate"] == pytest.approx(independent.total_flops, rel=1e-12)
    assert sorted((r.N, r.D) for r in independent.runs) == sorted((s.n, s.tokens) for s in b.branches.values())
    assert totals["flops_total"] < 0.85 * totals["flops_if_separate"]


def test_plan_json_and_table_report_the_saving():
    out = subprocess.run([sys.executable, "-m", "scaling", "sweep", "plan", "tiny-wsd", "--json"],
                         capture_output=True, text=True, check=True)
    totals = json.loads(out.stdout)["totals"]
    ratio = totals["flops_total"] / totals["flops_if_separate"]
    table = subprocess.run([sys.executable, "-m", "scaling", "sweep", "plan", "tiny-wsd"],
                           capture_output=True, text=True, check=True).stdout
    assert "9 trunks, 9 branches" in table and f"{ratio:.2f} of it" in table


def test_a_branch_whose_trunk_is_not_in_the_sweep_is_refused_naming_it(wsd_plan):
    b = wsd_plan.branching
    branch = next(iter(b.branches.values()))
    with pytest.raises(ValueError, match=r"branches\[.*\]\.trunk_id"):
        Branching(trunks={k: v for k, v in b.trunks.items() if k != branch.trunk_id}, branches=b.branches,
                  starts=b.starts, flops_share=b.flops_share, flops_separate=b.flops_separate)


def test_a_branch_point_beyond_the_trunks_limit_names_the_key():
    base = load_sweep("tiny-wsd")
    with pytest.raises(SweepConfigError, match="wsd.trunk_tokens"):
        plan(dataclasses.replace(base, wsd=dataclasses.replace(base.wsd, trunk_tokens=100_000)))


def test_adding_a_budget_keeps_every_existing_id_and_adds_trunks_that_start_from_old_ones():
    base = load_sweep("tiny-wsd")
    budgets = (*base.isoflop.budgets, 5.0625e10 * 2.25)
    wider = dataclasses.replace(base, isoflop=dataclasses.replace(base.isoflop, budgets=budgets))
    before, after = plan(base), plan(wider)
    assert set(before.run_ids) < set(after.run_ids)
    new_trunks = set(after.branching.trunks) - set(before.branching.trunks)
    assert any(after.branching.starts.get(t, (None,))[0] in before.branching.trunks for t in new_trunks)


def test_a_grid_sweep_trains_one_line_per_size_with_a_branch_per_token_count():
    """Grid sweeps over (N, D) share trunks the same way: one line per size, a branch at every D."""
    grid_file = {
        "name": "grid-wsd", "kind": "grid", "family": {"depth": 2, "head_size": 4},
        "corpus": {"source": "stdlib", "vocab_size": 257, "max_bytes": 300_000},
        "training": {"context_length": 64, "batch_size": 16, "lr": 1.0e-2, "schedule": "wsd",
                     "cooldown": {"fraction": 0.2, "shape": "1-sqrt"}, "eval_tokens": 4096},
        "grid": {"N": [2.0e4, 4.0e4], "D": [204_800, 409_600, 819_200]},
        "wsd": {"warmup_tokens": 5120},
    }
    grid_plan = plan(parse_sweep(grid_file))
    b = grid_plan.branching
    assert len(b.branches) == 6 and len(b.trunks) == 6  # 2 sizes × 3 token counts, a trunk per branch step
    lines = {}
    for branch in b.branches.values():
        lines.setdefault(line_of(branch), set()).add(branch.tokens)
    assert sorted(len(v) for v in lines.values()) == [3, 3]  # each size: one line, branched at all three D
    totals = grid_plan.to_dict()["totals"]
    assert totals["flops_total"] < 0.75 * totals["flops_if_separate"]
