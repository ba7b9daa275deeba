"""Approach 3 fit speed, side by side: the 4,500-start grid, variable projection, scipy per start, and
the default `scaling fit` path against the one before variable projection.

1. Fits. For each simulated data set (~250 runs of an IsoFLOP sweep) and each --csv table (columns N, D,
   loss; e.g. Epoch AI's 240 Chinchilla runs): the time and objective of the batched fit from the grid
   (search="grid", the 4,500-start fit; target ≤ 0.5 s), from the variable-projection profile alone
   (search="varpro") and of the default (search="both"); on the simulated sets also scipy.optimize.minimize
   (L-BFGS-B, analytic gradient) from every grid start, and whether it reaches the same optimum.
2. Bootstrap, 1,000 replicates: the earlier scheme (each replicate from its 5 best grid points and the
   full-sample optimum, search="grid") against the default (its own VarPro optimum and the full-sample
   optimum), the same resamples: times, the largest interval difference, replicates ending elsewhere.
3. The default `fit_all` (every approach, 1,000 resamples, the backtest), as `scaling fit` runs it, on
   the last data set: measured, and the path before variable projection, measured in the same run as
   that total minus its Approach-3 parts (main fit and bootstrap, backtest fit and bootstrap) timed under
   the new defaults plus the same parts timed under search="grid" (each the best of 2, interleaved).

The naive loop runs in full when projected under --naive-budget seconds per data set (default 120);
otherwise from a random subset of --naive-starts grid points, its time EXTRAPOLATED to 4,500 starts and
labelled so. BLAS threads are set to --blas-threads (default 1) before numpy loads: scipy's L-BFGS-B
calls BLAS on 5×5 problems, where extra threads cost ~8× on two cores (0 leaves the default, as
`scaling fit` runs).

    python benchmarks/fit_speed.py --csv epoch.csv   # full comparison (a few minutes on 2 cores)
    python benchmarks/fit_speed.py --smoke-test      # seconds: tiny subset, 50 bootstrap replicates
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

NAMES = ("E", "A", "B", "alpha", "beta")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-per-budget", type=int, default=31, help="runs per budget, 8 budgets (default 31: 248 runs)")
    p.add_argument("--datasets", type=int, default=3, choices=(0, 1, 2, 3), help="simulated laws to check (default 3)")
    p.add_argument("--csv", action="append", default=[], help="a table with columns N, D, loss to fit too (repeatable)")
    p.add_argument("--naive-starts", type=int, default=None,
                   help="run the naive loop from this many random grid starts and extrapolate (default: all "
                        "4,500 when projected under --naive-budget seconds, else 450)")
    p.add_argument("--naive-budget", type=float, default=120.0, help="seconds allowed for a full naive loop")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates to time (default 1000)")
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (default 1; 0 = leave as is)")
    p.add_argument("--smoke-test", action="store_true", help="tiny run to check the script works")
    return p.parse_args()


def best_time(function, repeats=3):
    """(smallest wall time over `repeats` calls after one warm-up, the last result)."""
    result, times = function(), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - t0)
    return min(times), result


def compare_fits(name, runs, *, naive: bool, args, np):
    from analysis.parametric import fit_parametric_arrays

    n, d, loss = (runs[c].to_numpy(float) for c in ("N", "D", "loss"))
    fits, times = {}, {}
    for search in ("grid", "varpro", "both"):
        times[search], fits[search] = best_time(lambda: fit_parametric_arrays(n, d, loss, search=search))
    g, v = fits["grid"], fits["varpro"]
    rel = (v.objective - g.objective) / g.objective
    print(f"{name:<36} {len(n):>5} {times['grid']:>7.3f} {times['varpro']:>7.3f} {times['both']:>7.3f}  "
          f"grid {g.objective:.12g}  varpro {v.objective:.12g} ({rel:+.1e}); default took {fits['both'].best_search}'s")
    print(f"{'':<42} grid ≤ 0.5 s: {'yes' if times['grid'] <= 0.5 else 'NO'}; parameters differ by "
          f"{np.max(np.abs(g.x - v.x)):.1e}; " + "  ".join(f"{k}={getattr(g, k):.5g}" for k in NAMES))
    if naive:
        naive_loop(n, d, loss, g, times["grid"], args=args, np=np)
    return fits["both"]


def naive_loop(n, d, loss, fast, fast_s, *, args, np):
    from analysis.parametric import fit_each_start, start_grid

    grid = start_grid()
    order = np.random.default_rng(len(n)).permutation(len(grid))
    probe = args.naive_starts or 100
    t0 = time.perf_counter()
    runs = [fit_each_start(n, d, loss, grid[order[:probe]])]
    probe_s = time.perf_counter() - t0
    if args.naive_starts is None and probe_s * len(grid) / probe <= args.naive_budget:
        t0 = time.perf_counter()
        runs.append(fit_each_start(n, d, loss, grid[order[probe:]]))
        naive_s, label = probe_s + time.perf_counter() - t0, "measured, all 4500"
    else:
        if args.naive_starts is None:  # too slow for a full loop: a larger subset for a firmer estimate
            probe = 450
            t0 = time.perf_counter()
            runs = [fit_each_start(n, d, loss, grid[order[:probe]])]
            probe_s = time.perf_counter() - t0
        naive_s, label = probe_s * len(grid) / probe, f"EXTRAPOLATED from {probe} random starts"
    fun, x = np.concatenate([r.fun for r in runs]), np.concatenate([r.x for r in runs])
    best = int(np.argmin(fun))
    rel_obj = (fast.objective - fun[best]) / fun[best]
    rel_par = np.max(np.abs(fast.x - x[best]) / np.maximum(np.abs(x[best]), 1.0))
    same = rel_obj <= 1e-8 and rel_par <= 1e-4
    print(f"{'':<42} scipy per start: {naive_s:.1f} s ({label}), {naive_s / fast_s:.0f}× the grid fit; same optimum: "
          f"{'yes' if same else 'NO'} (objective {fun[best]:.12g}, rel. diff {rel_obj:+.1e}, parameters {rel_par:.1e})")


def compare_bootstrap(name, runs, fit, *, n_resamples, np):
    from analysis.bootstrap import bootstrap_parametric

    out = {}
    for search in ("grid", "varpro"):
        t0 = time.perf_counter()
        out[search] = (bootstrap_parametric(runs, n_resamples=n_resamples, seed=0, fit=fit, search=search),
                       time.perf_counter() - t0)
    (old, old_s), (new, new_s) = out["grid"], out["varpro"]
    diff = max(abs(new.intervals[k][i] - old.intervals[k][i]) / abs(old.intervals[k][i])
               for k in ("E", "alpha", "beta", "a", "G") for i in (0, 1))
    both = old.converged & new.converged
    moved = int(np.sum(np.max(np.abs(new.samples[both, 3:] - old.samples[both, 3:]), axis=1) > 1e-3))
    print(f"{name:<36} grid starts {old_s:6.2f} s  varpro {new_s:6.2f} s  ({old_s / new_s:.1f}×); converged "
          f"{old.n_converged} / {new.n_converged}; intervals differ by ≤ {diff:.1e} (relative); "
          f"{moved} replicate(s) with α or β ≥ 1e-3 apart")
    for k in ("E", "alpha", "beta"):
        print(f"{'':<36} {k:<6} grid [{old.intervals[k][0]:.5g}, {old.intervals[k][1]:.5g}]  "
              f"varpro [{new.intervals[k][0]:.5g}, {new.intervals[k][1]:.5g}]")


def compare_default_path(name, runs, *, n_resamples):
    """fit_all as `scaling fit` runs it, and the earlier path: that total with its Approach-3 parts swapped."""
    from analysis.backtest import split_holdout
    from analysis.bootstrap import bootstrap_parametric
    from analysis.isoflop import prepare_runs
    from analysis.parametric import fit_parametric
    from analysis.study_fit import fit_all

    train, _ = split_holdout(prepare_runs(runs, ("run_id", "N", "D", "loss"), what="backtest"))

    def approach3_parts(search):
        for table in (runs, train):
            fit = fit_parametric(table, search=search)
            bootstrap_parametric(table, n_resamples=n_resamples, seed=0, fit=fit,
                                 search="grid" if search == "grid" else "varpro")

    # best of 2, interleaved, each: on a shared machine a single subtraction of timings is at the load's mercy
    total, parts = float("inf"), {"both": float("inf"), "grid": float("inf")}
    for _ in range(2):
        t0 = time.perf_counter()
        fit_all(runs, n_bootstrap=n_resamples)
        total = min(total, time.perf_counter() - t0)
        for search in parts:
            t0 = time.perf_counter()
            approach3_parts(search)
            parts[search] = min(parts[search], time.perf_counter() - t0)
    before = total - parts["both"] + parts["grid"]
    print(f"{name:<36} fit_all now {total:.2f} s (its Approach-3 parts {parts['both']:.2f} s); before variable "
          f"projection {before:.2f} s (those parts {parts['grid']:.2f} s): {before / total:.1f}× faster")


def main() -> int:
    args = parse_args()
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np
    import pandas as pd

    from analysis.parametric import CHINCHILLA_2022, ChinchillaParams
    from analysis.simulate import simulate_runs

    if args.smoke_test:
        args.naive_starts, args.bootstrap, args.datasets = 20, 50, 1
    laws = [("Chinchilla 2022 law, C 1e18-1e22", CHINCHILLA_2022, np.logspace(18, 22, 8)),
            ("small-lab law, C 1e12-1e16", ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.3, beta=0.35), np.logspace(12, 16, 8)),
            ("steep law, C 1e14-1e18", ChinchillaParams(E=2.0, A=2000.0, B=800.0, alpha=0.6, beta=0.45), np.logspace(14, 18, 8))]
    sets = [(name, simulate_runs(budgets=b, n_per_budget=args.runs_per_budget, params=p, noise=0.01, seed=100 + i), True)
            for i, (name, p, b) in enumerate(laws[: args.datasets])]
    for path in args.csv:
        table = pd.read_csv(path)
        sets.append((Path(path).name, table.assign(run_id=[f"row{i}" for i in range(len(table))]), False))
    if not sets:
        raise SystemExit("nothing to measure: --datasets 0 and no --csv")
    print(f"machine: {os.cpu_count()} CPUs; numpy {np.__version__}; BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    print(f"{'fit (seconds, best of 3)':<36} {'runs':>5} {'grid':>7} {'varpro':>7} {'default':>7}  objectives")
    fits = [compare_fits(name, runs, naive=naive, args=args, np=np) for name, runs, naive in sets]
    print(f"bootstrap, {args.bootstrap} replicates, seed 0")
    for (name, runs, _), fit in list(zip(sets, fits))[:: max(1, len(sets) - 1)]:  # the first and the last set
        compare_bootstrap(name, runs, fit, n_resamples=args.bootstrap, np=np)
    print(f"default path, {args.bootstrap} resamples")
    name, runs, _ = sets[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IsoFLOP status notes: the fits, not their warnings, are timed here
        compare_default_path(name, runs, n_resamples=args.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
