"""Approach 1 of Hoffmann et al. (2022): the lower envelope of training curves.

Every point of every run's loss curve spends C = f(N)·tokens FLOPs, f its row's C / D (the results table's
convention, analysis/compute.py; 6·N without it). At log-spaced FLOP levels we interpolate each run's loss
(linearly in log C, only inside the span its curve covers) and take the run with the lowest loss: it attains
the envelope, and its N and its tokens at that level, D = C / f(N) (f fitted to the runs,
analysis/compute_per_token.py), are that level's optimum. Power laws N_opt = k_n·C^a and D_opt = k_d·C^b
follow (b = 1 − a when f = 6·N, as D is then C / 6N at every level).

Caveat (a departure from the paper): Hoffmann et al. trained each size with cosine schedules whose length
matched several token horizons, so a curve's point at D tokens came from a schedule that had decayed by D.
Our runs decay their schedule over their own horizon only, so an intermediate point of a curve (learning
rate still high) is worse than a run of that length would reach; envelopes built from such points favour
runs near their end and bias N_opt towards the sizes whose runs end at that level. Treat Approach 1 as a
cross-check of Approaches 2 and 3, not as an equal.

Notable choices:
- Levels span the FLOPs covered by at least `min_covering_runs` (2) curves; with `trim_boundary_sizes`,
  leading levels won by the smallest size and trailing levels won by the largest are dropped, as there the
  true optimum may lie beyond the sizes sampled and would flatten the fit (Hoffmann et al. Fig. 2 shows
  the same plateau at the small end).
- Intervals by bootstrap over runs: runs are resampled with replacement, the envelope rebuilt from the
  distinct runs drawn (a duplicated curve cannot change a minimum), levels re-trimmed, laws refitted.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.compute_per_token import SIX_N, ComputePerToken, fit_compute_per_token
from analysis.powerlaw import AllocationLaw, PowerLawFit, fit_power_law, percentile_interval
from analysis.table import CleanTable

# Curves of one IsoFLOP budget end at C equal up to rounding of N and D (≈ 1e-7 relative): a curve counts
# as covering C within 0.1% beyond its ends (its end value held), so the top level sees the whole budget.
END_TOLERANCE = 1e-3


@dataclass(frozen=True)
class EnvelopeFit(AllocationLaw):
    """Approach 1's result: the envelope at FLOP levels and N_opt = k_n·C^a, D_opt = k_d·C^b fitted to it.

    levels (FLOPs), n_opt (parameters), d_opt (tokens), loss (nats/token) and run_ids describe the envelope
    at each level used in the fit. `law_samples` holds the bootstrap's (k_n, a) pairs, shape (B, 2).
    """

    levels: np.ndarray
    n_opt_points: np.ndarray
    d_opt_points: np.ndarray
    loss: np.ndarray
    run_ids: tuple[str, ...]
    n_law: PowerLawFit | None
    d_law: PowerLawFit | None
    a: float
    a_interval: tuple[float, float]
    b: float
    b_interval: tuple[float, float]
    k_n: float
    k_d: float
    law_samples: np.ndarray
    level: float
    success: bool
    message: str
    per_token: ComputePerToken = SIX_N  # C = f(N)·D: D at a level is C / f(N) (analysis/compute_per_token.py)
    notes: tuple[str, ...] = ()  # the curve points and runs left out, each a message `fit_envelope` can warn with


def clean_curves(curves: pd.DataFrame) -> CleanTable:
    """Curve rows usable for the envelope: finite, positive N, tokens and loss; runs with ≥ 2 points.

    Raises ValueError for missing columns; a note gives the count of rows, and one the runs, excluded.
    """
    missing = [c for c in ("run_id", "N", "tokens", "loss") if c not in curves.columns]
    if missing:
        raise ValueError(f"curves: missing column(s) {missing} needed for the training-curve envelope")
    values = curves[["N", "tokens", "loss"]].apply(pd.to_numeric, errors="coerce").astype(float)  # 6·N·D > int64
    good = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
    notes = []
    if not good.all():
        notes.append(f"curves: {int((~good).sum())} row(s) with NaN or non-positive N, tokens or loss excluded")
    # C along a curve: the run's own compute per token (its row's C / D, analysis/compute.py) where known, else 6·N
    per_token = (pd.to_numeric(curves["C_per_token"], errors="coerce").astype(float).fillna(6 * values["N"])
                 if "C_per_token" in curves.columns else 6 * values["N"])
    kept = curves[good].assign(C=per_token[good] * values["tokens"][good])
    sizes = kept.groupby("run_id")["C"].nunique()
    short = sizes.index[sizes < 2]
    if len(short):
        notes.append(f"curves: run(s) {sorted(map(str, short))} have < 2 points and are excluded")
        kept = kept[~kept["run_id"].isin(short)]
    return CleanTable(kept, tuple(notes))


def _interpolated_losses(curves: pd.DataFrame, levels: np.ndarray):
    """Matrix (runs × levels) of each run's loss at each level, NaN outside its curve (widened by
    END_TOLERANCE, where the end value holds); run ids; run sizes."""
    run_ids, sizes, rows = [], [], []
    log_levels = np.log(levels)
    for run_id, curve in curves.groupby("run_id", sort=True):
        curve = curve.sort_values("C").drop_duplicates("C", keep="last")
        log_c, loss = np.log(curve["C"].to_numpy(float)), curve["loss"].to_numpy(float)
        log_c = np.r_[log_c[0] - END_TOLERANCE, log_c, log_c[-1] + END_TOLERANCE]
        rows.append(np.interp(log_levels, log_c, np.r_[loss[0], loss, loss[-1]], left=np.nan, right=np.nan))
        run_ids.append(str(run_id))
        sizes.append(float(curve["N"].iloc[0]))
    return np.array(rows), run_ids, np.array(sizes)


def _envelope(losses: np.ndarray, sizes: np.ndarray, subset: np.ndarray, *, min_covering: int, trim: bool):
    """Levels kept, winning row (index into losses) per kept level, for the runs in `subset`."""
    block = losses[subset]
    covered = np.sum(np.isfinite(block), axis=0) >= min_covering
    winners = np.full(block.shape[1], -1)
    if covered.any():
        filled = np.where(np.isfinite(block[:, covered]), block[:, covered], np.inf)
        winners[covered] = subset[np.argmin(filled, axis=0)]
    keep = covered.copy()
    if trim and keep.any():
        present = sizes[subset]
        won = np.where(keep, sizes[np.maximum(winners, 0)], np.nan)
        first, last = np.flatnonzero(keep)[[0, -1]]
        while first <= last and (not keep[first] or won[first] == present.min()):
            keep[first] = False
            first += 1
        while last >= first and (not keep[last] or won[last] == present.max()):
            keep[last] = False
            last -= 1
    return keep, winners


def _flop_levels(curves: pd.DataFrame, n_levels: int, min_covering: int) -> np.ndarray:
    """`n_levels` log-spaced FLOP levels spanning the C covered by at least `min_covering` curves."""
    spans = curves.groupby("run_id")["C"].agg(["min", "max"])
    spans = spans.assign(min=spans["min"] * np.exp(-END_TOLERANCE), max=spans["max"] * np.exp(END_TOLERANCE))
    probe = np.geomspace(spans["min"].min(), spans["max"].max(), 1024)
    coverage = ((spans["min"].to_numpy()[:, None] <= probe) & (probe <= spans["max"].to_numpy()[:, None])).sum(0)
    if not (coverage >= min_covering).any():
        raise ValueError(f"envelope: no FLOP level is covered by ≥ {min_covering} curves")
    covered = probe[coverage >= min_covering]
    # pull the ends in by the tolerance: the top level then lies inside every curve ending at the top budget
    return np.geomspace(covered[0] * np.exp(END_TOLERANCE), covered[-1] * np.exp(-END_TOLERANCE), n_levels)


def _bootstrap_laws(losses, sizes, levels, per_token: ComputePerToken, n_bootstrap: int, seed: int, *,
                    min_covering: int, trim: bool) -> np.ndarray:
    """(k_n, a, b) of the envelope rebuilt from runs resampled with replacement, one row per draw with ≥ 2 sizes
    on its envelope (draws with fewer are skipped)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_bootstrap):
        subset = np.unique(rng.integers(0, len(sizes), len(sizes)))
        b_keep, b_win = _envelope(losses, sizes, subset, min_covering=min_covering, trim=trim)
        if b_keep.sum() >= 2 and len(np.unique(sizes[b_win[b_keep]])) >= 2:
            fit = fit_power_law(levels[b_keep], sizes[b_win[b_keep]])
            # D = C/f(N): under f = 6N, b = 1 − a within each draw; else the draw's own D law
            b = 1 - fit.p if per_token.is_6n else fit_power_law(
                levels[b_keep], per_token.tokens(levels[b_keep], sizes[b_win[b_keep]])).p
            samples.append((fit.k, fit.p, b))
    return np.array(samples).reshape(-1, 3)


