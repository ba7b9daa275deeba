"""The fit's fast paths (issue 10, item 8) give the numbers of the one-piece path they replaced.

Each fast path is checked against the same computation done the earlier way: the Huber objective and the
variable-projection profile in cache-sized blocks against one block (the earlier code, which is the block
body), a bootstrap resample's objective over the runs it drew against all runs with count 0 for the rest,
and the IsoFLOP bootstrap's power laws in one array operation against one `fit_power_law` per replicate.
The seeded bootstrap then comes out the same with every fast path on as with all of them off.
"""

import numpy as np
import pytest

from analysis import bootstrap, parametric, varpro
from analysis.bootstrap import bootstrap_parametric
from analysis.parametric import CHINCHILLA_2022, LogData, centre, fit_parametric, huber_objective, log_data
from analysis.powerlaw import fit_power_law, fit_power_law_rows
from analysis.simulate import simulate_runs

ONE_BLOCK = 10**12  # a block size no test reaches: the whole array in one piece, as before the blocking


@pytest.fixture(scope="module")
def runs():
    return simulate_runs(budgets=np.logspace(18, 21, 4), n_per_budget=8, params=CHINCHILLA_2022, noise=0.01, seed=3)


@pytest.fixture(scope="module")
def centred(runs):
    return centre(log_data(runs["N"], runs["D"], runs["loss"]))[0]


def _thetas(n, seed=0):
    # centred (e, a, b, α, β) near and far from the optimum, including starts whose terms underflow
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-1, 1, n), rng.uniform(-5, 25, n), rng.uniform(-5, 25, n),
                            rng.uniform(0, 2, n), rng.uniform(0, 2, n)])


def test_blocked_objective_equals_one_block(centred, monkeypatch):
    """Blocks of vectors change no value: f and the gradient equal the one-block evaluation (weights shared,
    one row per vector, or one row per resample with `rows`); f bit for bit, the gradient within 1e-13
    of its largest component (its α and β parts are BLAS matrix-vector products, which a threaded BLAS may
    split differently by shape)."""
    theta = _thetas(700)
    counts = np.random.default_rng(1).integers(0, 3, size=(350, centred.log_n.size)).astype(float)
    rows = np.arange(700) // 2
    cases = [dict(weights=np.ones(centred.log_n.size)), dict(weights=counts[rows]), dict(weights=counts, rows=rows)]
    assert parametric._blocks(700, centred.log_n.size).__next__().stop < 700  # the default does split this
    blocked = [huber_objective(theta, centred, **case) for case in cases]
    monkeypatch.setattr(parametric, "BLOCK_ELEMENTS", ONE_BLOCK)
    for case, (f, g) in zip(cases, blocked):
        f1, g1 = huber_objective(theta, centred, **case)
        np.testing.assert_array_equal(f, f1)
        np.testing.assert_allclose(g, g1, rtol=1e-13, atol=1e-13 * np.abs(g1).max())


def test_objective_over_drawn_runs_equals_all_runs(centred):
    """A resample's objective over the runs it drew (padded with count 0) equals the objective over every run
    with its counts, within float rounding (1e-12 relative: the sums run over fewer terms)."""
    counts = bootstrap.bootstrap_counts(centred.log_n.size, 50, seed=2).astype(float)
    drawn, drawn_w = bootstrap._drawn(counts)
    assert drawn.shape[1] < centred.log_n.size  # something was left out to skip
    data = LogData(*(v[drawn] for v in (centred.log_n, centred.log_d, centred.log_loss)))
    theta, rows = _thetas(100, seed=4), np.arange(100) // 2
    f, g = huber_objective(theta, data, drawn_w, rows=rows)
    f_all, g_all = huber_objective(theta, centred, counts, rows=rows)
    np.testing.assert_allclose(f, f_all, rtol=1e-12, atol=0)
    np.testing.assert_allclose(g, g_all, rtol=1e-12, atol=1e-300)


def test_blocked_profile_equals_one_block(centred, monkeypatch):
    """The VarPro profile of 200 resamples in blocks equals it in one piece (objective and coefficients, 1e-9
    relative: matrix products of a different shape may round differently)."""
    counts = bootstrap.bootstrap_counts(centred.log_n.size, 200, seed=5)
    args = (centred.log_n, centred.log_d, centred.log_loss, counts)
    kwargs = dict(alphas=varpro.COARSE_EXPONENTS, betas=varpro.COARSE_EXPONENTS)
    blocked = varpro.profile(*args, **kwargs)
    monkeypatch.setattr(varpro, "BLOCK_CELLS", ONE_BLOCK)
    whole = varpro.profile(*args, **kwargs)
    np.testing.assert_allclose(blocked.objective, whole.objective, rtol=1e-9)
    np.testing.assert_allclose(blocked.coef, whole.coef, rtol=1e-9, atol=1e-12)


def test_power_law_rows_equal_one_fit_per_row():
    """fit_power_law_rows gives each row's fit_power_law (k and p within 1e-12 relative)."""
    rng = np.random.default_rng(6)
    x = np.logspace(18, 21, 5)
    y = np.exp(0.5 * np.log(x) - 3 + 0.1 * rng.standard_normal((300, 5)))
    k, p = fit_power_law_rows(x, y)
    fits = [fit_power_law(x, row) for row in y]
    np.testing.assert_allclose(k, [f.k for f in fits], rtol=1e-12)
    np.testing.assert_allclose(p, [f.p for f in fits], rtol=1e-12)
    with pytest.raises(ValueError, match="y must be positive"):
        fit_power_law_rows(x, -y)


def test_seeded_bootstrap_equals_the_one_piece_path(runs, monkeypatch):
    """The seeded bootstrap with every fast path equals the path without them (one block, every run in every
    resample's objective): samples and intervals within 1e-5 relative. Why that tolerance: each replicate is
    polished to a relative decrease of 1e-10 (bootstrap.py), so rounding that differs in the last bits moves an
    end point by ~1e-7 relative (2.7e-7 on Epoch AI's 240 runs, benchmarks/fit_speed.py)."""
    fit = fit_parametric(runs)
    fast = bootstrap_parametric(runs, n_resamples=100, seed=7, fit=fit)
    monkeypatch.setattr(parametric, "BLOCK_ELEMENTS", ONE_BLOCK)
    monkeypatch.setattr(varpro, "BLOCK_CELLS", ONE_BLOCK)
    monkeypatch.setattr(bootstrap, "_drawn", lambda c: (np.broadcast_to(np.arange(c.shape[1]), c.shape), c))
    slow = bootstrap_parametric(runs, n_resamples=100, seed=7, fit=fit)
    np.testing.assert_array_equal(fast.converged, slow.converged)
    np.testing.assert_allclose(fast.samples[fast.converged], slow.samples[slow.converged], rtol=1e-5)
    for name, interval in slow.intervals.items():
        np.testing.assert_allclose(fast.intervals[name], interval, rtol=1e-5, err_msg=name)
