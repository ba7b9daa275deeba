"""Model shapes for a target parameter count: n_layers, d_model, n_heads, d_ff.

The aspect-ratio rule: width grows with depth, d_model/n_layers within [24, 128], a band around
64 (nanochat's depth dial uses d_model = 64·depth; Kaplan et al. 2020 §3.1 find loss within a few
percent for d_model/n_layers from ~20 to ~200, so the band costs little and buys a dense ladder).
One-layer models are a last resort, taken only where no deeper shape lies within the ladder's step:
one-layer Transformers cannot compose attention heads and in our sweeps sat visibly off the trend
of deeper ones. Below d_model 64 (below ~10^5 parameters) any depth from 1 to 6 is allowed, because one layer per 64 of width would leave gaps of 2× between
neighbouring sizes. Widths step by 2 below 64, then 4, 8
(from 128), 16 (from 512) and 64 (from 1024); head_dim is `head_dim_for(d_model)`; d_ff comes from
`swiglu_hidden_size`.
Every allowed shape is counted under the chosen N convention, and a ladder is climbed through them:
from each rung, the next is the best-proportioned shape (d_model/n_layers nearest 64) among those at
most 9% larger. A target maps to the rung nearest in log space. Because the answer is the nearest rung
of one sorted ladder, it is monotone in the target, and it lands within 5% of any target from 10^4 to
10^10 non-embedding parameters (checked by tests/test_shapes.py).
"""

from __future__ import annotations

import bisect
import functools
import math

import numpy as np

from lm.accounting import param_counts
from lm.conventions import DEFAULT_N_CONVENTION, N_CONVENTIONS
from lm.model import ModelConfig, swiglu_hidden_size

ASPECT = 64  # target d_model / n_layers
ASPECT_BAND = (24, 128)  # allowed d_model / n_layers at the default aspect: 0.375× to 2× of it
ASPECT_RANGE = (4, 1024)  # aspects a caller may ask for
MAX_D_MODEL = 32_768  # the widest d_model any shape rule lists (here and lm/family.py)
SINGLE_LAYER_PENALTY = 10.0  # one-layer models lie off the trend of deeper ones: a last resort on the ladder


def head_dim_for(d_model: int) -> int:
    """Head size: two heads below width 64 (one when d_model/2 is odd, since RoPE rotates pairs); from 64 the
    even divisor of d_model nearest (in ratio) to 16 (below 128), 32 (below 256), 64 (below 2048), 128.
    Nearest in ratio, not the largest below: d_model 76 gets 2 heads of 38, not 19 heads of 4, which
    would run attention at a fraction of the speed on a CPU."""
    if d_model < 64:
        return d_model // 2 if d_model % 4 == 0 else d_model
    preferred = 16 if d_model < 128 else 32 if d_model < 256 else 64 if d_model < 2048 else 128
    divisors = [h for h in range(2, d_model + 1, 2) if d_model % h == 0]
    return min(divisors, key=lambda h: (abs(math.log(h / preferred)), -h))


def _widths() -> np.ndarray:
    """Allowed widths from 8, spaced 2-6% apart: steps of 2 below 64, 4 below 128, 8 below 512, 16 below 1024, then 64."""
    return np.concatenate([np.arange(8, 64, 2), np.arange(64, 128, 4), np.arange(128, 512, 8),
                           np.arange(512, 1024, 16), np.arange(1024, MAX_D_MODEL + 1, 64)])


