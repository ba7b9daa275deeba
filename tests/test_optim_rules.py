"""Optimizer settings for small batches: β2 by the batch's tokens (constant half-life, within Porian et al.'s
range), carried by specs and sweeps into the optimizer; learning rates that fall with the token horizon."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.hyperparams import fit_hyperparam_law
from analysis.lr_horizon import fit_lr_horizon
from experiments.spec import ExperimentSpec
from lm import checkpoint
from lm.model import ModelConfig
from lm.optim import BETA2_RANGE, BETA2_REFERENCE, BETA2_REFERENCE_TOKENS, beta2_for_batch
from lm.train import TrainConfig, train
from sweeps.config import SweepConfigError, parse_sweep
from sweeps.plan import plan


def half_life_tokens(beta2: float, tokens_per_step: int) -> float:
    return math.log(0.5) / math.log(beta2) * tokens_per_step


def test_beta2_keeps_the_reference_half_life_in_tokens_within_its_range():
    assert beta2_for_batch(BETA2_REFERENCE_TOKENS) == BETA2_REFERENCE
    assert beta2_for_batch(2**15) == pytest.approx(0.95 ** (1 / 16), abs=1e-6)  # 0.996799
    reference = half_life_tokens(BETA2_REFERENCE, BETA2_REFERENCE_TOKENS)
    for tokens in (2**15, 2**17, 2**19):
        assert half_life_tokens(beta2_for_batch(tokens), tokens) == pytest.approx(reference, rel=1e-3)
    assert beta2_for_batch(2048) == BETA2_RANGE[1] and beta2_for_batch(2**24) == BETA2_RANGE[0]
    values = [beta2_for_batch(2**k) for k in range(8, 26)]
    assert values == sorted(values, reverse=True)  # smaller batches average over more steps


def test_specs_and_sweeps_carry_beta2_into_the_run_id():
    spec = ExperimentSpec(n_layers=1, d_model=16, n_heads=2, tokens=40 * 8 * 32, batch_size=8, context_length=32,
                          lr=1e-2, vocab_size=512)
    assert spec.beta2 == beta2_for_batch(8 * 32) and spec.train_config().beta2 == spec.beta2
    explicit = ExperimentSpec(**{**spec.to_dict(), "beta2": 0.95})
    assert explicit.run_id != spec.run_id and ExperimentSpec.from_dict(spec.to_dict()) == spec
    sweep = {"name": "b", "kind": "grid", "corpus": {"source": "stdlib", "vocab_size": 257},
             "training": {"context_length": 64, "batch_size": 16, "lr": 1e-2},
             "grid": {"N": [2e4], "D": [204800]}}
    assert [r.spec.beta2 for r in plan(parse_sweep(sweep)).runs] == [beta2_for_batch(1024)]
    sweep["training"]["beta2"] = 0.98
    assert [r.spec.beta2 for r in plan(parse_sweep(sweep)).runs] == [0.98]
    sweep["training"]["beta2"] = 1.5
    with pytest.raises(SweepConfigError, match=r"training\.beta2"):
        parse_sweep(sweep)


def test_the_optimizer_trains_with_the_configured_beta2(stdlib_corpus, tmp_path):
    model = ModelConfig(vocab_size=512, context_length=32, n_layers=1, d_model=16, n_heads=2)
    config = TrainConfig(model=model, tokens=4 * 8 * 32, batch_size=8, lr=1e-2, device="cpu", threads=1)
    assert config.beta2 == beta2_for_batch(8 * 32)
    train(config, stdlib_corpus, checkpoint_dir=tmp_path, stop_after_step=1, peak_flops=1e11)
    groups = checkpoint.load(tmp_path / checkpoint.FILENAME)["optimizer"]["param_groups"]
    assert {tuple(g["betas"]) for g in groups} == {(0.9, config.beta2)}
    with pytest.raises(ValueError, match="beta2"):
        TrainConfig(model=model, tokens=4 * 8 * 32, batch_size=8, lr=1e-2, beta2=1.0)


def test_a_learning_rate_rule_can_fall_with_the_horizon():
    sweep = {"name": "h", "kind": "isoflop", "family": {"depth": 2, "head_size": 4}, "corpus": {"source": "stdlib", "vocab_size": 257},
             "training": {"context_length": 64, "batch_size": 16,
                          "lr": {"rule": "power", "of": "N", "k": 6.5, "p": -0.4, "q": -0.2}},
             "isoflop": {"budgets": [1e11, 1e12], "sizes_per_budget": 3, "span": 2, "center": {"k": 3.8e-3, "p": 0.6}}}
    runs = plan(parse_sweep(sweep)).runs
    for r in runs:
        assert r.spec.lr == pytest.approx(6.5 * r.N**-0.4 * r.D**-0.2, rel=1e-5)
    sweep["training"]["batch_size"] = {"rule": "power", "of": "C", "k": 1, "p": 0.1, "q": -0.1}
    with pytest.raises(SweepConfigError, match=r"training\.batch_size\.q"):
        parse_sweep(sweep)


def lr_valleys(budgets, sizes_of, k=2.0, p_n=-0.3, p_d=-0.25, noise=0.0, seed=0) -> pd.DataFrame:
    """Runs whose loss is a parabola in log lr around k·N^p_n·D^p_d, at 5 learning rates per (budget, N)."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        for n in sizes_of(budget):
            d = budget / (6 * n)
            best = k * n**p_n * d**p_d
            for lr in best * np.geomspace(0.25, 4, 5):
                loss = 3.0 + 0.05 * np.log(lr / best) ** 2 + noise * rng.standard_normal()
                rows.append((budget, n, round(d), lr, loss))
    return pd.DataFrame(rows, columns=["budget", "N", "D", "lr", "loss"]).assign(status="completed")


def test_the_horizon_law_separates_size_from_horizon():
    runs = lr_valleys(np.geomspace(1e11, 1e13, 4), lambda c: 3.8e-3 * c**0.6 * np.array([0.5, 1.0, 2.0]))
    law = fit_hyperparam_law(runs, "lr", n_bootstrap=0)
    assert law.success, law.message
    fit = fit_lr_horizon(law, n_bootstrap=200)
    assert fit.success, fit.message
    assert fit.p_N == pytest.approx(-0.3, abs=0.01) and fit.p_D == pytest.approx(-0.25, abs=0.01)
    assert fit.predict(1e5, 1e7) == pytest.approx(2.0 * 1e5**-0.3 * 1e7**-0.25, rel=0.05)
    assert fit.p_D_interval[0] <= -0.25 <= fit.p_D_interval[1]


def test_one_size_per_budget_cannot_separate_size_from_horizon():
    runs = lr_valleys(np.geomspace(1e11, 1e13, 4), lambda c: 3.8e-3 * c**0.5 * np.array([1.0]))
    law = fit_hyperparam_law(runs, "lr", n_bootstrap=0)
    fit = fit_lr_horizon(law, n_bootstrap=0)
    assert not fit.success and "separate" in fit.message
