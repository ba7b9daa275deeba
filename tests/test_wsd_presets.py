"""The shipped WSD presets: sizes on one shared lattice, each size serving several budgets, at most 0.6 of the
FLOPs of the same runs trained alone, and the cosine preset's question otherwise unchanged."""

import dataclasses
import math
from collections import Counter

import pytest

from experiments.wsd import line_of
from sweeps.config import load_sweep
from sweeps.plan import plan
from sweeps.size_lattice import shared_targets

WSD_PRESETS = {"demo-wsd": "demo", "cpu-large-wsd": "cpu-large"}  # each against the cosine preset it answers


def test_shared_targets_lie_on_one_lattice_around_each_optimum():
    step = 2 * math.log(3) / 4  # span 3, 5 sizes: the ordinary targets' step, √3
    for n_opt in (2.9e4, 3.6e4, 4.6e4, 9.1e4):
        targets = shared_targets(n_opt, span=3, count=5)
        ks = [math.log(t) / step for t in targets]
        assert all(abs(k - round(k)) < 1e-9 for k in ks)  # points of the lattice exp(k·step)
        assert [round(k) for k in ks] == list(range(round(ks[0]), round(ks[0]) + 5))  # consecutive ones
        assert abs(math.log(targets[2] / n_opt)) <= step / 2 + 1e-12  # the window moves by at most half a step
    near = shared_targets(3.0e4, span=3, count=5), shared_targets(3.3e4, span=3, count=5)
    assert near[0] == near[1]  # close optima take the very same sizes
    even = shared_targets(5e4, span=2.95, count=6)
    assert math.log(even[0]) < math.log(5e4) < math.log(even[-1]) and len(even) == 6


@pytest.mark.parametrize("name", WSD_PRESETS)
def test_a_wsd_preset_spends_at_most_six_tenths_of_separate_runs(name):
    result = plan(load_sweep(name))
    totals = result.to_dict()["totals"]
    assert totals["flops_total"] <= 0.6 * totals["flops_if_separate"]  # the target
    lines = Counter(line_of(b) for b in result.branching.branches.values())
    shared = sum(n for n in lines.values() if n >= 3)
    assert shared >= 0.7 * len(result.branching.branches)  # most branches share a line with two or more others


@pytest.mark.parametrize("name", WSD_PRESETS)
def test_a_wsd_preset_asks_its_cosine_preset_s_question(name):
    wsd, cosine = load_sweep(name), load_sweep(WSD_PRESETS[name])
    assert (wsd.corpus, wsd.family, wsd.n_convention, wsd.compute) == (cosine.corpus, cosine.family,
                                                                     cosine.n_convention, cosine.compute)
    keep = ("cooldown", "schedule", "warmup_fraction")  # what a WSD schedule changes
    assert dataclasses.replace(wsd.training, **{k: getattr(cosine.training, k) for k in keep}) == cosine.training
    assert (wsd.training.cooldown.fraction, wsd.training.cooldown.shape) == (0.2, "1-sqrt")  # Hägele et al. 2024
    iso, base = wsd.isoflop, cosine.isoflop
    assert (min(iso.budgets), max(iso.budgets)) == (min(base.budgets), max(base.budgets)) and iso.shared_sizes
    assert (iso.sizes_per_budget, iso.span, iso.center) == (base.sizes_per_budget, base.span, base.center)
    assert (wsd.validation, wsd.resources, wsd.planning) == (cosine.validation, cosine.resources, cosine.planning)


def test_demo_wsd_costs_about_the_demo_with_five_sizes_per_budget():
    wsd, demo = plan(load_sweep("demo-wsd")), plan(load_sweep("demo"))
    assert wsd.total_flops <= 1.05 * demo.total_flops
    sizes = Counter(b.budget for b in wsd.branching.branches.values())
    assert set(sizes.values()) == {5} and len(sizes) == 6


def test_adding_a_budget_to_a_shared_lattice_keeps_every_existing_run():
    config = load_sweep("demo-wsd")
    old = plan(config)
    wider = dataclasses.replace(config, isoflop=dataclasses.replace(config.isoflop,
                                                                    budgets=(*config.isoflop.budgets, 1.6e12)))
    new = plan(wider)
    assert set(old.run_ids) < set(new.run_ids)
