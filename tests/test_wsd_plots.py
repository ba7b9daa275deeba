"""Plots of a WSD sweep: from a real store of tiny trunks and branches, one line per trunk with its branches'
cooldowns and end points; a table without branches draws none (tests/test_analysis_plots.py: its figures)."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis import plots  # noqa: E402
from analysis.simulate import simulate_curves, simulate_runs  # noqa: E402
from analysis.study_fit import fit_all  # noqa: E402
from analysis.table import load_curves, load_table  # noqa: E402
from analysis.wsd_lines import trunk_lines  # noqa: E402
from experiments.runner import run_experiment  # noqa: E402
from experiments.spec import ExperimentSpec  # noqa: E402
from experiments.wsd import branch_of, final_checkpoint, trunk_of  # noqa: E402

STEPS = (40, 60)  # two branches per trunk line: cooldowns from steps 32 and 48
WIDTHS = (16, 24)  # two trunk lines


def wsd_spec(steps: int, d_model: int) -> ExperimentSpec:
    """A 1-layer WSD run of 8-dim heads, `steps` steps on the session corpus (tests/conftest.py)."""
    return ExperimentSpec(n_layers=1, d_model=d_model, n_heads=d_model // 8, tokens=steps * 8 * 32, batch_size=8,
                          context_length=32, lr=1e-2, schedule="wsd", warmup_steps=4, cooldown_fraction=0.2,
                          cooldown_shape="1-sqrt", eval_tokens=1024, corpus_source="stdlib", vocab_size=512,
                          corpus_max_bytes=400_000)


@pytest.fixture(scope="module")
def wsd_store(stdlib_corpus, tmp_path_factory):
    """Each line: a trunk to 32 steps, a second trunk from it to 48, and a branch off each."""
    store = tmp_path_factory.mktemp("wsd-plots") / "store"
    kw = dict(store=store, corpus_path=stdlib_corpus.path, sweep="wsd", threads=1, device="cpu", peak_flops=1e11)
    for width in WIDTHS:
        previous = None
        for steps in STEPS:
            trunk = trunk_of(wsd_spec(steps, width))
            start = None if previous is None else final_checkpoint(store, previous.run_id, previous.steps)
            run_experiment(trunk, start_from=start, **kw)
            run_experiment(branch_of(wsd_spec(steps, width)), **kw)
            previous = trunk
    return load_table(store).table, load_curves(store).table  # the trunks excluded by name, in the notes


def test_each_trunk_line_holds_its_branches_cooldowns_and_ends(wsd_store):
    runs, curves = wsd_store
    lines = trunk_lines(runs, curves)
    assert len(lines) == len(WIDTHS) and lines[0].N < lines[1].N
    for line in lines:
        assert [b.branch_tokens for b in line.branches] == [32 * 256, 48 * 256]
        assert [b.D for b in line.branches] == [s * 256 for s in STEPS]
        assert line.tokens.max() == 48 * 256 and np.all(np.diff(line.tokens) > 0)  # the trunk to its last step
        for branch in line.branches:
            row = runs.set_index("run_id").loc[branch.run_id]
            assert branch.loss == row["loss"] and branch.val_loss[-1] == row["loss"]  # the end is the fitted point
            assert branch.tokens[0] == branch.branch_tokens and branch.tokens[-1] == branch.D
            # the cooldown leaves the trunk where the trunk was last evaluated
            assert branch.val_loss[0] == line.val_loss[line.tokens == branch.branch_tokens][0]


def test_the_figure_has_one_line_per_trunk_and_a_marker_per_branch(wsd_store):
    runs, curves = wsd_store
    lines = trunk_lines(runs, curves)
    ax = plots.plot_wsd_lines(lines)
    drawn = [a for a in ax.get_lines() if a.get_gid() == "trunk"]
    assert len(drawn) == len(lines)
    assert len([a for a in ax.get_lines() if a.get_gid() == "cooldown"]) == len(runs)
    ends = np.concatenate([c.get_offsets() for c in ax.collections if c.get_gid() == "branch_ends"])
    assert sorted(map(tuple, ends)) == sorted(zip(runs["D"].astype(float), runs["loss"]))
    plt.close(ax.figure)


def test_save_all_plots_adds_the_trunk_figure_only_for_wsd_tables(wsd_store, tmp_path):
    runs, curves = wsd_store
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # two sizes per budget: no parabola, said in the fit's result
        fit = fit_all(runs, curves, approaches=(2,), n_bootstrap=20, holdout=())
        names = {p.stem for p in plots.save_all_plots(fit, runs, curves, tmp_path / "wsd")}
    assert "wsd_trunks" in names and plt.get_fignums() == []
    # a table without branches has no trunk line, so its figures are the ones it had before
    # (tests/test_analysis_plots.py checks that set exactly)
    plain = simulate_runs(budgets=np.geomspace(1e17, 1e18, 3), n_per_budget=5, noise=0.005)
    assert trunk_lines(plain, simulate_curves(plain, n_points=10, noise=0.002)) == ()
    assert trunk_lines(runs.drop(columns=["trunk_id", "branch_tokens"]), curves) == ()