@functools.lru_cache(maxsize=8)
def _candidate_shapes(aspect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All allowed shapes as arrays (n_layers, d_model, d_ff): d_model/n_layers within the band scaled to `aspect`."""
    low, high = (bound * aspect / ASPECT for bound in ASPECT_BAND)
    layers, widths, hidden = [], [], []
    for d in _widths().tolist():
        if d < 64:  # below ~10^5 parameters one layer per 64 of width is too coarse a ladder
            depths = np.arange(1, max(6, int(d // low)) + 1)
        else:
            depths = np.arange(max(1, math.ceil(d / high)), max(1, int(d // low)) + 1)
        layers.append(depths)
        widths.append(np.full(len(depths), d))
        hidden.append(np.full(len(depths), swiglu_hidden_size(d)))
    return np.concatenate(layers), np.concatenate(widths), np.concatenate(hidden)


MAX_STEP = 1.09  # neighbouring rungs of the ladder differ by at most 9%, so any target is within 4.5%


@functools.lru_cache(maxsize=64)
def _ladder(convention: str, vocab_size: int, tie_embeddings: bool, aspect: float) -> tuple[list[int], list[tuple[int, int]]]:
    """A sorted ladder of shapes: from each rung, the next is the best-proportioned shape among those
    at most MAX_STEP larger (ties: the larger). Returns (counts, shapes), both sorted by count."""
    layers, widths, d_ff = _candidate_shapes(aspect)
    counts = layers * (4 * widths**2 + 3 * widths * d_ff) + (2 * layers + 1) * widths
    if convention == "with_head":
        counts = counts + vocab_size * widths
    elif convention == "total":
        counts = counts + vocab_size * widths * (1 if tie_embeddings else 2)
    order = np.argsort(counts, kind="stable")
    counts, layers, widths = counts[order], layers[order], widths[order]
    # among equally good proportions prefer the larger shape: ascending key, last index wins below
    misproportion = np.abs(np.log(widths / (layers * aspect))) + SINGLE_LAYER_PENALTY * (layers == 1)
    rungs = [0]
    while rungs[-1] < len(counts) - 1:
        i = rungs[-1]
        hi = int(np.searchsorted(counts, counts[i] * MAX_STEP, side="right"))
        if hi <= i + 1:  # nothing within MAX_STEP: choose among those within MAX_STEP of the next shape
            hi = int(np.searchsorted(counts, counts[i + 1] * MAX_STEP, side="right"))
        window = misproportion[i + 1 : hi]
        best = np.flatnonzero(window == window.min())[-1]
        rungs.append(i + 1 + int(best))
    return counts[rungs].tolist(), list(zip(layers[rungs].tolist(), widths[rungs].tolist()))


def shape_for_params(
    n_target: float,
    *,
    vocab_size: int,
    context_length: int,
    convention: str = DEFAULT_N_CONVENTION,
    tie_embeddings: bool = False,
    aspect: float = ASPECT,
) -> ModelConfig:
    """The allowed shape whose parameter count under `convention` is nearest `n_target` (log distance).

    aspect: the target d_model / n_layers (default 64). Smaller is deeper: at 3.6·10^5 parameters (vocab 257,
    with the head) 64 gives 2 layers × 116 and 24 gives 4 × 84, and at such sizes depth alone moved our
    losses by 3-7% (docs/performance.md).
    """
    if convention not in N_CONVENTIONS:
        raise ValueError(f"convention must be one of {N_CONVENTIONS}, got {convention!r}")
    if not (isinstance(n_target, (int, float)) and math.isfinite(n_target) and n_target > 0):
        raise ValueError(f"n_target must be a positive finite number, got {n_target!r}")
    if not (isinstance(aspect, (int, float)) and ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]):
        raise ValueError(f"aspect must be a number from {ASPECT_RANGE[0]} to {ASPECT_RANGE[1]}, got {aspect!r}")
    counts, shapes = _ladder(convention, vocab_size, tie_embeddings, float(aspect))
    i = bisect.bisect_left(counts, n_target)
    nearby = [j for j in (i - 1, i) if 0 <= j < len(counts)]
    best = min(nearby, key=lambda j: abs(math.log(counts[j] / n_target)))
    n_layers, d_model = shapes[best]
    cfg = ModelConfig(
        vocab_size=vocab_size, context_length=context_length, n_layers=n_layers, d_model=d_model,
        n_heads=d_model // head_dim_for(d_model), tie_embeddings=tie_embeddings,
    )
    assert param_counts(cfg).n(convention) == counts[best]
    return cfg
