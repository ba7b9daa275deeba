"""Figures of a fitted study: thin functions `plot_x(data, fit, *, ax=None) -> Axes`, and `save_all_plots`.

A plot never fits and never shows: it draws results already computed (an `IsoFlopFit`, a `StudyFit`, ...)
on the Axes given (or a new one) and returns it. `save_all_plots` lays the figures out and writes each as
PNG and SVG, atomically (temp file in the same folder, then os.replace).

Conventions: matplotlib's Agg backend (no display needed); log axes for FLOPs, parameters, tokens and
loss; units in every axis label; the Okabe–Ito palette (Okabe & Ito 2008), which stays distinct under
the common colour-vision deficiencies, one fixed colour per approach; sequential data in cividis.
Chinchilla's published fit (Hoffmann et al. 2022, Approach 3: E=1.69, A=406.4, B=410.7, α=0.34, β=0.28)
is drawn for reference on the allocation plots; its N counts non-embedding parameters on MassiveText, so
it is a yardstick for the slope, not a target for the intercept.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import atomicio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from analysis.hyperparams import best_per_cell  # noqa: E402
from analysis.isoflop import prepare_table  # noqa: E402
from analysis.kaplan import compute_frontier  # noqa: E402
from analysis.prediction import APPROACH_NAMES, allocation_from_n_opt, tokens_at  # noqa: E402
from analysis.wsd_lines import trunk_lines  # noqa: E402

if TYPE_CHECKING:
    from typing import Sequence

    from analysis.envelope import EnvelopeFit
    from analysis.hyperparams import HyperparamFit
    from analysis.isoflop import IsoFlopFit
    from analysis.study_fit import StudyFit
    from analysis.validation import ValidationPoint
    from analysis.wsd_lines import TrunkLine

OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
APPROACH_COLOURS = {1: OKABE_ITO["orange"], 2: OKABE_ITO["blue"], 3: OKABE_ITO["vermillion"]}
SERIES = [OKABE_ITO[c] for c in ("blue", "orange", "green", "vermillion", "purple", "sky_blue", "black")]
# Hoffmann et al. (2022), Approach 3 fit (their eq. 10 and Table A3).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
# DeepSeek-AI (2024), §3.1: η_opt = 0.3118·C^−0.1250 (C in their FLOPs).
DEEPSEEK_LR = (0.3118, -0.1250)
LOSS_LABEL = "final validation loss (nats/token)"
EXTEND = 100.0  # predictions run to 100× the largest budget
PREDICTOR_COLOURS = {"frontier": APPROACH_COLOURS[2], "approach3": APPROACH_COLOURS[3]}
PREDICTOR_LABELS = {"frontier": "loss frontier", "approach3": "Approach 3"}


def chinchilla_n_opt(compute) -> np.ndarray:
    """N_opt(C) under Chinchilla's published parameters: G·(C/6)^(β/(α+β)), G = (αA/(βB))^(1/(α+β))."""
    p = CHINCHILLA
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return g * (np.asarray(compute, dtype=float) / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))


def _axes(ax: Axes | None) -> Axes:
    return ax if ax is not None else plt.figure(figsize=(6.4, 4.8)).add_subplot()


def _series_colour(i: int, n: int):
    return SERIES[i % len(SERIES)] if n <= len(SERIES) else plt.get_cmap("cividis")(i / max(n - 1, 1))


def _compute_range(runs: pd.DataFrame, lowest: float | None = None, n: int = 120) -> np.ndarray:
    """Log-spaced C from the smallest run's C (or `lowest`, if smaller) to EXTEND × the largest."""
    c = runs["C"].to_numpy(float)
    return np.geomspace(min(c.min(), lowest or np.inf), EXTEND * c.max(), n)


def _log_loss_axis(ax: Axes) -> None:
    """Log-scale loss axis labelled with plain numbers (3.0, 3.5) rather than 3×10⁰."""
    ax.set_yscale("log")
    plain = matplotlib.ticker.FormatStrFormatter("%.1f")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)


