"""Parameter, FLOP and memory accounting against closed forms, numel, torch's FLOP counter and real bytes."""

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lm.accounting import (
    FLOP_CONVENTIONS,
    activation_elements_per_token,
    checked_param_counts,
    forward_flops_per_token,
    param_counts,
    training_flops_per_token,
    training_memory,
)
from lm.model import ModelConfig, Transformer
from lm.optim import make_optimizer
from lm.shapes import shape_for_params

CONFIGS = [
    ModelConfig(vocab_size=300, context_length=32, n_layers=2, d_model=64, n_heads=4),
    ModelConfig(vocab_size=257, context_length=24, n_layers=3, d_model=48, n_heads=2, tie_embeddings=True),
    ModelConfig(vocab_size=1000, context_length=8, n_layers=1, d_model=16, n_heads=1, d_ff=40),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_param_counts_match_closed_form_and_numel(cfg):
    d, L, V, f = cfg.d_model, cfg.n_layers, cfg.vocab_size, cfg.d_ff
    counts = checked_param_counts(Transformer(cfg))  # raises if the closed form disagrees with numel
    assert counts.total == sum(p.numel() for p in Transformer(cfg).parameters())
    assert counts.blocks == L * (3 * d * d + d * d + 2 * d * f + f * d)
    assert counts.norms == (2 * L + 1) * d
    assert counts.embedding == V * d
    assert counts.head == (0 if cfg.tie_embeddings else V * d)
    assert counts.non_embedding == counts.blocks + counts.norms
    assert counts.with_head == counts.non_embedding + V * d


@pytest.mark.parametrize("cfg", CONFIGS)
def test_exact_flops_match_torch_flop_counter(cfg):
    """Forward and forward+backward FLOPs equal what FlopCounterMode counts (math attention kernel,
    which the counter can see; the fused CPU kernel is invisible to it)."""
    torch.manual_seed(0)
    model = Transformer(cfg)
    B, T = 3, cfg.context_length
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    with sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as forward:
            model(idx, idx)
        with FlopCounterMode(display=False) as both:
            _, loss = model(idx, idx)
            loss.backward()
    assert forward.get_total_flops() == forward_flops_per_token(cfg) * B * T
    assert both.get_total_flops() == training_flops_per_token(cfg) * B * T


def test_flop_conventions_are_six_n():
    cfg = CONFIGS[0]
    counts = param_counts(cfg)
    assert training_flops_per_token(cfg, "6N_non_embedding") == 6 * counts.non_embedding
    assert training_flops_per_token(cfg, "6N_total") == 6 * counts.total
    assert training_flops_per_token(cfg, "6N_with_head") == 6 * counts.with_head
    assert set(FLOP_CONVENTIONS) == {"exact", "6N_non_embedding", "6N_total", "6N_with_head"}
    with pytest.raises(ValueError, match="convention"):
        training_flops_per_token(cfg, "7N")


def test_memory_estimate_matches_real_parameter_gradient_and_adamw_bytes():
    cfg = CONFIGS[0]
    torch.manual_seed(0)
    model = Transformer(cfg)
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.context_length))
    _, loss = model(idx, idx)
    loss.backward()
    opt.step()
    est = training_memory(cfg, batch_size=2, precision="fp32")
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    grad_bytes = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    state_bytes = sum(
        v.numel() * v.element_size() for s in opt.state.values() for k, v in s.items() if k in ("exp_avg", "exp_avg_sq")
    )
    assert est.parameters == param_bytes
    assert est.gradients == grad_bytes
    assert est.optimizer == state_bytes
    bf16 = training_memory(cfg, batch_size=2, precision="bf16")
    assert (bf16.parameters, bf16.gradients, bf16.optimizer) == (est.parameters, est.gradients, est.optimizer)
    assert bf16.activations < est.activations


def test_activation_estimate_is_within_25_percent_of_saved_tensors():
    """Sum the bytes autograd actually saves for backward (on the CPU math path) and compare."""
    for cfg in CONFIGS[:2]:
        torch.manual_seed(0)
        model = Transformer(cfg)
        static = {p.untyped_storage().data_ptr() for p in model.parameters()}
        static |= {b.untyped_storage().data_ptr() for b in model.buffers()}
        saved = {}

        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        idx = torch.randint(0, cfg.vocab_size, (4, cfg.context_length))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(idx, idx)
        measured = sum(n for ptr, n in saved.items() if ptr not in static)
        estimate = training_memory(cfg, batch_size=4, precision="fp32").activations
        assert 0.75 < measured / estimate < 1.25, (measured, estimate)


def test_activation_memory_scales_linearly_with_batch():
    cfg = CONFIGS[0]
    one = training_memory(cfg, batch_size=1).activations
    assert training_memory(cfg, batch_size=8).activations == 8 * one
    assert sum(activation_elements_per_token(cfg).values()) > 0


def test_shapes_hit_targets_within_five_percent_and_are_monotone():
    previous = 0
    for target in np.logspace(4, 10, 400):
        cfg = shape_for_params(float(target), vocab_size=50_000, context_length=1024, convention="non_embedding")
        n = param_counts(cfg).non_embedding
        assert abs(n / target - 1) <= 0.05, (target, cfg)
        assert n >= previous
        assert cfg.d_model % cfg.n_heads == 0 and cfg.head_dim % 2 == 0
        previous = n


def test_shapes_follow_the_aspect_rule_above_a_million_parameters():
    for target in (1e6, 1e7, 1e8, 1e9):
        cfg = shape_for_params(target, vocab_size=1000, context_length=64, convention="non_embedding")
        assert 24 <= cfg.d_model / cfg.n_layers <= 128


@pytest.mark.parametrize("aspect", [16, 24, 128])
def test_other_aspects_keep_the_ladder_monotone_and_within_five_percent(aspect):
    previous = 0
    for target in np.logspace(4, 9, 150):
        cfg = shape_for_params(float(target), vocab_size=1000, context_length=64, aspect=aspect, convention="non_embedding")
        n = param_counts(cfg).non_embedding
        assert abs(n / target - 1) <= 0.05 and n >= previous, (aspect, target, cfg)
        previous = n
    big = shape_for_params(1e8, vocab_size=1000, context_length=64, aspect=aspect, convention="non_embedding")
    assert 0.375 * aspect <= big.d_model / big.n_layers <= 2 * aspect
    with pytest.raises(ValueError, match="aspect must be"):
        shape_for_params(1e6, vocab_size=1000, context_length=64, aspect=2, convention="non_embedding")


def test_shapes_under_other_conventions_count_the_head():
    cfg = shape_for_params(2e6, vocab_size=4096, context_length=64, convention="with_head")
    assert abs(param_counts(cfg).with_head / 2e6 - 1) <= 0.05
    with pytest.raises(ValueError, match="convention"):
        shape_for_params(1e6, vocab_size=10, context_length=8, convention="kaplan")
    with pytest.raises(ValueError, match="n_target"):
        shape_for_params(-5, vocab_size=10, context_length=8)
