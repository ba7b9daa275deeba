"""Seed replicates: distinct runs, batches and initial weights; the table keeps every replicate; the noise
floor and the fits' choices read replicates by their cell means."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.hyperparams import best_per_cell
from analysis.isoflop import fit_isoflop, profile_window
from analysis.replicates import cell_labels, cell_means, has_replicates, mean_curves, noise_floor
from analysis.study_fit import StudyFit, fit_all
from analysis.table import read_table
from experiments.runner import run_experiment
from experiments.spec import ExperimentSpec
from lm import checkpoint
from lm.model import ModelConfig
from lm.train import TrainConfig, train
from scaling.noise_report import noise_blocks
from sweeps.config import SweepConfigError, load_sweep, parse_sweep, preset_names
from sweeps.plan import plan

RUN = dict(threads=1, device="cpu", peak_flops=1e11)


def tiny_sweep(seeds: int) -> dict:
    return {"name": "s", "kind": "isoflop", "family": {"depth": 2, "head_size": 4}, "corpus": {"source": "stdlib", "vocab_size": 257, "max_bytes": 300_000},
            "training": {"context_length": 64, "batch_size": 16, "lr": 1e-2, "seeds": seeds},
            "isoflop": {"budgets": [1e10, 2e10], "sizes_per_budget": 3, "span": 1.5,
                        "center": {"tokens_per_param": 6}},
            "planning": {"device": "cpu", "min_steps": 50}}


def test_seeds_replicate_every_cell_with_distinct_ids_and_only_the_seed_differing():
    one, three = plan(parse_sweep(tiny_sweep(1))), plan(parse_sweep(tiny_sweep(3)))
    assert len(three.runs) == 3 * len(one.runs) and len(set(three.run_ids)) == len(three.runs)
    assert set(one.run_ids) <= set(three.run_ids)  # raising seeds keeps the existing runs' ids
    by_cell = {}
    for r in three.runs:
        key = {**r.spec.to_dict(), "seed": None}
        by_cell.setdefault(str(sorted(key.items())), []).append(r.spec.seed)
    assert sorted(by_cell.values()) == [[0, 1, 2]] * len(one.runs)
    assert [row["seed"] for row in three.to_rows()][:3] == [0, 1, 2]


def test_seeds_below_one_is_an_error_naming_the_key():
    with pytest.raises(SweepConfigError, match=r"training\.seeds"):
        parse_sweep(tiny_sweep(0))


def test_presets_keep_one_seed():
    for name in preset_names():
        assert load_sweep(name).training.seeds == 1


def test_seeds_draw_distinct_batches(stdlib_corpus):
    batch = dict(batch_size=8, context_length=32, step=0)
    x0, _ = stdlib_corpus.get_batch("train", seed=0, **batch)
    x0_again, _ = stdlib_corpus.get_batch("train", seed=0, **batch)
    x1, _ = stdlib_corpus.get_batch("train", seed=1, **batch)
    assert torch.equal(x0, x0_again) and not torch.equal(x0, x1)


def _weights_after_one_tiny_step(corpus, seed, folder):
    """The model after one step of lr 1e-12 (an update of ~1e-12 per weight): its initial weights, as stored."""
    model = ModelConfig(vocab_size=512, context_length=32, n_layers=1, d_model=16, n_heads=2)
    config = TrainConfig(model=model, tokens=4 * 8 * 32, batch_size=8, lr=1e-12, seed=seed, device="cpu", threads=1)
    train(config, corpus, checkpoint_dir=folder, stop_after_step=1, peak_flops=1e11)
    return checkpoint.load(folder / checkpoint.FILENAME)["model"]


def test_seeds_give_distinct_initial_weights(stdlib_corpus, tmp_path):
    a = _weights_after_one_tiny_step(stdlib_corpus, 0, tmp_path / "a")
    a_again = _weights_after_one_tiny_step(stdlib_corpus, 0, tmp_path / "a2")
    b = _weights_after_one_tiny_step(stdlib_corpus, 1, tmp_path / "b")
    name = "blocks.0.attn.qkv.weight" if "blocks.0.attn.qkv.weight" in a else next(k for k in a if k.endswith("weight")
                                                                                   and a[k].ndim == 2)
    assert torch.equal(a[name], a_again[name])
    assert (a[name] - b[name]).abs().max() > 1e-3  # far beyond the ~1e-12 one step moved them


def test_the_table_keeps_every_replicate_and_the_noise_floor_reads_them(stdlib_corpus, tmp_path):
    base = dict(n_layers=1, d_model=16, n_heads=2, tokens=40 * 8 * 32, batch_size=8, context_length=32, lr=1e-2,
                eval_tokens=1024, corpus_source="stdlib", vocab_size=512, corpus_max_bytes=400_000, budget=1e9)
    for seed in (0, 1):
        run_experiment(ExperimentSpec(**base, seed=seed), store=tmp_path, corpus_path=stdlib_corpus.path,
                       sweep="unit", **RUN)
    table = read_table(tmp_path)
    assert sorted(table["seed"]) == [0, 1] and table["loss"].nunique() == 2
    assert has_replicates(table) and len(cell_means(table)) == 1
    floor = noise_floor(table)
    assert floor.success and floor.dof == 1
    assert floor.sd == pytest.approx(abs(table["loss"].iloc[0] - table["loss"].iloc[1]) / math.sqrt(2))


def synthetic() -> pd.DataFrame:
    """Two budgets: at 1e12 two cells of 3 replicates, at 1e13 one cell of 2 and one single run."""
    rows = [(1e12, 100, 3.0), (1e12, 100, 3.2), (1e12, 100, 3.4),  # mean 3.2, squares 0.08
            (1e12, 200, 2.9), (1e12, 200, 3.0), (1e12, 200, 3.1),  # mean 3.0, squares 0.02
            (1e13, 400, 2.5), (1e13, 400, 2.7),                    # mean 2.6, squares 0.02
            (1e13, 800, 2.4)]                                       # one run: no replicate
    df = pd.DataFrame(rows, columns=["budget", "N", "loss"])
    return df.assign(D=(df["budget"] / (6 * df["N"])).round().astype(int), seed=range(len(df)), status="completed")


def test_noise_floor_is_the_pooled_within_cell_sd_per_budget():
    floor = noise_floor(synthetic())
    assert floor.success and [b.budget for b in floor.budgets] == [1e12, 1e13]
    low, high = floor.budgets
    assert (low.n_cells, low.n_runs, low.dof) == (2, 6, 4) and low.sd == pytest.approx(math.sqrt(0.10 / 4))
    assert low.relative_sd == pytest.approx(math.sqrt(0.10 / 4) / 3.1)
    assert (high.n_cells, high.n_runs, high.dof) == (1, 2, 1) and high.sd == pytest.approx(math.sqrt(0.02))
    assert floor.dof == 5 and floor.sd == pytest.approx(math.sqrt(0.12 / 5))
    table = noise_blocks(floor)[-1]
    assert table[0] == "table" and [row[0] for row in table[2]] == ["1e+12", "1e+13"]


def test_one_seed_per_cell_measures_no_noise_and_says_so():
    single = synthetic().drop_duplicates(["budget", "N"])
    floor = noise_floor(single)
    assert not floor.success and math.isnan(floor.sd) and "seeds" in floor.message
    assert "Not measured" in noise_blocks(floor)[-1][1]


def test_cells_ignore_the_seed_and_nothing_else():
    df = synthetic()
    labels = cell_labels(df)
    assert len(set(labels)) == 4 and len(set(cell_labels(df.assign(lr=[1e-2] * 8 + [2e-2])))) == 4
    assert len(set(cell_labels(df.assign(lr=[1e-2, 2e-2] + [1e-2] * 7)))) == 5


def test_the_best_learning_rate_is_chosen_by_its_mean_not_its_luckiest_seed():
    rows = []
    for lr, losses in ((1e-2, [3.00, 3.01, 3.02]), (2e-2, [2.90, 3.20, 3.30])):  # 2e-2 has the single best run
        rows += [(1e12, 100, lr, loss, seed) for seed, loss in enumerate(losses)]
    rows += [(1e12, 100, 4e-2, 3.5, 0)]
    df = pd.DataFrame(rows, columns=["budget", "N", "lr", "loss", "seed"]).assign(D=1000, status="completed")
    best = best_per_cell(df)
    assert list(best["lr"]) == [1e-2] * 3 and list(best["seed"]) == [0, 1, 2]


def test_the_profile_window_centres_on_the_lowest_mean_not_the_luckiest_run():
    n = np.repeat([1e4, 2e4, 4e4, 8e4, 1.6e5], 2)
    loss = np.array([3.3, 3.3, 3.1, 3.1, 3.0, 3.0, 3.1, 3.1, 2.95, 3.45])  # a lucky seed at the largest size
    window = profile_window(n, loss)
    assert window.all()  # centred on 4e4 (mean 3.0): two sizes each side; the lucky run would give "edge"


def test_isoflop_fit_on_replicates_pools_their_spread_into_the_noise():
    rng = np.random.default_rng(0)
    rows = []
    for budget, n_opt in ((1e12, 3e4), (1e13, 8e4), (1e14, 2e5)):
        for n in n_opt * np.array([0.25, 0.5, 1.0, 2.0, 4.0]):
            for seed in range(3):
                loss = 3 - 0.2 * np.log10(budget) + 0.1 * np.log(n / n_opt) ** 2 + 0.01 * rng.standard_normal()
                rows.append((budget, round(n), round(budget / (6 * n)), loss, seed))
    df = pd.DataFrame(rows, columns=["budget", "N", "D", "loss", "seed"]).assign(status="completed")
    fit = fit_isoflop(df, n_bootstrap=50)
    assert fit.success and all(p.status == "ok" for p in fit.profiles)
    assert 0.005 < fit.noise_scale < 0.02  # the 0.01 seed noise, measured through the replicates


def test_replicate_curves_are_averaged_point_by_point_into_one_per_cell():
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "N": [100, 100, 200], "D": [1000, 1000, 500],
                         "budget": [6e5] * 3, "seed": [0, 1, 0], "loss": [3.0, 3.2, 3.1]})
    curves = pd.DataFrame({"run_id": ["a", "a", "b", "b", "c", "c"], "N": [100, 100, 100, 100, 200, 200],
                           "D": [1000] * 4 + [500] * 2, "step": [1, 2, 1, 2, 1, 2], "tokens": [500, 1000] * 2 + [250, 500],
                           "loss": [4.0, 3.0, 5.0, 3.2, 4.5, 3.1]})
    mean = mean_curves(curves, runs)
    assert sorted(mean["run_id"].unique()) == ["a", "c"]
    assert list(mean.loc[mean["run_id"] == "a", "loss"]) == pytest.approx([4.5, 3.1])
    assert list(mean.loc[mean["run_id"] == "c", "loss"]) == [4.5, 3.1]


def test_fit_all_on_replicates_reports_the_noise_floor_and_resamples_cells():
    rng = np.random.default_rng(1)
    rows = []
    for budget in (1e12, 3e12, 1e13, 3e13):
        for n in 3e-2 * budget**0.5 * np.geomspace(0.3, 3, 5):
            d = budget / (6 * n)
            for seed in range(2):
                loss = 1.7 + 400 / n**0.35 + 4000 / d**0.35 + 0.01 * rng.standard_normal()
                rows.append((budget, round(n), round(d), loss, seed))
    runs = pd.DataFrame(rows, columns=["budget", "N", "D", "loss", "seed"]).assign(status="completed")
    fit = fit_all(runs, None, n_bootstrap=20, seed=0)
    assert fit.noise_floor.success and fit.noise_floor.dof == 20
    assert 0.004 < fit.noise_floor.sd < 0.02
    assert fit.approach3_bootstrap is not None
    assert StudyFit.from_dict(fit.to_dict()).noise_floor == fit.noise_floor
    older = {k: v for k, v in fit.to_dict().items() if k not in ("noise_floor", "lr_horizon_law")}
    assert StudyFit.from_dict(older).noise_floor is None  # a fit file written before these fields loads
    with pytest.raises(ValueError, match="n_runs"):
        StudyFit.from_dict({k: v for k, v in older.items() if k != "n_runs"})


def test_replicates_need_no_budget_or_compute_column():
    df = synthetic().drop(columns=["budget"])
    assert has_replicates(df) and len(set(cell_labels(df))) == 4
    assert noise_floor(df).dof == 5