def _power(x: float) -> str:
    """1e+18 as mathtext 10^18, 3.2e+17 as 3.2×10^17."""
    mantissa, exponent = f"{x:.1e}".split("e")
    exponent = int(exponent)
    return f"$10^{{{exponent}}}$" if mantissa == "1.0" else f"${mantissa}\\times10^{{{exponent}}}$"


def plot_isoflop_profiles(runs: pd.DataFrame, fit: IsoFlopFit, *, ax: Axes | None = None) -> Axes:
    """Loss against N per budget, the fitted parabolas and their minima (with N* intervals).

    Budgets left out of the power law are drawn dashed with hollow markers; a dropped outlier is an ×.
    """
    ax = _axes(ax)
    for i, profile in enumerate(fit.profiles):
        colour = _series_colour(i, len(fit.profiles))
        label = f"C = {_power(profile.budget)} FLOPs" + ("" if profile.included else f" ({profile.status}, excluded)")
        dropped = profile.window & ~profile.fitted if profile.parabola is not None else np.zeros(len(profile.n), bool)
        if dropped.any():
            ax.scatter(profile.n[dropped], profile.loss[dropped], marker="x", s=50, color=colour, zorder=3)
        ax.scatter(profile.n[~dropped], profile.loss[~dropped], s=22, zorder=3, label=label,
                   facecolors=colour if profile.included else "none", edgecolors=colour)
        if profile.parabola is None:
            continue
        # the parabola is drawn over the window it was fitted to (the runs around the lowest one)
        grid = np.linspace(np.log(profile.n[profile.window].min()), np.log(profile.n[profile.window].max()), 100)
        ax.plot(np.exp(grid), profile.parabola(grid), color=colour, lw=1.2, ls="-" if profile.included else "--")
        if profile.included:
            lo, hi = profile.n_opt_interval
            ax.errorbar([profile.n_opt], [profile.loss_opt], xerr=[[profile.n_opt - lo], [hi - profile.n_opt]],
                        fmt="D", ms=6, color=colour, mec="black", mew=0.6, capsize=3, zorder=4)
    ax.plot([], [], "D", color="grey", mec="black", mew=0.6, label="minimum N* (interval)")
    if any(p.dropped_run_id for p in fit.profiles):
        ax.plot([], [], "x", color="grey", label="outlier dropped")
    ax.set_xscale("log")
    ax.set_xlabel("model size N (parameters)")
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("IsoFLOP profiles (Approach 2)")
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def plot_envelope(curves: pd.DataFrame, fit: EnvelopeFit, *, ax: Axes | None = None) -> Axes:
    """Every training curve (loss vs C = f(N)·tokens, f its run's C/D, else 6·N; coloured by N) and the envelope
    points used by Approach 1."""
    ax = _axes(ax)
    sizes = np.log(curves["N"].to_numpy(float))
    lo, hi = sizes.min(), max(sizes.max(), sizes.min() + 1e-9)
    cmap = plt.get_cmap("cividis")
    for _, curve in curves.groupby("run_id"):
        curve = curve.sort_values("tokens")
        shade = (np.log(float(curve["N"].iloc[0])) - lo) / (hi - lo)
        per_token = curve["C_per_token"].to_numpy(float) if "C_per_token" in curve.columns else np.full(len(curve), np.nan)
        per_token = np.where(np.isfinite(per_token), per_token, 6.0 * curve["N"].to_numpy(float))
        compute = per_token * curve["tokens"].to_numpy(float)  # float: 6·N·D > int64
        ax.plot(compute, curve["loss"], color=cmap(shade), lw=0.7, alpha=0.6)
    ax.scatter(fit.levels, fit.loss, s=14, color=APPROACH_COLOURS[1], edgecolors="black", linewidths=0.4,
               zorder=3, label="envelope (minimum over runs)")
    _finish_curves(ax, cmap, lo, hi, xlabel="compute C = 6·N·tokens (FLOPs)", ylabel="training loss (nats/token)",
                   title="Training curves and their envelope (Approach 1)")
    return ax


