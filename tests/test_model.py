"""The Transformer's layers against plain reference formulas, and its config validation."""

import math

import pytest
import torch
import torch.nn.functional as F

from lm.accounting import checked_param_counts
from lm.model import CausalSelfAttention, ModelConfig, RMSNorm, SwiGLU, Transformer, apply_rope, rope_tables, swiglu_hidden_size


def tiny(**overrides) -> ModelConfig:
    return ModelConfig(**{"vocab_size": 97, "context_length": 16, "n_layers": 2, "d_model": 32, "n_heads": 4, **overrides})


def test_rmsnorm_matches_formula():
    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(8))
    x = torch.randn(3, 5, 8)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)


def test_rope_rotates_each_pair_by_position_times_frequency():
    """Reference: treat pair (x_i, x_{i+hd/2}) as a complex number and multiply by e^{i·pos·θ_i}."""
    hd, T, theta = 8, 6, 10_000.0
    x = torch.randn(2, 3, T, hd)
    cos, sin = rope_tables(hd, T, theta)
    got = apply_rope(x, cos, sin)
    freqs = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * freqs
    z = torch.complex(x[..., : hd // 2].double(), x[..., hd // 2 :].double()) * torch.exp(1j * angle)
    expected = torch.cat([z.real, z.imag], dim=-1).float()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_rope_preserves_norms_and_makes_scores_depend_on_offset_only():
    hd = 16
    cos, sin = rope_tables(hd, 32, 10_000.0)
    q, k = torch.randn(hd), torch.randn(hd)

    def score(m, n):
        qm = apply_rope(q.view(1, 1, 1, hd).expand(1, 1, 32, hd), cos, sin)[0, 0, m]
        kn = apply_rope(k.view(1, 1, 1, hd).expand(1, 1, 32, hd), cos, sin)[0, 0, n]
        return float(qm @ kn)

    assert score(5, 2) == pytest.approx(score(13, 10), rel=1e-4, abs=1e-4)
    rotated = apply_rope(q.view(1, 1, 1, hd).expand(1, 1, 32, hd), cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), q.norm().expand(1, 1, 32), rtol=1e-5, atol=1e-5)


def test_attention_matches_explicit_causal_softmax():
    torch.manual_seed(0)
    cfg = tiny()
    attn = CausalSelfAttention(cfg)
    B, T = 2, 7
    x = torch.randn(B, T, cfg.d_model)
    cos, sin = rope_tables(cfg.head_dim, T, cfg.rope_theta)
    got = attn(x, cos, sin)

    q, k, v = attn.qkv(x).split(cfg.d_model, dim=2)
    q, k, v = (t.view(B, T, cfg.n_heads, cfg.head_dim).transpose(1, 2) for t in (q, k, v))
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    scores = q @ k.transpose(-1, -2) / math.sqrt(cfg.head_dim)
    scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, cfg.d_model)
    torch.testing.assert_close(got, attn.out(y), atol=1e-5, rtol=1e-5)


def test_attention_is_causal():
    """Changing a later token never changes an earlier position's output."""
    torch.manual_seed(0)
    model = Transformer(tiny())
    idx = torch.randint(0, 97, (1, 10))
    changed = idx.clone()
    changed[0, 6] = (idx[0, 6] + 1) % 97
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_swiglu_matches_formula():
    torch.manual_seed(0)
    cfg = tiny()
    mlp = SwiGLU(cfg)
    x = torch.randn(4, cfg.d_model)
    w_gate, w_up = mlp.gate_up.weight.split(cfg.d_ff, dim=0)
    expected = (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ mlp.down.weight.T
    torch.testing.assert_close(mlp(x), expected, atol=1e-5, rtol=1e-5)


def test_model_has_no_biases_and_loss_is_cross_entropy():
    torch.manual_seed(0)
    model = Transformer(tiny())
    assert all("bias" not in name for name, _ in model.named_parameters())
    idx = torch.randint(0, 97, (2, 16))
    targets = torch.randint(0, 97, (2, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 16, 97)
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, 97), targets.view(-1)))


def test_initial_loss_is_near_uniform_for_tiny_and_wide_models():
    """The initialisation keeps logits O(1): the first loss is within ~1 nat of ln(vocab) at any size."""
    for cfg in (tiny(), ModelConfig(vocab_size=1024, context_length=64, n_layers=12, d_model=768, n_heads=12)):
        torch.manual_seed(0)
        model = Transformer(cfg)
        idx = torch.randint(0, cfg.vocab_size, (2, cfg.context_length))
        _, loss = model(idx, idx)
        assert abs(loss.item() - math.log(cfg.vocab_size)) < 1.0


def test_tied_embeddings_share_the_table():
    model = Transformer(tiny(tie_embeddings=True))
    assert model.head is None
    assert sum(p.numel() for p in model.parameters()) == checked_param_counts(model).total


def test_swiglu_hidden_size_is_about_eight_thirds_of_width():
    for d in (16, 64, 100, 512, 768, 4096):
        assert abs(swiglu_hidden_size(d) / d - 8 / 3) < 0.3


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"d_model": 30, "n_heads": 4}, "n_heads"),
        ({"n_layers": 0}, "n_layers"),
        ({"vocab_size": -3}, "vocab_size"),
        ({"context_length": 2.5}, "context_length"),
        ({"d_model": 12, "n_heads": 4}, "head_dim"),
        ({"d_ff": -1}, "d_ff"),
        ({"rope_theta": 0.0}, "rope_theta"),
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny(**overrides)


def test_sequence_longer_than_context_is_a_clear_error():
    model = Transformer(tiny())
    with pytest.raises(ValueError, match="context_length"):
        model(torch.zeros(1, 17, dtype=torch.long))
