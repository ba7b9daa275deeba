"""Approach 3's bootstrap schemes side by side on the same simulated sweeps: the one adopted and its alternatives.

A new run's prediction interval multiplies each bootstrap replicate's L(N, D) by a resampled residual of the fit.
The schemes: "pairs" draws the runs with replacement from the whole table (the scheme until stop 19);
"stratified" draws within each IsoFLOP budget as many runs as it has (`bootstrap.bootstrap_counts(strata=...)`),
so every replicate keeps the design's budgets; "+scaled" resamples the residuals scaled by sqrt(n/(n − k)), n runs
and k free parameters (raw residuals scatter less than the noise by about sqrt((n − k)/n);
`ParametricFit.noise_residuals`). "stratified+scaled" is the default now. On the same `--sweeps` simulated sweeps
of each calibration family (analysis/calibration.py, one seed each, the same replicates' seed and new runs for
every scheme) this prints, at 4× and 10× the largest budget, the share of 95% intervals holding the truth (N_opt
against the law's; a new run's loss at N_opt, N_opt/2 and 2·N_opt against that run's simulated loss), the median
ln-width of the N_opt interval and the RMS ln error of the point N_opt (the same for every scheme: a normal 95%
interval is 3.92 times it wide). With `--expected` a new run's share is its expected value over the run's noise,
Φ(ln(hi/L)/σ) − Φ(ln(lo/L)/σ) for the noiseless truth L, averaged over the sweeps: the same quantity without the
new runs' draws in its Monte Carlo error (at 0.2% noise those draws alone moved a share of 100 sweeps by 0.08).
The criteria the schemes were judged by are in
docs/plans/2026-12-02-approach3-resampling.md, the result in docs/methods.md (Calibration).

    python benchmarks/approach3_resampling.py                 # 100 sweeps, all families, both noises (~5 min)
    python benchmarks/approach3_resampling.py --sweeps 500 --first-seed 1000 --family small-lab off-centre chinchilla
    python benchmarks/approach3_resampling.py --smoke-test    # seconds
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.bootstrap import bootstrap_parametric  # noqa: E402
from analysis.calibration import FAMILIES, chance_inside  # noqa: E402
from analysis.parametric import fit_parametric  # noqa: E402
from analysis.powerlaw import percentile_interval  # noqa: E402
from analysis.simulate import simulate_runs  # noqa: E402

FACTORS = (4.0, 10.0)
SIZES = {"loss": 1.0, "loss_small": 0.5, "loss_large": 2.0}  # a new run's N over the true N_opt
# (stratified?, residuals scaled by sqrt(n/(n − k))?): today's scheme first
SCHEMES = {"pairs": (False, False), "stratified": (True, False), "stratified+scaled": (True, True),
           "pairs+scaled": (False, True)}


def new_run_interval(boot, fit, n: float, d: float, *, scaled: bool, seed: int) -> tuple[float, float]:
    """`BootstrapResult.prediction_interval` with the fit's residuals scaled (`noise_residuals`, the default) or raw."""
    replicates = np.asarray(boot.loss_samples(n, d), dtype=float).ravel()
    residuals = fit.noise_residuals if scaled else fit.residuals
    noise = np.exp(-np.random.default_rng(seed).choice(residuals, size=replicates.size))
    return percentile_interval(replicates * noise, boot.level)


def measure(family, noise: float, n_sweeps: int, n_bootstrap: int, first_seed: int = 0, expected: bool = False):
    """({(scheme, factor): {quantity: share inside, "width": median ln-width of N_opt's interval}},
    {factor: RMS ln error of the point N_opt})."""
    hits = {(s, f): {q: [] for q in ("n_opt", *SIZES, "width")} for s in SCHEMES for f in FACTORS}
    rng = np.random.default_rng([first_seed, 2])  # the new runs' noise, the same for every scheme
    ln_errors = {f: [] for f in FACTORS}
    for i in range(first_seed, first_seed + n_sweeps):
        runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                             center=family.center, params=family.params, noise=noise, seed=i)
        fit = fit_parametric(runs, search="both")
        boots = {strat: bootstrap_parametric(runs, n_resamples=n_bootstrap, seed=i, fit=fit, stratify=strat)
                 for strat in (False, True)}
        for factor in FACTORS:
            compute = factor * max(family.budgets)
            n_opt = float(family.params.optimum(compute)[0])
            if fit.success:
                ln_errors[factor].append(math.log(float(fit.compute_optimal(compute)[0]) / n_opt))
            truths = {q: (r * n_opt, float(family.params.loss(r * n_opt, compute / (6 * r * n_opt)))) for q, r in SIZES.items()}
            draws = {q: math.exp(noise * rng.standard_normal()) for q in SIZES}
            for scheme, (strat, scaled) in SCHEMES.items():
                boot = boots[strat]
                if not (fit.success and boot.interval_reliable):
                    continue
                cell = hits[(scheme, factor)]
                lo, hi = boot.compute_optimal_intervals(compute)["n_opt"]
                cell["n_opt"].append(lo <= n_opt <= hi)
                cell["width"].append(math.log(hi / lo))
                for q, (n, truth) in truths.items():
                    lo, hi = new_run_interval(boot, fit, n, compute / (6 * n), scaled=scaled, seed=i)
                    if expected:
                        cell[q].append(chance_inside((lo, hi), truth, noise))
                    else:
                        cell[q].append(lo <= truth * draws[q] <= hi)
    shares = {key: {q: (float(np.median(v)) if q == "width" else float(np.mean(v))) for q, v in cell.items()}
              for key, cell in hits.items()}
    return shares, {f: float(np.sqrt(np.mean(np.square(e)))) for f, e in ln_errors.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--noise", type=float, nargs="+", default=[0.006, 0.002])
    p.add_argument("--family", choices=sorted(FAMILIES), nargs="+",
                   default=["small-lab", "off-centre", "chinchilla", "kaplan-form"])
    p.add_argument("--first-seed", type=int, default=0, help="sweep i uses seed i from here (fresh sweeps: a new start)")
    p.add_argument("--expected", action="store_true", help="a new run's coverage averaged over its noise (docstring)")
    p.add_argument("--smoke-test", action="store_true")
    args = p.parse_args()
    if args.smoke_test:
        args.sweeps, args.bootstrap, args.noise, args.family = 3, 20, [0.006], ["small-lab"]
    print(f"{args.sweeps} sweeps from seed {args.first_seed}, {args.bootstrap} replicates; coverage of 95% intervals "
          f"(target 0.90-0.98){'; new runs: expected over their noise' if args.expected else ''}")
    print(f"{'family':11s} {'noise':>6s} {'C':>4s} {'scheme':18s} " + " ".join(f"{q:>10s}" for q in ("n_opt", *SIZES))
          + f" {'N_opt ln-width':>14s} {'RMS ln error':>12s}")
    for name in args.family:
        for noise in args.noise:
            result, rms = measure(FAMILIES[name], noise, args.sweeps, args.bootstrap, args.first_seed, args.expected)
            for factor in FACTORS:
                for scheme in SCHEMES:
                    cell = result[(scheme, factor)]
                    print(f"{name:11s} {noise:6.3%} {factor:3g}× {scheme:18s} "
                          + " ".join(f"{cell[q]:10.3f}" for q in ("n_opt", *SIZES))
                          + f" {cell['width']:14.3f} {rms[factor]:12.3f}", flush=True)


if __name__ == "__main__":
    main()