def plot_wsd_lines(lines: Sequence[TrunkLine], *, ax: Axes | None = None) -> Axes:
    """A WSD sweep's trunks (validation loss against tokens, one line per model, coloured by N) with each
    branch's cooldown (dashed, from its branch point) and its end, the point the fits use (a ring)."""
    if not lines:
        raise ValueError("lines: no WSD trunk line to draw (the table has no branch rows with curves)")
    ax = _axes(ax)
    sizes = np.log([line.N for line in lines])
    lo, hi = sizes.min(), max(sizes.max(), sizes.min() + 1e-9)
    cmap = plt.get_cmap("cividis")
    for line, size in zip(lines, sizes):
        colour = cmap((size - lo) / (hi - lo))
        ax.plot(line.tokens, line.val_loss, color=colour, lw=1.2, gid="trunk")
        for branch in line.branches:
            ax.plot(branch.tokens, branch.val_loss, color=colour, lw=0.9, ls="--", gid="cooldown")
        ax.scatter([b.D for b in line.branches], [b.loss for b in line.branches], s=26, facecolors="white",
                   edgecolors=[colour], linewidths=1.2, zorder=3, gid="branch_ends")
    ax.plot([], [], color="grey", lw=1.2, label="trunk (stable learning rate)")
    ax.plot([], [], color="grey", lw=0.9, ls="--", label="cooldown branch")
    ax.scatter([], [], s=26, facecolors="white", edgecolors="grey", label="branch end (a fitted run)")
    _finish_curves(ax, cmap, lo, hi, xlabel="training tokens D", ylabel="validation loss (nats/token)",
                   title="WSD trunks and their cooldown branches")
    return ax


def _finish_curves(ax: Axes, cmap, lo: float, hi: float, *, xlabel: str, ylabel: str, title: str) -> None:
    """Loss curves coloured by size: the size colour bar, log axes, labels and the legend."""
    _size_colourbar(ax, cmap, lo, hi)
    ax.set_xscale("log")
    _log_loss_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)


def _size_colourbar(ax: Axes, cmap, lo: float, hi: float) -> None:
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.LogNorm(np.exp(lo), np.exp(hi)))
    ax.figure.colorbar(mappable, ax=ax, label="model size N (parameters)")


def _errorbar(ax: Axes, x, y, *, xerr=None, yerr=None, **style) -> None:
    """One point with its interval as an error bar; `xerr`/`yerr` an interval (lo, hi) around x or y."""
    bars = {}
    for name, centre, interval in (("xerr", x, xerr), ("yerr", y, yerr)):
        if interval is not None and all(np.isfinite(interval)):
            bars[name] = [[centre - interval[0]], [interval[1] - centre]]
    ax.errorbar([x], [y], capsize=3, zorder=5, **bars, **style)


def _plot_validation_on_compute(ax: Axes, validation: Sequence[ValidationPoint]) -> None:
    """Each validation run's actual loss (a star) and its headline prediction with the interval beside it."""
    for i, v in enumerate(validation):
        if v.headline is not None:
            predicted = v.estimate(v.headline)
            _errorbar(ax, v.compute, predicted.value, yerr=predicted.interval, fmt="o", mfc="none", ms=7,
                      color=PREDICTOR_COLOURS[v.headline],
                      label=f"validation: predicted ({PREDICTOR_LABELS[v.headline]}), interval" if i == 0 else None)
        ax.scatter([v.compute], [v.actual], marker="*", s=140, color=OKABE_ITO["black"], zorder=6,
                   label="validation: actual" if i == 0 else None)


