"""Approach 3 fit speed, side by side: the 4,500-start grid, variable projection, scipy per start, and
the default `scaling fit` path against the same path at an earlier commit.

1. Fits. For each simulated data set (~250 runs of an IsoFLOP sweep) and each --csv table (columns N, D,
   loss; e.g. Epoch AI's 240 Chinchilla runs): the time and objective of the batched fit from the grid
   (search="grid", the 4,500-start fit; target ≤ 0.5 s), from the variable-projection profile alone
   (search="varpro") and of the default (search="both"); on the simulated sets also scipy.optimize.minimize
   (L-BFGS-B, analytic gradient) from every grid start, and whether it reaches the same optimum.
2. Bootstrap, 1,000 replicates: the earlier scheme (each replicate from its 5 best grid points and the
   full-sample optimum, search="grid") against the default (its own VarPro optimum and the full-sample
   optimum), the same resamples: times, the largest interval difference, replicates ending elsewhere.
3. The default path: `fit_all` (every approach, 1,000 resamples, the backtest) as `scaling fit` runs it
   (BLAS threads left as they were), on --default-csv (Epoch AI's 240 runs; target < 5 s on 2 cores), now
   and with the analysis/ of commit --before (default: the one before the fit-speed work, issue 10 item 8),
   each in its own subprocess, alternating, best of --repeats: the ratio, and the largest difference
   between the two fits' numbers (the same seeded resamples, so float noise only).

The naive loop runs in full when projected under --naive-budget seconds per data set (default 120);
otherwise from a random subset of --naive-starts grid points, its time EXTRAPOLATED to 4,500 starts and
labelled so. BLAS threads are set to --blas-threads (default 1) before numpy loads: scipy's L-BFGS-B
calls BLAS on 5×5 problems, where extra threads cost ~8× on two cores (0 leaves the default, as
`scaling fit` runs).

    python benchmarks/fit_speed.py --csv tests/golden/epoch_chinchilla.csv   # full comparison (minutes)
    python benchmarks/fit_speed.py --smoke-test      # seconds: tiny subset, 50 bootstrap replicates
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

NAMES = ("E", "A", "B", "alpha", "beta")
ORIGINAL_ENV = dict(os.environ)  # before --blas-threads: the default path runs as `scaling fit` does
SAME_NUMBERS_RTOL = 1e-6  # float rounding between two paths of one algorithm (measured: ≤ 2.7e-7 on Epoch's runs)


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
    p.add_argument("--default-csv", default=str(Path(__file__).resolve().parents[1] / "tests/golden/epoch_chinchilla.csv"),
                   help="the table of the default-path comparison (default: Epoch AI's 240 Chinchilla runs)")
    p.add_argument("--before", default=BEFORE, help=f"commit the default path is compared with (default {BEFORE})")
    p.add_argument("--repeats", type=int, default=2, help="alternating before/now runs of the default path (default 2)")
    p.add_argument("--smoke-test", action="store_true", help="tiny run to check the script works")
    p.add_argument("--time-fit-all", metavar="CSV", help=argparse.SUPPRESS)  # the subprocess worker
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats must be ≥ 1, got {args.repeats}")
    return args


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
    return fits["both"], times["grid"]


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


# The commit before the fit-speed work (issue 10, item 8): `--before`'s default, the "today's path" the default
# `scaling fit` is measured against.
BEFORE = "68d2f57"


def time_fit_all(csv: str, n_resamples: int, repeats: int, out: str) -> int:
    """Worker (run in a subprocess with the analysis package to time first on sys.path): import time, then
    fit_all's wall time on the table `repeats` times as `scaling fit` runs it; the fit's JSON tree to `out`."""
    import json

    t0 = time.perf_counter()
    from analysis.study_fit import fit_all
    from analysis.table import read_table
    imported = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table's exclusions and IsoFLOP status notes: timed, not shown
        runs = read_table(csv)
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fit = fit_all(runs, n_bootstrap=n_resamples)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    Path(out).write_text(json.dumps(fit.to_dict(), allow_nan=False))
    import analysis

    print(json.dumps({"import_s": imported, "fit_s": times, "cpu_s": cpu, "analysis": str(Path(analysis.__path__[0]).resolve())}))
    return 0


def _largest_difference(old, new, path="fit"):
    """(largest relative difference between the numbers of two fit trees, paths where anything else differs)."""
    if isinstance(old, dict) and isinstance(new, dict):
        parts = [_largest_difference(old[k], new.get(k), f"{path}.{k}") for k in old]
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        parts = [_largest_difference(a, b, f"{path}[{i}]") for i, (a, b) in enumerate(zip(old, new))]
    elif isinstance(old, float) and isinstance(new, (int, float)) and not isinstance(new, bool):
        return abs(old - new) / max(abs(old), 1e-300), []
    else:
        return 0.0, [] if old == new else [path]
    return max([d for d, _ in parts], default=0.0), [p for _, ps in parts for p in ps]


def compare_default_path(csv: str, *, n_resamples: int, before: str, repeats: int):
    """fit_all as `scaling fit` runs it (every approach, the resamples, the backtest) on `csv`, now and at commit
    `before` (its analysis/ by `git archive`), in alternating subprocesses of this run: their best times, the
    ratio, and the largest difference between the two fits' numbers (the same seeded resamples)."""
    import json
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        old_root = Path(tmp) / "before"
        old_root.mkdir()
        archive = subprocess.run(["git", "-C", str(root), "archive", before, "analysis"], capture_output=True)
        if archive.returncode:
            print(f"default path: cannot check out {before} ({archive.stderr.decode().strip()}); not compared")
            return
        subprocess.run(["tar", "-x", "-C", str(old_root)], input=archive.stdout, check=True)
        results = {"before": [], "now": []}
        for _ in range(repeats):  # alternating, so both see the same load
            for label, first in (("before", old_root), ("now", root)):
                out = Path(tmp) / f"{label}.json"
                env = ORIGINAL_ENV | {"PYTHONPATH": os.pathsep.join([str(first), str(root)])}
                done = subprocess.run([sys.executable, __file__, "--time-fit-all", csv, "--bootstrap", str(n_resamples),
                                       "--worker-out", str(out)], env=env, cwd=tmp, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"default path ({label}) failed:\n{done.stderr}")
                result = json.loads(done.stdout.splitlines()[-1])
                if Path(result["analysis"]) != (first / "analysis").resolve():
                    raise SystemExit(f"default path ({label}): timed {result['analysis']}, not {first / 'analysis'}")
                results[label].append(result)
        trees = {label: json.loads((Path(tmp) / f"{label}.json").read_text()) for label in results}
    best = {label: min(min(r["fit_s"]) for r in runs) for label, runs in results.items()}
    cpu = {label: min(min(r["cpu_s"]) for r in runs) for label, runs in results.items()}
    imports = {label: min(r["import_s"] for r in runs) for label, runs in results.items()}
    diff, other = _largest_difference(trees["before"], trees["now"])
    print(f"{Path(csv).name:<36} fit_all at {before} {best['before']:.2f} s, now {best['now']:.2f} s: "
          f"{best['before'] / best['now']:.1f}× faster (best of {repeats}, alternating; imports {imports['before']:.2f} "
          f"/ {imports['now']:.2f} s more for `scaling fit`)")
    print(f"{'':<36} CPU time (all threads; less at the mercy of other jobs than wall time) at {before} "
          f"{cpu['before']:.2f} s, now {cpu['now']:.2f} s: {cpu['before'] / cpu['now']:.1f}×")
    # The speed work changed no number (within rounding); a method changed since `before` changes many, and says so.
    same = diff <= SAME_NUMBERS_RTOL and not other
    verdict = "same numbers" if same else f"numbers differ (methods changed since {before}, not only their speed)"
    print(f"{'':<36} {verdict}: largest relative difference {diff:.1e}"
          + (f"; differing otherwise: {', '.join(other[:5])}" if other else "; nothing else differs"))
    return best


