"""Each run field declared once: the sweep sections take the spec's defaults, the spec takes the lm configs'
defaults and rules, and a sweep file's bad shared field is rejected by that rule under its sweep key."""

import dataclasses
import inspect

import pytest
import yaml

from analysis.compute import N_CONVENTIONS as ANALYSIS_N_CONVENTIONS
from experiments.spec import ExperimentSpec
from lm.conventions import DEFAULT_N_CONVENTION, N_CONVENTIONS
from lm.field_error import FieldError
from lm.shapes import shape_for_params
from scaling.cli import build_parser
from sweeps.config import PRESET_DIR, CorpusSection, SweepConfig, SweepConfigError, TrainingSection, parse_sweep
from sweeps.plan import plan
from sweeps.run_fields import SWEEP_KEYS, shared_fields


def tiny() -> dict:
    return yaml.safe_load((PRESET_DIR / "tiny.yaml").read_text())


def defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_every_optional_shared_field_of_a_section_defaults_to_the_spec():
    spec = defaults(ExperimentSpec)
    sections = {"training": defaults(TrainingSection), "corpus": defaults(CorpusSection), "": defaults(SweepConfig)}
    checked = []
    for name, key in SWEEP_KEYS.items():
        section, field = key.rpartition(".")[::2]
        default = sections[section][field]
        if default is not dataclasses.MISSING:  # source, vocab_size, context_length are required in a file
            assert default == ("auto" if name == "beta2" else spec[name]), key  # "auto" is the spec's None
            checked.append(key)
    assert len(checked) == len(SWEEP_KEYS) - 3


@pytest.mark.parametrize("key, value", [
    ("training.schedule", "linear"), ("training.warmup_fraction", 1.5), ("training.min_lr_ratio", 2.0),
    ("training.cooldown_fraction", 0.0), ("training.weight_decay", -0.1), ("training.grad_clip", -1.0),
    ("training.seed", -1), ("training.beta2", 1.0), ("training.precision", "fp16"), ("training.context_length", 0),
    ("corpus.source", ""), ("corpus.vocab_size", 100), ("corpus.max_bytes", 0), ("corpus.text_field", ""),
    ("corpus.val_fraction", 1.0), ("corpus.seed", -1), ("n_convention", "kaplan"), ("compute", "6ND"),
])
def test_a_bad_shared_field_is_rejected_by_the_spec_rule_under_its_sweep_key(key, value):
    data = tiny()
    *path, field = key.split(".")
    (data[path[0]] if path else data)[field] = value
    with pytest.raises(SweepConfigError) as caught:
        parse_sweep(data, source="tiny.yaml")
    assert caught.value.key == key and str(value) in caught.value.reason


def test_the_plan_gives_every_run_the_shared_fields():
    config = parse_sweep(tiny())
    shared = shared_fields(config)
    for run in plan(config).runs:
        assert all(getattr(run.spec, name) == value for name, value in shared.items() if value is not None)


@pytest.mark.parametrize("field, value", [("schedule", "linear"), ("warmup_fraction", 1.5), ("corpus_seed", -1),
                                          ("corpus_val_fraction", 1.0), ("n_heads", 3), ("precision", "fp16")])
def test_the_spec_names_a_rule_of_an_lm_config_by_its_own_field(field, value):
    fields = dict(n_layers=2, d_model=32, n_heads=2, tokens=16 * 64 * 10, batch_size=16, context_length=64, lr=1e-3,
                  vocab_size=512)
    with pytest.raises(FieldError) as caught:
        ExperimentSpec(**{**fields, field: value})
    assert (caught.value.owner, caught.value.field) == ("ExperimentSpec", field)


def test_one_n_convention_default_and_one_list_of_names_everywhere():
    assert ANALYSIS_N_CONVENTIONS == N_CONVENTIONS  # analysis keeps a copy: it imports no lm
    assert ExperimentSpec.n_convention == SweepConfig.n_convention == DEFAULT_N_CONVENTION
    assert inspect.signature(shape_for_params).parameters["convention"].default == DEFAULT_N_CONVENTION
    assert build_parser().parse_args(["shape", "1e5"]).convention == DEFAULT_N_CONVENTION


def test_scaling_train_leaves_the_lm_configs_defaults_to_them():
    """`scaling train` without those options trains with the defaults lm's configs declare, not copies."""
    from lm.corpus_sources import CorpusConfig
    from lm.optim import Schedule
    from scaling.cli import _given

    args = build_parser().parse_args(["train"])
    given = dict(kind=args.schedule, warmup_fraction=args.warmup, cooldown_fraction=args.cooldown)
    assert _given(**given) == {} and Schedule(**_given(**given)) == Schedule()
    assert _given(seed=args.seed) == {}  # TrainConfig's own seed default applies
    corpus = CorpusConfig(**_given(source=args.corpus, text_field=args.text_field, vocab_size=args.vocab_size))
    assert corpus == CorpusConfig()
    chosen = build_parser().parse_args(["train", "--schedule", "wsd", "--warmup", "0.1", "--seed", "3"])
    assert Schedule(**_given(kind=chosen.schedule, warmup_fraction=chosen.warmup)) == Schedule(kind="wsd",
                                                                                             warmup_fraction=0.1)
    assert _given(seed=chosen.seed) == {"seed": 3}