def plot_loss_vs_compute(runs: pd.DataFrame, fit: StudyFit, *, validation: Sequence[ValidationPoint] = (),
                         ax: Axes | None = None) -> Axes:
    """Final loss of every run against C, the compute frontier, Approach 3's loss at the compute-optimal
    allocation and the loss frontier through Approach 2's minima, extended to 100× the largest budget, with
    their interval bands; and the validation runs, each with the headline's prediction and interval."""
    ax = _axes(ax)
    n = runs["N"].to_numpy(float)
    cmap = plt.get_cmap("cividis")
    ax.scatter(runs["C"], runs["loss"], c=np.log(n), cmap=cmap, s=18, zorder=3, label="runs")
    frontier = compute_frontier(runs)
    ax.step(frontier["C"], frontier["loss"], where="post", color=OKABE_ITO["black"], lw=1.0, label="compute frontier")
    prediction = fit.loss_at_optimum(_compute_range(runs))
    if prediction is not None:
        compute, loss, lo, hi = prediction
        ax.plot(compute, loss, color=APPROACH_COLOURS[3], lw=1.5, label="Approach 3 at N_opt(C)")
        if np.isfinite(lo).any():
            ax.fill_between(compute, lo, hi, color=APPROACH_COLOURS[3], alpha=0.2, lw=0,
                            label=f"{fit.level:.0%} interval")
    if fit.frontier is not None:
        compute = _compute_range(runs)
        bands = np.array([fit.frontier.loss_at_optimum_interval(c) for c in compute])
        ax.plot(compute, fit.frontier.loss_at_optimum(compute), color=APPROACH_COLOURS[2], lw=1.5, ls="--",
                label="loss frontier (Approach 2 minima)")
        if np.isfinite(bands).any():
            ax.fill_between(compute, bands[:, 0], bands[:, 1], color=APPROACH_COLOURS[2], alpha=0.15, lw=0)
    ax.axvline(runs["C"].max(), color="grey", lw=0.8, ls=":", label="largest budget")
    _plot_validation_on_compute(ax, validation)
    _size_colourbar(ax, cmap, np.log(n.min()), max(np.log(n.max()), np.log(n.min()) + 1e-9))
    ax.set_xscale("log")
    _log_loss_axis(ax)
    ax.set_xlabel("compute C = 6·N·D (FLOPs)")
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("Loss against compute")
    ax.legend(fontsize="small", frameon=False)
    return ax


