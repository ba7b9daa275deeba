"""Approach 3 fit speed: the vectorised 4,500-start fit against scipy called once per start, side by side.

For each simulated data set (~250 runs of an IsoFLOP sweep) it prints the fast fit's time, the naive
loop's time (scipy.optimize.minimize, L-BFGS-B, analytic gradient, from every one of the 4,500 Chinchilla
grid starts), their ratio, and whether both reach the same optimum (objective and parameters); then the
time of a 1,000-replicate bootstrap.

The naive loop runs in full when it is projected to take under --naive-budget seconds per data set
(default 120); otherwise it runs from a random subset of --naive-starts grid points and its time is
EXTRAPOLATED to 4,500 starts, labelled as such. BLAS threads are set to --blas-threads (default 1)
before numpy loads: scipy's L-BFGS-B calls BLAS on 5×5 problems, where extra threads cost ~8× on two
cores, so one thread is the naive loop's fairest setting (and changes nothing for the fast path).

    python benchmarks/fit_speed.py                 # full comparison (a few minutes on 2 cores)
    python benchmarks/fit_speed.py --smoke-test    # seconds: tiny subset, 50 bootstrap replicates
"""

import argparse
import os
import sys
import time
from pathlib import Path


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-per-budget", type=int, default=31, help="runs per budget, 8 budgets (default 31: 248 runs)")
    p.add_argument("--datasets", type=int, default=3, choices=(1, 2, 3), help="simulated laws to check (default 3)")
    p.add_argument("--naive-starts", type=int, default=None,
                   help="run the naive loop from this many random grid starts and extrapolate (default: all "
                        "4,500 when projected under --naive-budget seconds, else 450)")
    p.add_argument("--naive-budget", type=float, default=120.0, help="seconds allowed for a full naive loop")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates to time (default 1000)")
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (default 1; 0 = leave as is)")
    p.add_argument("--smoke-test", action="store_true", help="tiny run to check the script works")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    from analysis.bootstrap import bootstrap_parametric_arrays
    from analysis.parametric import CHINCHILLA_2022, ChinchillaParams, fit_each_start, fit_parametric_arrays, start_grid
    from analysis.simulate import simulate_runs

    if args.smoke_test:
        args.naive_starts, args.bootstrap, args.datasets = 20, 50, 1
    laws = [("Chinchilla 2022 law, C 1e18-1e22", CHINCHILLA_2022, np.logspace(18, 22, 8)),
            ("small-lab law, C 1e12-1e16", ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.3, beta=0.35), np.logspace(12, 16, 8)),
            ("steep law, C 1e14-1e18", ChinchillaParams(E=2.0, A=2000.0, B=800.0, alpha=0.6, beta=0.45), np.logspace(14, 18, 8))]
    grid = start_grid()
    print(f"machine: {os.cpu_count()} CPUs; numpy {np.__version__}; BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; grid of {len(grid)} starts")
    header = f"{'data set':<34} {'runs':>5} {'fast s':>8} {'naive s':>10} {'ratio':>7}  same optimum?"
    print(header)
    print("-" * len(header))
    first = None
    for i, (name, params, budgets) in enumerate(laws[: args.datasets]):
        runs = simulate_runs(budgets=budgets, n_per_budget=args.runs_per_budget, params=params, noise=0.01, seed=100 + i)
        n, d, loss = runs["N"].to_numpy(float), runs["D"].to_numpy(float), runs["loss"].to_numpy(float)
        fit_parametric_arrays(n, d, loss)  # warm-up (first-call allocations)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fast = fit_parametric_arrays(n, d, loss)
            times.append(time.perf_counter() - t0)
        fast_s = min(times)
        first = first or (n, d, loss, fast)
        # naive: time a probe, then decide full loop vs subset
        order = np.random.default_rng(i).permutation(len(grid))
        probe = args.naive_starts or 100
        t0 = time.perf_counter()
        naive = fit_each_start(n, d, loss, grid[order[:probe]])
        probe_s = time.perf_counter() - t0
        projected = probe_s * len(grid) / probe
        if args.naive_starts is None and projected <= args.naive_budget:
            t0 = time.perf_counter()
            rest = fit_each_start(n, d, loss, grid[order[probe:]])
            naive_s, label = probe_s + time.perf_counter() - t0, "measured, all 4500"
            naive_fun, naive_x = np.concatenate([naive.fun, rest.fun]), np.concatenate([naive.x, rest.x])
            n_success = int((naive.status == 1).sum() + (rest.status == 1).sum())
        else:
            if args.naive_starts is None:  # too slow for a full loop: a larger subset for a firmer estimate
                probe = 450
                t0 = time.perf_counter()
                naive = fit_each_start(n, d, loss, grid[order[:probe]])
                probe_s = time.perf_counter() - t0
            naive_s, label = probe_s * len(grid) / probe, f"EXTRAPOLATED from {probe} random starts"
            naive_fun, naive_x, n_success = naive.fun, naive.x, int((naive.status == 1).sum())
        best = int(np.argmin(naive_fun))
        rel_obj = (fast.objective - naive_fun[best]) / naive_fun[best]
        names = ("E", "A", "B", "alpha", "beta")
        fast_p = np.array([getattr(fast, k) for k in names])
        naive_p = np.concatenate([np.exp(naive_x[best, :3]), naive_x[best, 3:]])
        rel_par = np.max(np.abs(fast_p - naive_p) / np.abs(naive_p))
        same = rel_obj <= 1e-8 and rel_par <= 1e-4
        print(f"{name:<34} {len(runs):>5} {fast_s:>8.3f} {naive_s:>10.1f} {naive_s / fast_s:>6.0f}×  "
              f"{'yes' if same else 'NO'} (objective rel. diff {rel_obj:+.1e}, parameters {rel_par:.1e})")
        print(f"{'':<34}       naive: {label}; scipy reported success on {n_success}; "
              f"fast: {fast.message}")
        print(f"{'':<34}       objective fast {fast.objective:.12g}  naive {naive_fun[best]:.12g}")
        print(f"{'':<34}       fast  " + "  ".join(f"{k}={v:.6g}" for k, v in zip(names, fast_p)))
        print(f"{'':<34}       naive " + "  ".join(f"{k}={v:.6g}" for k, v in zip(names, naive_p)))
    n, d, loss, fast = first
    t0 = time.perf_counter()
    boot = bootstrap_parametric_arrays(n, d, loss, n_resamples=args.bootstrap, seed=0, fit=fast)
    boot_s = time.perf_counter() - t0
    print(f"bootstrap: {args.bootstrap} replicates on {len(n)} runs in {boot_s:.1f} s ({boot.message}); "
          f"alpha 95% [{boot.intervals['alpha'][0]:.4f}, {boot.intervals['alpha'][1]:.4f}], "
          f"beta 95% [{boot.intervals['beta'][0]:.4f}, {boot.intervals['beta'][1]:.4f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
