"""WSD sweeps: trunks shared across budgets, branches linked to them, compute accounted exactly."""

import dataclasses
import json
import subprocess
import sys

import pytest

from experiments.wsd import branch_step
from sweeps.config import load_sweep
from sweeps.plan import plan
from sweeps.wsd import Branching


@pytest.fixture(scope="module")
def wsd_plan():
    return plan(load_sweep("tiny-wsd"))


def test_each_shared_size_trains_one_trunk_branched_per_budget(wsd_plan):
    b = wsd_plan.branching
    trunks = [r for r in wsd_plan.runs if r.spec.trunk]
    assert len(b.branches) == 9 and len(trunks) == len(b.trunks) == 5  # 3 budgets share 2 sizes pairwise
    assert sorted(len(steps) for steps in b.trunks.values()) == [1, 1, 2, 2, 3]
    for run in trunks:
        assert run.steps == b.trunk_steps[run.run_id] == max(b.trunks[run.run_id])
    for branch in b.branches.values():
        assert branch.branch_step == branch_step(branch) and branch.warmup_steps == 5
        assert (branch.cooldown_fraction, branch.cooldown_shape) == (0.2, "1-sqrt")


def test_flops_total_and_if_separate_are_sums_of_the_rows(wsd_plan):
    b, rows = wsd_plan.branching, wsd_plan.to_rows()
    totals = wsd_plan.to_dict()["totals"]
    assert totals["flops_total"] == pytest.approx(sum(r["flops"] for r in rows), rel=1e-12)
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
    assert f"5 trunks, 9 branches" in table and f"{ratio:.2f} of it" in table


def test_a_branch_whose_trunk_is_not_in_the_sweep_is_refused_naming_it(wsd_plan):
    b = wsd_plan.branching
    some_trunk = next(iter(b.trunks))
    with pytest.raises(ValueError, match=r"branches\[.*\]\.trunk_id"):
        Branching(trunks={k: v for k, v in b.trunks.items() if k != some_trunk}, trunk_steps=b.trunk_steps,
                  branches=b.branches, flops_share=b.flops_share, flops_separate=b.flops_separate)


def test_adding_a_budget_within_trunk_tokens_keeps_every_existing_id():
    base = load_sweep("tiny-wsd")
    roomy = dataclasses.replace(base, wsd=dataclasses.replace(base.wsd, trunk_tokens=400_000))
    wider = dataclasses.replace(roomy, isoflop=dataclasses.replace(base.isoflop, budgets=(*base.isoflop.budgets, 7.4e10)))
    before, after = set(plan(roomy).run_ids), set(plan(wider).run_ids)
    assert before < after
