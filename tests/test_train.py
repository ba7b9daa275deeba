"""Training: it learns, resumes exactly, reports divergence, and rejects mismatched checkpoints."""

import dataclasses
import math

import pytest
import torch

from lm import checkpoint
from lm.model import ModelConfig
from lm.optim import Schedule
from lm.train import TrainConfig, train


def small_config(**overrides) -> TrainConfig:
    model = ModelConfig(vocab_size=512, context_length=32, n_layers=2, d_model=32, n_heads=2)
    fields = dict(model=model, tokens=120 * 8 * 32, batch_size=8, lr=3e-3, device="cpu", eval_tokens=2048,
                  log_interval=10, eval_interval=40)
    fields.update(overrides)
    return TrainConfig(**fields)


def test_tiny_model_beats_unigram_entropy_within_a_few_hundred_steps(stdlib_corpus):
    config = small_config(tokens=300 * 16 * 32, batch_size=16, lr=1e-2, eval_tokens=8192)
    result = train(config, stdlib_corpus, peak_flops=1e11)
    assert result.status == "completed" and result.steps == 300
    assert result.final_val_loss < stdlib_corpus.unigram_entropy("val") - 0.3
    assert result.curve[-1].train_loss < result.curve[0].train_loss
    assert result.tokens == 300 * 16 * 32
    assert result.flops == pytest.approx(result.tokens * 3 * (2 * (result.param_counts["blocks"] + 512 * 32) + 4 * 2 * 32 * 32))


def test_resume_reproduces_the_uninterrupted_curve_exactly(stdlib_corpus, tmp_path):
    config = small_config()
    full = train(config, stdlib_corpus, peak_flops=1e11)
    partial = train(config, stdlib_corpus, checkpoint_dir=tmp_path, checkpoint_every=30, stop_after_step=50, peak_flops=1e11)
    assert partial.status == "interrupted" and partial.steps == 50
    resumed = train(config, stdlib_corpus, checkpoint_dir=tmp_path, peak_flops=1e11)
    assert resumed.resumed_from_step == 50
    assert resumed.status == "completed"
    strip = lambda curve: [dataclasses.replace(p) for p in curve]  # noqa: E731
    assert strip(resumed.curve) == strip(full.curve)  # bitwise: every loss, every step
    assert resumed.final_val_loss == full.final_val_loss


def test_schedule_shapes():
    cosine = Schedule(kind="cosine", warmup_fraction=0.1, min_lr_ratio=0.1)
    values = [cosine.multiplier(s, 100) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    wsd = Schedule(kind="wsd", warmup_fraction=0.1, cooldown_fraction=0.2)
    values = [wsd.multiplier(s, 100) for s in range(100)]
    assert values[50] == 1.0 and values[79] == 1.0 and values[-1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="kind"):
        Schedule(kind="linear")


def test_weight_decay_skips_norms_and_embeddings():
    from lm.model import Transformer
    from lm.optim import make_optimizer

    model = Transformer(small_config().model)
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim == 2 and not name.startswith("embedding")), name


def test_divergence_ends_the_run_with_status_and_step(stdlib_corpus):
    config = small_config(lr=50.0, grad_clip=0.0, schedule=Schedule(kind="constant", warmup_fraction=0.0))
    result = train(config, stdlib_corpus, peak_flops=1e11)
    assert result.status == "diverged"
    assert result.diverged_at_step is not None and result.diverged_at_step < config.steps
    assert result.final_val_loss is None
    assert "step" in result.message


def test_checkpoint_from_a_different_config_is_rejected_naming_the_field(stdlib_corpus, tmp_path):
    train(small_config(), stdlib_corpus, checkpoint_dir=tmp_path, stop_after_step=10, peak_flops=1e11)
    with pytest.raises(checkpoint.CheckpointError, match="lr"):
        train(small_config(lr=1e-3), stdlib_corpus, checkpoint_dir=tmp_path, peak_flops=1e11)
    other_model = dataclasses.replace(small_config().model, d_model=64, n_heads=4)
    with pytest.raises(checkpoint.CheckpointError, match="d_model"):
        train(small_config(model=other_model), stdlib_corpus, checkpoint_dir=tmp_path, peak_flops=1e11)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / checkpoint.FILENAME
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match=str(path)):
        checkpoint.load(path)


def test_checkpoint_writes_are_atomic_and_leave_no_temporaries(tmp_path):
    path = tmp_path / "ck.pt"
    checkpoint.save(path, {"x": torch.ones(3)})
    checkpoint.save(path, {"x": torch.zeros(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    assert checkpoint.load(path)["x"].sum() == 0


@pytest.mark.parametrize(
    "overrides, field",
    [({"tokens": 100}, "tokens"), ({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"),
     ({"lr": math.nan}, "lr"), ({"divergence_factor": 0.5}, "divergence_factor")],
)
def test_invalid_train_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        small_config(**overrides)


def test_context_longer_than_data_is_a_clear_error(stdlib_corpus):
    model = ModelConfig(vocab_size=512, context_length=stdlib_corpus.val.size + 10, n_layers=1, d_model=16, n_heads=1)
    config = small_config(model=model, batch_size=1, tokens=model.context_length)
    with pytest.raises(ValueError, match="context_length"):
        train(config, stdlib_corpus, peak_flops=1e11)