def fit_envelope(
    curves: pd.DataFrame,
    *,
    n_levels: int = 60,
    min_covering_runs: int = 2,
    trim_boundary_sizes: bool = True,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    per_token: ComputePerToken | None = None,
    warn: bool = True,
) -> EnvelopeFit:
    """Approach 1: envelope of loss vs C = 6·N·tokens over all curves, then N_opt = k·C^a and D_opt = k'·C^b.

    curves: long format with run_id, N, tokens, loss (one row per evaluation), C_per_token where known.
    per_token: f, which turns a level into tokens (D = C / f(N)); None fits it to the curves' N and
    C_per_token (6·N without that column). The curve rows left out (`clean_curves`) are in `notes`, and
    warned of unless `warn` is False (`fit_all` reports the notes itself). Raises ValueError when fewer
    than 2 runs or 2 model sizes remain, or when no FLOP level is covered by `min_covering_runs` curves.
    """
    if n_levels < 3:
        raise ValueError(f"n_levels must be ≥ 3, got {n_levels}")
    if min_covering_runs < 1 or n_bootstrap < 0:
        raise ValueError(f"min_covering_runs must be ≥ 1 and n_bootstrap ≥ 0, got {min_covering_runs}, {n_bootstrap}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    cleaned = clean_curves(curves)
    for note in cleaned.notes if warn else ():
        warnings.warn(note, stacklevel=2)
    curves = cleaned.table
    if per_token is None:
        runs = curves.groupby("run_id").first()
        per_token = fit_compute_per_token(runs["N"], runs["C"] / runs["tokens"])
    if curves["run_id"].nunique() < 2 or curves["N"].nunique() < 2:
        raise ValueError(f"envelope: need ≥ 2 runs of ≥ 2 sizes, got {curves['run_id'].nunique()} run(s) "
                         f"of {curves['N'].nunique()} size(s)")
    levels = _flop_levels(curves, n_levels, min_covering_runs)
    losses, run_ids, sizes = _interpolated_losses(curves, levels)

    everyone = np.arange(len(run_ids))
    keep, winners = _envelope(losses, sizes, everyone, min_covering=min_covering_runs, trim=trim_boundary_sizes)
    nan_pair = (math.nan, math.nan)
    if keep.sum() < 2 or len(np.unique(sizes[winners[keep]])) < 2:
        message = (f"envelope: {int(keep.sum())} level(s) kept after trimming, won by "
                   f"{len(np.unique(sizes[winners[keep]]))} size(s); need ≥ 2 sizes on the envelope")
        return EnvelopeFit(levels[keep], sizes[winners[keep]], per_token.tokens(levels[keep], sizes[winners[keep]]),
                           losses[winners[keep], np.flatnonzero(keep)], tuple(run_ids[i] for i in winners[keep]),
                           None, None, math.nan, nan_pair, math.nan, nan_pair, math.nan, math.nan,
                           np.empty((0, 2)), level, False, message, per_token=per_token, notes=cleaned.notes)
    used, win = levels[keep], winners[keep]
    n_points, d_points = sizes[win], per_token.tokens(used, sizes[win])
    n_law, d_law = fit_power_law(used, n_points), fit_power_law(used, d_points)

    samples = _bootstrap_laws(losses, sizes, levels, per_token, n_bootstrap, seed,
                              min_covering=min_covering_runs, trim=trim_boundary_sizes)
    notes = [f"{len(used)} of {n_levels} levels from {len(np.unique(n_points))} sizes on the envelope"]
    if n_bootstrap and len(samples) < n_bootstrap:
        notes.append(f"{n_bootstrap - len(samples)} bootstrap draw(s) with < 2 sizes on the envelope skipped")
    a_interval = percentile_interval(samples[:, 1], level) if len(samples) else nan_pair
    b_interval = percentile_interval(samples[:, 2], level) if len(samples) else nan_pair
    samples = samples[:, :2]  # law_samples: (k_n, a)
    return EnvelopeFit(
        levels=used, n_opt_points=n_points, d_opt_points=d_points, loss=losses[win, np.flatnonzero(keep)],
        run_ids=tuple(run_ids[i] for i in win), n_law=n_law, d_law=d_law, a=float(n_law.p), a_interval=a_interval,
        b=float(d_law.p), b_interval=b_interval, k_n=float(n_law.k), k_d=float(d_law.k), law_samples=samples,
        level=level, success=True, message="; ".join(notes), per_token=per_token, notes=cleaned.notes,
    )