def main() -> int:
    args = parse_args()
    if args.time_fit_all:  # before anything is imported or set: the analysis/ on PYTHONPATH is the one timed
        return time_fit_all(args.time_fit_all, args.bootstrap, 2, args.worker_out)
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    from analysis.parametric import CHINCHILLA_2022, ChinchillaParams
    from analysis.simulate import simulate_runs
    from analysis.table import read_table

    if args.smoke_test:
        args.naive_starts, args.bootstrap, args.datasets, args.repeats = 20, 50, 1, 1
    laws = [("Chinchilla 2022 law, C 1e18-1e22", CHINCHILLA_2022, np.logspace(18, 22, 8)),
            ("small-lab law, C 1e12-1e16", ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.3, beta=0.35), np.logspace(12, 16, 8)),
            ("steep law, C 1e14-1e18", ChinchillaParams(E=2.0, A=2000.0, B=800.0, alpha=0.6, beta=0.45), np.logspace(14, 18, 8))]
    sets = [(name, simulate_runs(budgets=b, n_per_budget=args.runs_per_budget, params=p, noise=0.01, seed=100 + i), True)
            for i, (name, p, b) in enumerate(laws[: args.datasets])]
    for path in args.csv:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rows the table marks excluded (Epoch's 5 highest losses) are left out
            table = read_table(path)
        sets.append((Path(path).name, table.assign(run_id=[f"row{i}" for i in range(len(table))]), False))
    print(f"machine: {os.cpu_count()} CPUs; numpy {np.__version__}; BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    grid_times = ()
    if sets:  # --datasets 0 and no --csv: the default path alone
        print(f"{'fit (seconds, best of 3)':<36} {'runs':>5} {'grid':>7} {'varpro':>7} {'default':>7}  objectives")
        fits, grid_times = zip(*(compare_fits(name, runs, naive=naive, args=args, np=np) for name, runs, naive in sets))
        print(f"bootstrap, {args.bootstrap} replicates, seed 0")
        for (name, runs, _), fit in list(zip(sets, fits))[:: max(1, len(sets) - 1)]:  # the first and the last set
            compare_bootstrap(name, runs, fit, n_resamples=args.bootstrap, np=np)
    print(f"default `scaling fit` path (every approach, {args.bootstrap} resamples, the backtest), before and now")
    best = compare_default_path(args.default_csv, n_resamples=args.bootstrap, before=args.before, repeats=args.repeats)
    summary = []
    if grid_times:
        grid_s = max(grid_times)
        summary.append(f"the 4,500-start fit {grid_s:.3f} s on the slowest data set "
                       f"(target ≤ 0.5 s: {'met' if grid_s <= 0.5 else 'MISSED'})")
    if best:
        target = f" (target < 5 s on 2 cores: {'met' if best['now'] < 5 else 'MISSED'})" if args.bootstrap == 1000 else ""
        summary.append(f"default path {best['now']:.2f} s{target}, {best['before'] / best['now']:.1f}× faster than at "
                       f"{args.before}")
    print("summary: " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
