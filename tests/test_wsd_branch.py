"""WSD branches: a cooldown trained off a trunk's checkpoint is, bit for bit on CPU, an independent WSD run."""

import dataclasses

import pytest

from lm import checkpoint
from lm.model import ModelConfig
from lm.optim import Schedule
from lm.train import TrainConfig, train

TOKENS_PER_STEP = 8 * 32
WARMUP = 5


def config(steps: int, schedule: Schedule) -> TrainConfig:
    model = ModelConfig(vocab_size=512, context_length=32, n_layers=2, d_model=32, n_heads=2)
    return TrainConfig(model=model, tokens=steps * TOKENS_PER_STEP, batch_size=8, lr=3e-3, schedule=schedule,
                       device="cpu", eval_tokens=2048, log_interval=4, eval_interval=20)


def wsd(shape: str = "1-sqrt") -> Schedule:
    return Schedule(kind="wsd", warmup_steps=WARMUP, cooldown_fraction=0.2, cooldown_shape=shape)


def test_cooldown_shapes_follow_hagele_et_al():
    linear, root = wsd("linear"), wsd("1-sqrt")
    assert linear.cooldown_start(100) == root.cooldown_start(100) == 80
    for s in range(80):
        assert linear.multiplier(s, 100) == root.multiplier(s, 100) == (min(1.0, (s + 1) / WARMUP))
    progress = (90 - 80) / 19
    assert linear.multiplier(90, 100) == pytest.approx(1 - 0.9 * progress)
    assert root.multiplier(90, 100) == pytest.approx(1 - 0.9 * progress**0.5)
    assert linear.multiplier(99, 100) == root.multiplier(99, 100) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="cooldown_shape"):
        Schedule(kind="wsd", cooldown_shape="cosine")
    with pytest.raises(ValueError, match="warmup_steps"):
        Schedule(warmup_steps=-1)


def test_a_branch_equals_an_independent_wsd_run_bit_for_bit(stdlib_corpus, tmp_path):
    short, long = 60, 100  # branch steps 48 and 80
    trunk = config(80, Schedule(kind="constant", warmup_steps=WARMUP))
    train(trunk, stdlib_corpus, checkpoint_dir=tmp_path / "trunk", checkpoint_steps=(48, 80), peak_flops=1e11)
    for steps, at in ((short, 48), (long, 80)):
        independent = train(config(steps, wsd()), stdlib_corpus, peak_flops=1e11)
        branch = train(config(steps, wsd()), stdlib_corpus, checkpoint_dir=tmp_path / f"branch{steps}",
                       start_from=checkpoint.step_path(tmp_path / "trunk", at), peak_flops=1e11)
        assert branch.resumed_from_step == at and branch.status == "completed"
        assert [dataclasses.astuple(p) for p in branch.curve] == [dataclasses.astuple(p) for p in independent.curve]
        assert branch.final_val_loss == independent.final_val_loss
        assert branch.final_train_loss == independent.final_train_loss


def test_a_trunk_with_another_warmup_or_model_is_refused_naming_why(stdlib_corpus, tmp_path):
    other_warmup = config(80, Schedule(kind="constant", warmup_fraction=0.1))  # 8 warmup steps, not 5
    train(other_warmup, stdlib_corpus, checkpoint_dir=tmp_path / "a", checkpoint_steps=(48,), stop_after_step=48,
          peak_flops=1e11)
    with pytest.raises(checkpoint.CheckpointError, match="learning rate at step 0"):
        train(config(60, wsd()), stdlib_corpus, start_from=checkpoint.step_path(tmp_path / "a", 48), peak_flops=1e11)
    other_lr = dataclasses.replace(config(80, Schedule(kind="constant", warmup_steps=WARMUP)), lr=1e-3)
    train(other_lr, stdlib_corpus, checkpoint_dir=tmp_path / "b", checkpoint_steps=(48,), stop_after_step=48,
          peak_flops=1e11)
    with pytest.raises(checkpoint.CheckpointError, match="lr"):
        train(config(60, wsd()), stdlib_corpus, start_from=checkpoint.step_path(tmp_path / "b", 48), peak_flops=1e11)
