"""ExperimentSpec: a stable, field-sensitive run id; strict validation; faithful translation to lm configs."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.spec import ExperimentSpec
from lm.accounting import param_counts
from lm.shapes import shape_for_params


def make(**overrides) -> ExperimentSpec:
    fields = dict(n_layers=2, d_model=32, n_heads=2, tokens=100 * 8 * 32, batch_size=8, context_length=32, lr=3e-3,
                  vocab_size=512, corpus_max_bytes=400_000)
    fields.update(overrides)
    return ExperimentSpec(**fields)


# The id of make() as first computed. If this changes, every stored run would be retrained: change it
# only on purpose (a new spec field or hashing scheme), never to make the test pass.
# e41818df9fd78f49 -> b3e689256e528f4a: the `sampler` field (windows without replacement per pass).
# b3e689256e528f4a -> 80dc9c3af836ca23: the `compute` field (what the budget counts: exact FLOPs or 6·N·D).
# 80dc9c3af836ca23 -> 514e6cf2c1dbf448: the `beta2` field (AdamW β2 by the batch's tokens, lm.optim).
EXPECTED_ID = "514e6cf2c1dbf448"


def test_run_id_is_a_fixed_16_hex_digest():
    assert make().run_id == EXPECTED_ID


def test_run_id_is_identical_in_another_process_with_another_hash_seed():
    code = ("from experiments.spec import ExperimentSpec; import json, sys; "
            "print(ExperimentSpec.from_dict(json.loads(sys.argv[1])).run_id)")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(make().to_dict())], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345", "PATH": ""}, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == EXPECTED_ID


# A second valid value for every field; the test below fails if a field is added without one here.
OTHER_VALUES = {
    "n_params": None, "n_layers": 3, "d_model": 64, "n_heads": 4, "n_convention": "total", "tie_embeddings": True,
    "tokens": 101 * 8 * 32, "batch_size": 4, "context_length": 16, "lr": 3.0000001e-3, "schedule": "wsd",
    "warmup_fraction": 0.1, "min_lr_ratio": 0.0, "cooldown_fraction": 0.3, "weight_decay": 0.0, "grad_clip": 0.5,
    "seed": 1, "beta2": 0.99, "sampler": "replacement", "precision": "fp32", "eval_tokens": 1024, "corpus_source": "/data/x.jsonl",
    "vocab_size": 1024, "corpus_max_bytes": None, "corpus_text_field": "body", "corpus_val_fraction": 0.1, "corpus_seed": 2,
    "budget": 1e12, "compute": "6N", "cooldown_shape": "1-sqrt", "warmup_steps": 5, "trunk": True,
    "trunk_id": "0123456789abcdef", "branch_step": 80,
}
# Fields valid only together with others: what else each single change needs.
TOGETHER = {"trunk": dict(schedule="constant", warmup_steps=5),
            "trunk_id": dict(schedule="wsd", warmup_steps=5, branch_step=80),
            "branch_step": dict(schedule="wsd", warmup_steps=5, trunk_id="0123456789abcdef")}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(ExperimentSpec)])
def test_changing_any_single_field_changes_the_run_id(name):
    assert set(OTHER_VALUES) == {f.name for f in dataclasses.fields(ExperimentSpec)}
    base = make()
    if name == "n_params":  # switching to a target N also drops the explicit shape
        changed = make(n_params=1e5, n_layers=None, d_model=None, n_heads=None)
    else:
        changed = dataclasses.replace(base, **{name: OTHER_VALUES[name]}, **TOGETHER.get(name, {}))
    assert getattr(changed, name) != getattr(base, name)
    assert changed.run_id != base.run_id


def test_equal_numbers_written_differently_give_one_id():
    assert make(lr=1).run_id == make(lr=1.0).run_id
    assert make(lr=3e-3).run_id == make(lr=0.003).run_id
    assert make(budget=10**12).run_id == make(budget=1e12).run_id


def test_to_dict_from_dict_round_trips_and_keeps_the_id():
    spec = make(budget=3.2e11, n_convention="non_embedding")
    again = ExperimentSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.run_id == spec.run_id


def test_from_dict_rejects_unknown_and_missing_keys_by_name():
    with pytest.raises(ValueError, match="unknown field.*sweep"):
        ExperimentSpec.from_dict({**make().to_dict(), "sweep": "demo"})
    d = make().to_dict()
    del d["lr"]
    with pytest.raises(ValueError, match="missing.*lr"):
        ExperimentSpec.from_dict(d)


@pytest.mark.parametrize("overrides, field", [
    ({"lr": 0.0}, "lr"), ({"lr": float("nan")}, "lr"), ({"tokens": 100}, "tokens"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.0}, "batch_size"), ({"seed": -1}, "seed"), ({"n_convention": "kaplan"}, "n_convention"),
    ({"schedule": "linear"}, "schedule"), ({"precision": "fp16"}, "precision"), ({"budget": -1.0}, "budget"),
    ({"d_model": 30, "n_heads": 4}, "n_heads"), ({"n_params": 1e5}, "n_params"), ({"n_heads": None}, "n_heads"),
    ({"weight_decay": -0.1}, "weight_decay"), ({"vocab_size": 100}, "vocab_size"),
    ({"warmup_fraction": 1.5}, "warmup_fraction"), ({"tie_embeddings": 1}, "tie_embeddings"),
    ({"corpus_source": ""}, "corpus_source"), ({"eval_tokens": 0}, "eval_tokens"),
    ({"sampler": "shuffle"}, "sampler"), ({"compute": "6ND"}, "compute"), ({"beta2": 1.0}, "beta2"),
    ({"beta2": 0}, "beta2"),
])
def test_invalid_spec_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        make(**overrides)


def test_target_n_resolves_through_the_shape_ladder_under_the_spec_convention():
    spec = make(n_params=2e5, n_layers=None, d_model=None, n_heads=None, n_convention="with_head")
    expected = shape_for_params(2e5, vocab_size=512, context_length=32, convention="with_head")
    assert spec.model_config() == expected
    assert spec.n == param_counts(expected).with_head


def test_explicit_shape_gives_that_model():
    model = make(tie_embeddings=True).model_config()
    assert (model.n_layers, model.d_model, model.n_heads, model.vocab_size, model.context_length,
            model.tie_embeddings) == (2, 32, 2, 512, 32, True)


def test_train_config_carries_the_spec_and_where_it_runs_does_not_change_what_it_computes():
    spec = make(schedule="wsd", warmup_fraction=0.1, cooldown_fraction=0.3, grad_clip=0.5, seed=4, eval_tokens=2048)
    cpu = spec.train_config(device="cpu", threads=1)
    other = spec.train_config(device="cuda", threads=8, compile=True)
    assert cpu.identity() == other.identity()
    assert (cpu.tokens, cpu.batch_size, cpu.lr, cpu.seed, cpu.grad_clip, cpu.eval_tokens) == (
        spec.tokens, 8, 3e-3, 4, 0.5, 2048)
    assert (cpu.schedule.kind, cpu.schedule.warmup_fraction, cpu.schedule.cooldown_fraction) == ("wsd", 0.1, 0.3)
    assert (cpu.device, cpu.threads, other.compile) == ("cpu", 1, True)


def test_corpus_config_mirrors_the_corpus_fields():
    cfg = make(corpus_source="data/*.txt", corpus_text_field="body", corpus_val_fraction=0.1, corpus_seed=3).corpus_config()
    assert (cfg.source, cfg.vocab_size, cfg.max_bytes, cfg.text_field, cfg.val_fraction, cfg.seed) == (
        "data/*.txt", 512, 400_000, "body", 0.1, 3)
