"""Plots draw fitted results without fitting: save_all_plots writes a non-empty PNG and SVG for every figure
the study supports, leaves no figure open, and skips figures whose results are missing."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis import plots  # noqa: E402
from analysis.parametric import CHINCHILLA_2022, compute_optimal  # noqa: E402
from analysis.simulate import HyperparamAxis, simulate_curves, simulate_runs  # noqa: E402
from analysis.study_fit import fit_all  # noqa: E402

BUDGETS = np.geomspace(1e17, 1e19, 4)
ALL_FIGURES = {"isoflop_profiles", "envelope", "loss_vs_compute", "optimal_allocation", "isoloss_contours",
               "predicted_vs_actual", "lr_law"}


@pytest.fixture(scope="module")
def study():
    lr = HyperparamAxis(name="lr", k=0.3, p=-0.1, n_points=3, span=4.0)
    runs = simulate_runs(budgets=BUDGETS, n_per_budget=7, noise=0.005, hyperparams=(lr,))
    runs.loc[3, "loss"] += 0.5  # one broken run, to draw an excluded point
    curves = simulate_curves(runs, n_points=10, noise=0.002)
    return runs, curves, fit_all(runs, curves, n_bootstrap=20)


def test_save_all_plots_writes_png_and_svg_for_each_kind(study, tmp_path):
    """One PNG and one SVG per figure kind, each a real image file of non-trivial size; no figure left open."""
    runs, curves, fit = study
    paths = plots.save_all_plots(fit, runs, curves, tmp_path / "figures")
    names = {p.stem for p in paths}
    assert names == ALL_FIGURES
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 5_000, path
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert path.suffix == ".svg" and b"<svg" in data[:2_000]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(p.name for p in paths)
    assert plt.get_fignums() == []


def test_figures_without_results_are_skipped(study, tmp_path):
    """Without curves, Approach 3 and an lr law, only the figures their results support are written."""
    runs, _, _ = study
    plain = runs.drop(columns="lr").drop_duplicates(["budget", "N"])
    fit = fit_all(plain, None, approaches=(2,), n_bootstrap=20, holdout=())
    names = {p.stem for p in plots.save_all_plots(fit, plain, None, tmp_path)}
    assert names == {"isoflop_profiles", "loss_vs_compute", "optimal_allocation"}


def test_isoflop_plot_draws_a_parabola_per_budget_and_labels_units(study):
    """One fitted curve per budget, a legend entry per budget, log N axis, units in the labels."""
    runs, _, fit = study
    ax = plots.plot_isoflop_profiles(runs, fit.approach2)
    n_budgets = len(fit.approach2.profiles)
    assert len([line for line in ax.get_lines() if len(line.get_xdata()) == 100]) == n_budgets
    assert ax.get_xscale() == "log"
    assert "parameters" in ax.get_xlabel() and "nats/token" in ax.get_ylabel()
    assert sum("FLOPs" in t.get_text() for t in ax.get_legend().get_texts()) == n_budgets
    plt.close(ax.figure)


def test_allocation_plot_has_every_approach_and_chinchilla_reference(study):
    """N_opt vs C shows Approaches 1–3 and Chinchilla's published line, on log-log axes drawn into the Axes given."""
    runs, _, fit = study
    figure, ax = plt.subplots()
    assert plots.plot_n_opt(runs, fit, ax=ax) is ax
    labels = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    for name in ("Approach 1", "Approach 2", "Approach 3", "Chinchilla published (Hoffmann et al. 2022"):
        assert name in labels
    assert ax.get_xscale() == ax.get_yscale() == "log"
    plt.close(figure)


def test_chinchilla_reference_line_matches_published_allocation():
    """The reference line is the allocation implied by Hoffmann et al.'s published Approach-3 parameters, as
    `parametric.compute_optimal` computes it (≈ 32B parameters at Chinchilla's 5.76e23 FLOPs: Approach 3
    favours smaller models than the 70B that Approaches 1 and 2 led to)."""
    compute = np.geomspace(1e18, 1e25, 8)
    n_opt, _ = compute_optimal(CHINCHILLA_2022, compute)
    assert np.allclose(plots.chinchilla_n_opt(compute), n_opt, rtol=1e-12)
    assert plots.chinchilla_n_opt(5.76e23) == pytest.approx(3.2e10, rel=0.05)


def _single_bars(ax) -> list[np.ndarray]:
    """The (2, 2) end points of every one-segment error bar drawn on `ax`."""
    from matplotlib.collections import LineCollection

    return [c.get_segments()[0] for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments()) == 1]


def test_validation_runs_are_drawn_with_their_intervals(study):
    """Validation runs appear on loss-against-compute (actual star, headline prediction with its interval) and on
    predicted-against-actual (each predictor's prediction with its interval as a horizontal bar)."""
    from analysis.prediction import Estimate
    from analysis.validation import ValidationPoint

    runs, _, fit = study
    C, N = 4 * BUDGETS[-1], 3e9
    predicted = (("frontier", Estimate(2.0, (1.9, 2.1))), ("approach3", Estimate(2.05, (1.95, 2.2))))
    point = ValidationPoint(compute=C, N=int(N), D=int(C / (6 * N)), actual=2.02, predicted=predicted,
                            headline="approach3")
    ax = plots.plot_loss_vs_compute(runs, fit, validation=[point])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "validation: actual" in labels and "validation: predicted (Approach 3), interval" in labels
    vertical = [sorted(s[:, 1]) for s in _single_bars(ax) if np.allclose(s[:, 0], C)]
    assert np.allclose(vertical, [[1.95, 2.2]])  # the headline's interval at the run's compute
    plt.close(ax.figure)
    ax = plots.plot_predicted_vs_actual(runs, fit, validation=[point])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "validation, loss frontier" in labels and "validation, Approach 3" in labels
    horizontal = sorted(sorted(s[:, 0]) for s in _single_bars(ax) if np.allclose(s[:, 1], 2.02))
    assert np.allclose(horizontal, [[1.9, 2.1], [1.95, 2.2]])
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="headline"):
        ValidationPoint(compute=C, N=1, D=1, actual=2.0, predicted=predicted[:1], headline="approach3")
