"""Shape families and compute conventions in plans: every preset's runs hit their budgets under the sweep's own
convention, and every size of a sweep is a member of its one family (depth never falling as N grows, one head
size, no one-layer models unless asked for)."""

import numpy as np
import pytest

from lm.accounting import compute_per_token, param_counts, training_flops_per_token
from lm.family import FamilyError, ShapeFamily
from sweeps.config import SweepConfigError, load_sweep
from sweeps.plan import plan

PRESETS = ["tiny", "tiny-wsd", "demo", "demo-wsd", "cpu-large", "cpu-large-wsd", "gpu", "cluster"]
SHAPE = dict(vocab_size=257, context_length=64, convention="with_head")


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_run_spends_its_budget_within_one_percent_under_its_convention(name):
    config = load_sweep(name)
    assert config.compute == "exact"  # every preset counts exact FLOPs (docs/methods.md)
    result = plan(config)
    whole = result.branching.flops_separate if result.branching else {}  # a WSD branch trains only its cooldown
    for run in (r for r in result.runs if not r.spec.trunk):  # a WSD trunk has no budget: its branches do
        model = run.spec.model_config()
        assert whole.get(run.run_id, run.flops) == run.D * training_flops_per_token(model, "exact")
        assert abs(run.D * compute_per_token(model, config.compute, config.n_convention) / run.spec.budget - 1) <= 0.01


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_plans_one_family_deepening_with_n(name):
    config = load_sweep(name)
    runs = sorted(plan(config).runs, key=lambda r: r.N)
    depths = [r.spec.n_layers for r in runs]
    assert depths == sorted(depths), [(r.N, r.spec.n_layers) for r in runs]
    assert {r.spec.d_model // r.spec.n_heads for r in runs} == {config.family.head_size}
    assert all(r.spec.d_model % r.spec.n_heads == 0 for r in runs)
    assert min(depths) >= config.family.min_layers >= 2
    if config.family.depth is not None:
        assert set(depths) == {config.family.depth}


def test_the_demo_keeps_five_distinct_two_layer_sizes_per_budget():
    runs = plan(load_sweep("demo")).runs
    for budget in {r.spec.budget for r in runs}:
        assert len({r.N for r in runs if r.spec.budget == budget}) == 5


def test_depth_rises_with_n_at_a_fixed_aspect_and_widths_are_whole_heads():
    family = ShapeFamily(aspect=24, head_size=8)
    models = [family.shape_for(n, **SHAPE) for n in np.geomspace(3e3, 3e7, 200)]
    depths = [m.n_layers for m in models]
    counts = [param_counts(m).with_head for m in models]
    assert depths == sorted(depths) and depths[0] == 2 and depths[-1] > 10
    assert all(m.d_model == 8 * m.n_heads for m in models)
    big = [m for m in models if m.n_layers >= 6]
    assert big and all(0.6 < m.d_model / (24 * m.n_layers) < 1.6 for m in big)  # near the aspect once deep
    for n, count in zip(np.geomspace(3e5, 3e7, 20), (param_counts(family.shape_for(n, **SHAPE)).with_head
                                                     for n in np.geomspace(3e5, 3e7, 20))):
        assert abs(np.log(count / n)) < np.log(1.1)  # within half a step of whole heads at these widths
    assert counts[0] > 0


def test_a_fixed_depth_family_grows_only_its_width_and_one_layer_needs_asking():
    deep = [ShapeFamily(depth=3, head_size=16).shape_for(n, **SHAPE) for n in (1e4, 1e5, 1e6)]
    assert [m.n_layers for m in deep] == [3, 3, 3] and [m.d_model for m in deep] == sorted(m.d_model for m in deep)
    assert ShapeFamily(aspect=64, head_size=8).shape_for(5e3, **SHAPE).n_layers == 2  # not 1: min_layers is 2
    assert ShapeFamily(aspect=64, head_size=8, min_layers=1).shape_for(5e3, **SHAPE).n_layers == 1


@pytest.mark.parametrize("kwargs, field", [
    ({"head_size": 5}, "head_size"), ({"aspect": 24, "depth": 2}, "depth"), ({"aspect": 0}, "aspect"),
    ({"min_layers": 0}, "min_layers"), ({"depth": 1}, "depth"),  # depth 1 is below the default min_layers 2
])
def test_impossible_families_name_the_field(kwargs, field):
    with pytest.raises(FamilyError) as caught:
        ShapeFamily(**kwargs)
    assert caught.value.field == field and f"ShapeFamily.{field}" in str(caught.value)


def test_a_size_out_of_the_familys_reach_is_an_error_naming_the_budget(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text(
        "name: wide\nkind: isoflop\nfamily: {depth: 2, head_size: 64}\n"
        "corpus: {source: stdlib, vocab_size: 257}\n"
        "training: {context_length: 64, batch_size: 16, lr: 1.0e-2, eval_tokens: 4096}\n"
        "isoflop: {budgets: [1.0e13, 1.0e11], sizes_per_budget: 3, span: 2, center: {k: 3.8e-3, p: 0.6}}\n")
    with pytest.raises(SweepConfigError, match=r"isoflop.budgets\[1\].*out of reach of the shape family "
                                               r"\(depth 2, head size 64"):
        plan(load_sweep(path))