def _plot_allocation(runs: pd.DataFrame, fit: StudyFit, ax: Axes | None, what: str) -> Axes:
    ax = _axes(ax)
    envelope = fit.approach1 if fit.approach1 is not None and fit.approach1.success else None
    compute = _compute_range(runs, envelope.levels.min() if envelope is not None else None)
    key = "n_opt" if what == "N" else "d_opt"
    for approach, result in ((1, fit.approach1), (2, fit.approach2)):
        if result is None or not result.success:
            continue
        line = result.n_opt(compute) if what == "N" else result.d_opt(compute)
        ax.plot(compute, line, color=APPROACH_COLOURS[approach], lw=1.4,
                label=f"{APPROACH_NAMES['approach' + str(approach)]}: ${what}_{{opt}} \\propto C^{{{result.a if what == 'N' else result.b:.3f}}}$")
    if fit.approach1 is not None and fit.approach1.success:
        points = fit.approach1.n_opt_points if what == "N" else fit.approach1.d_opt_points
        ax.scatter(fit.approach1.levels, points, s=8, color=APPROACH_COLOURS[1], alpha=0.6,
                   label="Approach 1: envelope points")
    if fit.approach2 is not None and fit.approach2.success:
        used = [p for p in fit.approach2.profiles if p.included]
        estimates = [getattr(allocation_from_n_opt("approach2", p.budget, p.n_opt, p.n_opt_interval,
                                                   per_token=fit.per_token),
                             "n_opt" if what == "N" else "d_opt") for p in used]
        values = np.array([e.value for e in estimates])
        bounds = np.array([e.interval for e in estimates])
        ax.errorbar([p.budget for p in used], values, yerr=[values - bounds[:, 0], bounds[:, 1] - values],
                    fmt="o", ms=5, color=APPROACH_COLOURS[2], capsize=3, label="Approach 2: budget minima")
    band = fit.allocation_band(compute, key)
    if band is not None:
        mid, lo, hi = band
        exponent = fit.exponents().get(3, {}).get("a" if what == "N" else "b", float("nan"))
        ax.plot(compute, mid, color=APPROACH_COLOURS[3], lw=1.4,
                label=f"{APPROACH_NAMES['approach3']}: ${what}_{{opt}} \\propto C^{{{exponent:.3f}}}$")
        if np.isfinite(lo).any():
            ax.fill_between(compute, lo, hi, color=APPROACH_COLOURS[3], alpha=0.2, lw=0)
    chinchilla = chinchilla_n_opt(compute)
    # Hoffmann et al. counted C = 6·N·D: their line stays under that convention
    ax.plot(compute, chinchilla if what == "N" else tokens_at(compute, chinchilla), color=OKABE_ITO["black"],
            ls="--", lw=1.0, label="Chinchilla published (Hoffmann et al. 2022, Approach 3)")
    ax.axvline(runs["C"].max(), color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel("compute-optimal model size N_opt (parameters)" if what == "N" else
                  "compute-optimal data D_opt (tokens)")
    ax.set_title(f"Compute-optimal {'model size' if what == 'N' else 'training tokens'}")
    ax.legend(fontsize="x-small", frameon=False)
    return ax


def plot_n_opt(runs: pd.DataFrame, fit: StudyFit, *, ax: Axes | None = None) -> Axes:
    """N_opt against C from each approach fitted, with Chinchilla's published line for reference."""
    return _plot_allocation(runs, fit, ax, "N")


def plot_d_opt(runs: pd.DataFrame, fit: StudyFit, *, ax: Axes | None = None) -> Axes:
    """D_opt against C from each approach fitted, with Chinchilla's published line for reference."""
    return _plot_allocation(runs, fit, ax, "D")


def plot_isoloss_contours(runs: pd.DataFrame, fit: StudyFit, *, ax: Axes | None = None) -> Axes:
    """Approach 3's loss L(N, D = C/f(N)) as contours in the (C, N) plane, the runs, and the efficient frontier."""
    ax = _axes(ax)
    compute = np.geomspace(runs["C"].min() / 3, EXTEND * runs["C"].max(), 160)
    band = fit.allocation_band(compute[[0, -1]], "n_opt")
    top = max(runs["N"].max(), band[0][-1] if band is not None else 0) * 5
    sizes = np.geomspace(runs["N"].min() / 3, top, 160)
    grid_c, grid_n = np.meshgrid(compute, sizes)
    loss = fit.predict_loss(grid_n, fit.per_token.tokens(grid_c, grid_n))
    finite = loss[np.isfinite(loss)]
    levels = matplotlib.ticker.MaxNLocator(12).tick_values(finite.min(), np.quantile(finite, 0.85))
    filled = ax.contourf(grid_c, grid_n, loss, levels=levels, cmap="cividis", alpha=0.85, extend="both")
    lines = ax.contour(grid_c, grid_n, loss, levels=levels, colors="white", linewidths=0.5)
    ax.clabel(lines, fmt="%.2f", fontsize="x-small", inline_spacing=2)
    ax.figure.colorbar(filled, ax=ax, label="predicted loss (nats/token)")
    ax.scatter(runs["C"], runs["N"], s=10, color=OKABE_ITO["black"], label="runs")
    band = fit.allocation_band(compute, "n_opt")
    if band is not None:
        ax.plot(compute, band[0], color=APPROACH_COLOURS[3], lw=2, label="efficient frontier N_opt(C)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(compute[0], compute[-1])
    ax.set_ylim(sizes[0], sizes[-1])
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel("model size N (parameters)")
    ax.set_title("Iso-loss contours (Approach 3)")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def plot_hyperparam_law(fit: HyperparamFit, *, ax: Axes | None = None) -> Axes:
    """Each cell's best value against C (flagged cells hollow), the fitted law with its band, DeepSeek's line
    for the learning rate."""
    ax = _axes(ax)
    ok = [c for c in fit.cells if c.status == "ok"]
    flagged = [c for c in fit.cells if c.status != "ok"]
    ax.scatter([c.compute for c in ok], [c.optimum for c in ok], s=24, color=OKABE_ITO["blue"], label="cell optimum")
    if flagged:
        ax.scatter([c.compute for c in flagged], [c.optimum for c in flagged], s=24, facecolors="none",
                   edgecolors=OKABE_ITO["blue"], label="clamped / downward (excluded)")
    compute = np.geomspace(min(c.compute for c in fit.cells), EXTEND * max(c.compute for c in fit.cells), 100)
    if fit.success:
        ax.plot(compute, fit.predict(compute), color=OKABE_ITO["vermillion"], lw=1.5,
                label=f"fit: ${fit.k:.3g}\\,C^{{{fit.p:.3f}}}$")
        bounds = np.array([fit.interval(c) for c in compute])
        if np.isfinite(bounds).all():
            ax.fill_between(compute, bounds[:, 0], bounds[:, 1], color=OKABE_ITO["vermillion"], alpha=0.2, lw=0)
    if fit.column == "lr":
        k, p = DEEPSEEK_LR
        ax.plot(compute, k * compute**p, color=OKABE_ITO["black"], ls="--", lw=1.0,
                label=f"DeepSeek LLM 2024: ${k}\\,C^{{{p}}}$ (their setup)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel("optimal learning rate" if fit.column == "lr" else "optimal batch size (sequences)")
    ax.set_title(f"Compute-optimal {'learning rate' if fit.column == 'lr' else 'batch size'}")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_predicted_vs_actual(runs: pd.DataFrame, fit: StudyFit, *, validation: Sequence[ValidationPoint] = (),
                             ax: Axes | None = None) -> Axes:
    """Approach 3's predicted loss against the actual loss; held-out runs of the backtest (predicted by the fit
    without them) marked with their intervals; the validation runs with every predictor's prediction (fixed
    before they trained) and its interval."""
    ax = _axes(ax)
    predicted = fit.predict_loss(runs["N"].to_numpy(float), runs["D"].to_numpy(float))
    ax.scatter(predicted, runs["loss"], s=16, color=OKABE_ITO["blue"], label="runs (fit on all)")
    held = fit.backtest.loss_predictions if fit.backtest is not None else ()
    if held:
        mid = np.array([h.predicted for h in held])
        lo, hi = np.array([h.interval[0] for h in held]), np.array([h.interval[1] for h in held])
        ax.errorbar(mid, [h.actual for h in held], xerr=[mid - lo, hi - mid], fmt="D", ms=6, capsize=3,
                    color=OKABE_ITO["vermillion"], label="held out (fit without them)")
    shown = [*predicted[np.isfinite(predicted)], *runs["loss"]]
    labelled = set()
    for v in validation:
        for name, estimate in v.predicted:
            _errorbar(ax, estimate.value, v.actual, xerr=estimate.interval, fmt="*", ms=13, color=PREDICTOR_COLOURS[name],
                      label=None if name in labelled else f"validation, {PREDICTOR_LABELS[name]}")
            labelled.add(name)
            shown += [estimate.value, v.actual]
    span = np.array([min(shown), max(shown)])
    ax.plot(span, span, color="grey", lw=0.8, ls="--", label="predicted = actual")
    ax.set_xlabel("predicted loss (nats/token)")
    ax.set_ylabel("actual " + LOSS_LABEL)
    ax.set_title("Predicted against actual (runs: Approach 3)")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_residuals(runs: pd.DataFrame, fit: StudyFit, *, ax: Axes | None = None) -> Axes:
    """Actual − predicted loss (Approach 3) against C; held-out runs marked."""
    ax = _axes(ax)
    predicted = fit.predict_loss(runs["N"].to_numpy(float), runs["D"].to_numpy(float))
    ax.scatter(runs["C"], runs["loss"] - predicted, s=16, color=OKABE_ITO["blue"], label="runs (fit on all)")
    held = fit.backtest.loss_predictions if fit.backtest is not None else ()
    if held:
        ax.scatter([h.compute for h in held], [h.actual - h.predicted for h in held], marker="D", s=30,
                   color=OKABE_ITO["vermillion"], label="held out (fit without them)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel("actual − predicted loss (nats/token)")
    ax.set_title("Residuals")
    ax.legend(fontsize="small", frameon=False)
    return ax


def _save(figure, out_dir: Path, name: str) -> list[Path]:
    """Write figure as name.png and name.svg atomically; close it."""
    paths = []
    for suffix in ("png", "svg"):
        target = out_dir / f"{name}.{suffix}"
        with atomicio.writing(target) as stream:
            figure.savefig(stream, format=suffix, dpi=150, bbox_inches="tight")
        paths.append(target)
    plt.close(figure)
    return paths


def save_all_plots(study_fit: StudyFit, runs: pd.DataFrame, curves: pd.DataFrame | None, out_dir, *,
                   validation: Sequence[ValidationPoint] = ()) -> list[Path]:
    """Draw every figure the study's results support and write each as PNG and SVG into out_dir.

    Figures: isoflop_profiles (Approach 2), envelope (Approach 1, with curves), wsd_trunks (a WSD sweep's
    trunks with their branches, with curves: analysis/wsd_lines.py), loss_vs_compute,
    optimal_allocation (N_opt and D_opt), isoloss_contours (Approach 3), lr_law and batch_size_law (when
    fitted), predicted_vs_actual (with residuals). The validation runs, where given, are drawn on
    loss_vs_compute and predicted_vs_actual with their prediction intervals. A figure whose result is
    missing is not drawn. Runs are cleaned as the fit cleaned them (best run per (budget, N) over
    hyperparameter axes). Returns the paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = trunk_lines(runs, curves)  # a WSD sweep's, over every lr (before the best per cell is kept)
    # the quiet cleaning: the fit's result already names the runs it excluded
    runs = best_per_cell(prepare_table(runs, ("N", "D", "loss"), what="plots").table)
    paths: list[Path] = []

    def single(name, draw, size=(7.0, 5.0)):
        figure = plt.figure(figsize=size)
        draw(figure.add_subplot())
        paths.extend(_save(figure, out_dir, name))

    def pair(name, draw_left, draw_right):
        figure, (left, right) = plt.subplots(1, 2, figsize=(13.0, 5.0))
        draw_left(left)
        draw_right(right)
        paths.extend(_save(figure, out_dir, name))

    if study_fit.approach2 is not None:
        single("isoflop_profiles", lambda ax: plot_isoflop_profiles(runs, study_fit.approach2, ax=ax))
    if study_fit.approach1 is not None and curves is not None:
        single("envelope", lambda ax: plot_envelope(curves, study_fit.approach1, ax=ax))
    if lines:
        single("wsd_trunks", lambda ax: plot_wsd_lines(lines, ax=ax))
    single("loss_vs_compute", lambda ax: plot_loss_vs_compute(runs, study_fit, validation=validation, ax=ax))
    pair("optimal_allocation", lambda ax: plot_n_opt(runs, study_fit, ax=ax),
         lambda ax: plot_d_opt(runs, study_fit, ax=ax))
    if study_fit.has_parametric:
        single("isoloss_contours", lambda ax: plot_isoloss_contours(runs, study_fit, ax=ax))
        pair("predicted_vs_actual", lambda ax: plot_predicted_vs_actual(runs, study_fit, validation=validation, ax=ax),
             lambda ax: plot_residuals(runs, study_fit, ax=ax))
    for law in (study_fit.lr_law, study_fit.batch_law):
        if law is not None:
            single(f"{law.column}_law", lambda ax, law=law: plot_hyperparam_law(law, ax=ax))
    return paths
