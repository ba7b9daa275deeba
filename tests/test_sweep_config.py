"""Sweep files: presets validate and plan; every malformed file is rejected naming the file, key path and reason."""

from pathlib import Path

import pytest
import yaml

from sweeps.config import (
    PRESET_DIR, PowerRule, Shape, SweepConfigError, TrainingSection, load_sweep, parse_sweep, preset_names, sweep_path,
)
from sweeps.plan import plan

BAD = sorted((Path(__file__).parent / "data" / "bad_sweeps").glob("*.yaml"))


def expected_key(path: Path) -> str:
    """Each bad file's first line says what its error message must name: `# expect: <key>`."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_the_bad_sweep_corpus_covers_at_least_twelve_distinct_mistakes():
    assert len(BAD) >= 12
    assert len({expected_key(p) for p in BAD}) >= 12


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_each_malformed_sweep_is_rejected_naming_the_file_and_key(path):
    with pytest.raises(SweepConfigError) as caught:
        plan(load_sweep(path))  # nothing is launched: loading or planning refuses
    message = str(caught.value)
    assert str(path) in message and expected_key(path) in message
    assert len(caught.value.reason) > 10  # a reason, not just a key


PRESETS = ["tiny", "tiny-wsd", "demo", "demo-wsd", "cpu-large", "cpu-large-wsd", "gpu", "cluster"]


def test_the_preset_list_names_every_shipped_preset():
    assert sorted(PRESETS) == preset_names()


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_validates_and_plans(name):
    assert name in preset_names()
    config = load_sweep(name)
    assert config.name == name and config.source == str(PRESET_DIR / f"{name}.yaml")
    result = plan(config)
    assert len(result.runs) >= 6 and result.total_flops > 0
    for run in (r for r in result.runs if not r.spec.trunk):  # a WSD trunk has no budget: its branches do
        # the budget under the sweep's compute convention (tests/test_family.py: per convention)
        assert abs(run.C - run.spec.budget) <= 0.01 * run.spec.budget


def test_tiny_is_two_budgets_of_three_sizes_of_short_cpu_runs():
    result = plan(load_sweep("tiny"))
    assert len(result.runs) == 6 and len({r.spec.budget for r in result.runs}) == 2
    assert result.device_kind == "cpu" and all(r.steps <= 200 for r in result.runs)


def test_demo_is_three_budgets_of_five_sizes_planned_to_fit_minutes_on_two_cores():
    result = plan(load_sweep("demo"))
    assert len(result.runs) == 15 and len({r.spec.budget for r in result.runs}) == 3
    assert 60 < result.serial_seconds / 2 < 20 * 60  # two runs at a time, by the plan's CPU throughput assumption


def base() -> dict:
    return yaml.safe_load((PRESET_DIR / "tiny.yaml").read_text())


def test_numbers_yaml_reads_as_strings_are_accepted():
    data = base()
    data["training"]["lr"] = "3e-3"  # YAML 1.1 reads 3e-3 (no dot) as a string
    data["isoflop"]["budgets"] = ["6.5e9", 1.3e10]
    config = parse_sweep(data)
    assert config.training.lr == (3e-3,) and config.isoflop.budgets == (6.5e9, 1.3e10)


def test_log_ranges_expand_to_rounded_log_spaced_values():
    data = base()
    data["isoflop"]["budgets"] = {"log_range": ["1e10", "1e12"], "num": 3}
    assert parse_sweep(data).isoflop.budgets == (1e10, 1e11, 1e12)
    data["isoflop"]["budgets"] = {"log_range": [1e10, 1e11], "num": 3}
    assert parse_sweep(data).isoflop.budgets == (1e10, 31622776601.7, 1e11)  # 12 significant digits


def test_axes_take_a_value_a_list_or_a_power_rule():
    data = base()
    data["training"]["lr"] = {"rule": "power", "k": 0.3, "p": -0.125, "of": "C", "multipliers": [0.5, 1, 2]}
    data["training"]["batch_size"] = [8, 16]
    training = parse_sweep(data).training
    assert training.lr == PowerRule(k=0.3, p=-0.125, of="C", multipliers=(0.5, 1.0, 2.0))
    assert training.lrs(N=1e4, C=1e16) == pytest.approx([0.5 * 0.3e-2, 0.3e-2, 2 * 0.3e-2], rel=1e-5)
    assert training.batch_sizes(N=1e4, C=1e16) == [8, 16]
    data["training"]["batch_size"] = {"rule": "power", "k": 2.0, "p": 0.5}
    assert parse_sweep(data).training.batch_sizes(N=100.4, C=0) == [20]  # 2·sqrt(100.4) = 20.04, nearest integer


def test_isoflop_defaults_follow_chinchilla():
    data = base()
    del data["isoflop"]["center"], data["isoflop"]["span"], data["isoflop"]["sizes_per_budget"]
    iso = parse_sweep(data).isoflop
    assert (iso.sizes_per_budget, iso.span) == (5, 4.0)
    assert iso.center.n_opt(1.2e11) == pytest.approx(1e9**0.5)  # sqrt(C / (6·20))


def test_configs_built_in_python_are_validated_too():
    with pytest.raises(SweepConfigError, match="batch_size"):
        TrainingSection(context_length=64, batch_size=(0,), lr=(1e-3,))
    with pytest.raises(SweepConfigError, match="n_heads"):
        Shape(n_layers=2, d_model=30, n_heads=4)


def test_presets_are_found_by_name_and_paths_as_given(tmp_path):
    assert sweep_path("demo") == PRESET_DIR / "demo.yaml"
    assert sweep_path(tmp_path / "mine.yaml") == tmp_path / "mine.yaml"
    with pytest.raises(SweepConfigError, match="cannot read"):
        load_sweep(tmp_path / "missing.yaml")


def test_validation_multiples_default_to_4_and_10_and_a_preset_may_choose_others():
    """`validation: {multiples}` sets the study's validation budgets (× the largest); 4× and 10× without it."""
    data = base()
    data.pop("validation")
    assert parse_sweep(data).validation.multiples == (4.0, 10.0)
    assert load_sweep("demo").validation.multiples == (2.0, 4.0)
    data["validation"] = {"multiples": [3, 3]}
    with pytest.raises(SweepConfigError, match="validation.multiples: has duplicate values"):
        parse_sweep(data)
