"""A shape family: one rule that turns every size of a sweep into a model shape (n_layers, d_model, n_heads).

Why one family per sweep: at 10^4-10^6 parameters depth alone moved our losses by 3-7% (docs/performance.md),
more than the loss differences near an IsoFLOP minimum, so a profile whose sizes mix depths (or head sizes, or
one-layer models) measures the shapes as much as N. A family fixes, for the whole sweep and for the study's
validation runs:
    head_size    d_model / n_heads, the same for every model (widths are whole numbers of heads)
    aspect       a target d_model / n_layers (Kaplan et al. 2020 §3.1: loss within a few percent over a wide
                 band of aspects at fixed N), or
    depth        a fixed n_layers (width alone grows with N)
    min_layers   the fewest layers (2 by default: one-layer Transformers cannot compose attention heads and in
                 our sweeps sat off the trend of deeper ones; a file may ask for 1)
The rule, for a target N under a convention. The depth comes from a continuous width, the width from whole heads:
    1. for each depth L, the real width w_L that gives N under the approximation N ≈ 12·L·w² + e·w (blocks with
       d_ff = 8/3·w, plus the embedding or head term e the convention counts); with `aspect`, a size N belongs to
       the depth L (≥ min_layers) whose w_L / L is nearest the aspect in ratio (ties: the shallower). w_L falls
       and L·aspect rises with L, and every w_L rises with N, so this depth never decreases as N grows: it cuts
       the N axis into one interval per depth.
    2. the family's members: every shape of whole heads (d_model = k·head_size) whose exact count (lm.accounting)
       lies in its own depth's interval; a fixed-depth family has every width at that depth.
    3. a target maps to the member nearest in log space. Because each member's depth is the depth of its own
       count, depth is non-decreasing along the sorted members: in the real N, not only in the target.
A target beyond the smallest or largest member is out of the family's reach; the planner reports it with the
sweep key (sweeps/plan.py).
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass

import numpy as np

from lm.accounting import param_counts
from lm.conventions import N_CONVENTIONS
from lm.field_error import FieldError
from lm.model import ModelConfig, swiglu_hidden_size
from lm.shapes import MAX_D_MODEL

MAX_LAYERS = 256
MAX_COUNT = 1e13  # members are listed up to this many parameters


class FamilyError(FieldError):
    """An impossible family: `field` names the ShapeFamily field at fault."""

    def __init__(self, field: str, reason: str):
        super().__init__("ShapeFamily", field, reason)


@dataclass(frozen=True, kw_only=True)
class ShapeFamily:
    """The shapes of one sweep. Give `aspect` or `depth` (not both); neither: aspect 32."""

    head_size: int = 16
    aspect: float | None = None
    depth: int | None = None
    min_layers: int = 2

    def __post_init__(self):
        if not (isinstance(self.head_size, int) and self.head_size >= 2 and self.head_size % 2 == 0):
            raise FamilyError("head_size", f"must be an even integer >= 2 (RoPE rotates pairs), got {self.head_size!r}")
        if self.aspect is not None and self.depth is not None:
            raise FamilyError("depth", "give either aspect (d_model per layer) or depth (a fixed n_layers), not both")
        if self.aspect is not None and not (isinstance(self.aspect, (int, float)) and 1 <= self.aspect <= 4096):
            raise FamilyError("aspect", f"must be a number from 1 to 4096 (d_model per layer), got {self.aspect!r}")
        if not (isinstance(self.min_layers, int) and 1 <= self.min_layers <= MAX_LAYERS):
            raise FamilyError("min_layers", f"must be an integer from 1 to {MAX_LAYERS}, got {self.min_layers!r}")
        if self.depth is not None and not (isinstance(self.depth, int) and self.min_layers <= self.depth <= MAX_LAYERS):
            raise FamilyError("depth", f"must be an integer from min_layers={self.min_layers} to {MAX_LAYERS}, "
                                       f"got {self.depth!r}")

    @property
    def target_aspect(self) -> float:
        return 32.0 if self.aspect is None else float(self.aspect)

    def describe(self) -> str:
        shape = f"depth {self.depth}" if self.depth is not None else f"aspect {self.target_aspect:g}"
        return f"{shape}, head size {self.head_size}, at least {self.min_layers} layer{'s' * (self.min_layers > 1)}"

    def depth_for(self, n: float, *, embedding_term: int) -> int:
        """Step 1 of the module docstring: the depth a size N belongs to (`embedding_term`: e in 12·L·w² + e·w)."""
        if self.depth is not None:
            return self.depth
        # w_L / (L·aspect) falls with L: scan to where it crosses 1, then take the nearer of the two neighbours
        ratio = lambda L: _width(L, n, embedding_term) / (L * self.target_aspect)  # noqa: E731
        L = self.min_layers
        while L < MAX_LAYERS and ratio(L + 1) >= 1:
            L += 1
        if L < MAX_LAYERS and abs(math.log(ratio(L + 1))) < abs(math.log(ratio(L))):
            return L + 1
        return L

    def members(self, *, vocab_size: int, convention: str,
                tie_embeddings: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
        """Step 2: the family's shapes sorted by their count under `convention`: (counts, [(n_layers, d_model)])."""
        if convention not in N_CONVENTIONS:
            raise ValueError(f"convention must be one of {N_CONVENTIONS}, got {convention!r}")
        return _members(self, vocab_size, convention, tie_embeddings)

    def shape_for(self, n_target: float, *, vocab_size: int, context_length: int, convention: str,
                  tie_embeddings: bool = False) -> ModelConfig:
        """Step 3: the family's member nearest `n_target` parameters under `convention` (log distance)."""
        if not (isinstance(n_target, (int, float)) and math.isfinite(n_target) and n_target > 0):
            raise ValueError(f"n_target must be a positive finite number, got {n_target!r}")
        counts, shapes = self.members(vocab_size=vocab_size, convention=convention, tie_embeddings=tie_embeddings)
        i = bisect.bisect_left(counts, n_target)
        best = min((j for j in (i - 1, i) if 0 <= j < len(counts)), key=lambda j: abs(math.log(counts[j] / n_target)))
        n_layers, d_model = shapes[best]
        cfg = ModelConfig(vocab_size=vocab_size, context_length=context_length, n_layers=n_layers, d_model=d_model,
                          n_heads=d_model // self.head_size, tie_embeddings=tie_embeddings)
        assert param_counts(cfg).n(convention) == counts[best]
        return cfg

    def reach(self, *, vocab_size: int, convention: str, tie_embeddings: bool = False) -> tuple[int, int]:
        """The counts of the family's smallest and largest members under `convention`."""
        counts, _ = self.members(vocab_size=vocab_size, convention=convention, tie_embeddings=tie_embeddings)
        return counts[0], counts[-1]


def _width(layers: int, n: float, embedding_term: int) -> float:
    """The positive root w of 12·L·w² + e·w = N, e the embedding term plus the norms' 2L + 1."""
    e = embedding_term + 2 * layers + 1
    return (-e + math.sqrt(e * e + 48 * layers * n)) / (24 * layers)


def _upper_bound(family: ShapeFamily, layers: int, embedding_term: int) -> float:
    """The largest N of depth `layers` (inf for a fixed depth or the deepest). With r(L) = w_L / (L·aspect),
    falling in L and rising in N, depth_for gives at most `layers` exactly while r(L)·r(L+1) ≤ 1 (the nearer
    neighbour in ratio, ties to the shallower), and that product rises with N: bisection in log N."""
    if family.depth is not None or layers == MAX_LAYERS:
        return math.inf
    a2 = family.target_aspect ** 2 * layers * (layers + 1)
    shallow = lambda log_n: (_width(layers, math.exp(log_n), embedding_term)  # noqa: E731
                             * _width(layers + 1, math.exp(log_n), embedding_term) <= a2)
    low, high = 0.0, math.log(MAX_COUNT * 10)
    if shallow(high):
        return math.inf
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if shallow(mid) else (low, mid)
    return math.exp(low)


@functools.lru_cache(maxsize=64)
def _members(family: ShapeFamily, vocab_size: int, convention: str, tie_embeddings: bool):
    term = {"non_embedding": 0, "with_head": vocab_size, "total": vocab_size * (1 if tie_embeddings else 2)}[convention]
    widths = np.arange(family.head_size, MAX_D_MODEL + 1, family.head_size)
    d_ff = np.array([swiglu_hidden_size(int(w)) for w in widths])
    depths = [family.depth] if family.depth is not None else range(family.min_layers, MAX_LAYERS + 1)
    counts, shapes, lower = [], [], 0.0
    for L in depths:
        upper = _upper_bound(family, L, term)
        c = L * (4 * widths**2 + 3 * widths * d_ff) + (2 * L + 1) * widths + term * widths
        keep = (c > lower) & (c <= upper)
        counts += c[keep].tolist()
        shapes += [(L, int(w)) for w in widths[keep]]
        lower = upper
        if upper > MAX_COUNT:
            break
    # d_ff's rounding (a multiple of 64 from width 512) can make a wider model a little smaller: sort by count;
    # each depth's counts lie in its own interval, so the depths stay in order
    order = sorted(range(len(counts)), key=counts.__getitem__)
    return [counts[i] for i in order], [shapes[i] for i in order]
