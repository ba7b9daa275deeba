"""Approach 3's bootstrap over runs against the same bootstrap stratified by IsoFLOP budget, side by side.

Today each replicate draws the runs with replacement from the whole table (pairs); stratified, it draws within
each budget as many runs as the budget has (`bootstrap.bootstrap_counts(strata=...)`), so every replicate keeps
the design's budgets. On the same `--sweeps` simulated sweeps of each calibration family (analysis/calibration.py,
one seed each, the same replicates' seed for both schemes) this prints, at 4× and 10× the largest budget, the
share of 95% intervals holding the truth (N_opt against the law's; a new run's loss at N_opt, N_opt/2 and
2·N_opt against that run's simulated loss) and the median ln-width of the N_opt interval, "pairs → stratified",
beside the RMS ln error of the point N_opt (the same for both: a normal 95% interval is 3.92 times it wide).
The criteria the comparison was judged by are in docs/plans/2026-12-02-approach3-resampling.md, the result in
docs/methods.md (Calibration).

    python benchmarks/approach3_resampling.py                 # 100 sweeps, all families, both noises (~4 min)
    python benchmarks/approach3_resampling.py --smoke-test    # seconds
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.bootstrap import bootstrap_parametric  # noqa: E402
from analysis.calibration import FAMILIES  # noqa: E402
from analysis.parametric import fit_parametric  # noqa: E402
from analysis.simulate import simulate_runs  # noqa: E402

FACTORS = (4.0, 10.0)
SIZES = {"loss": 1.0, "loss_small": 0.5, "loss_large": 2.0}  # a new run's N over the true N_opt
SCHEMES = {"pairs": False, "stratified": True}


def measure(family, noise: float, n_sweeps: int, n_bootstrap: int) -> dict:
    """({(scheme, factor): {quantity: share inside, "width": median ln-width of N_opt's interval}},
    {factor: RMS ln error of the point N_opt})."""
    hits = {(s, f): {q: [] for q in ("n_opt", *SIZES, "width")} for s in SCHEMES for f in FACTORS}
    rng = np.random.default_rng([0, 2])  # the new runs' noise, the same for both schemes
    ln_errors = {f: [] for f in FACTORS}
    for i in range(n_sweeps):
        runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                             center=family.center, params=family.params, noise=noise, seed=i)
        fit = fit_parametric(runs, search="both")
        boots = {s: bootstrap_parametric(runs, n_resamples=n_bootstrap, seed=i, fit=fit, stratify=strat)
                 for s, strat in SCHEMES.items()}
        for factor in FACTORS:
            compute = factor * max(family.budgets)
            n_opt = float(family.params.optimum(compute)[0])
            if fit.success:
                ln_errors[factor].append(math.log(float(fit.compute_optimal(compute)[0]) / n_opt))
            new_runs = {q: (r * n_opt, float(family.params.loss(r * n_opt, compute / (6 * r * n_opt)))
                            * math.exp(noise * rng.standard_normal())) for q, r in SIZES.items()}
            for scheme, boot in boots.items():
                if not (fit.success and boot.interval_reliable):
                    continue
                cell = hits[(scheme, factor)]
                lo, hi = boot.compute_optimal_intervals(compute)["n_opt"]
                cell["n_opt"].append(lo <= n_opt <= hi)
                cell["width"].append(math.log(hi / lo))
                for q, (n, actual) in new_runs.items():
                    lo, hi = boot.prediction_interval(n, compute / (6 * n), seed=i)
                    cell[q].append(lo <= actual <= hi)
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
    p.add_argument("--smoke-test", action="store_true")
    args = p.parse_args()
    if args.smoke_test:
        args.sweeps, args.bootstrap, args.noise, args.family = 3, 20, [0.006], ["small-lab"]
    print(f"{args.sweeps} sweeps, {args.bootstrap} replicates; coverage pairs → stratified (target 0.90-0.98)")
    print(f"{'family':11s} {'noise':>6s} {'C':>4s}  " + "  ".join(f"{q:>12s}" for q in ("n_opt", *SIZES))
          + f"  {'N_opt ln-width':>15s}  {'RMS ln error':>12s}")
    for name in args.family:
        for noise in args.noise:
            result, rms = measure(FAMILIES[name], noise, args.sweeps, args.bootstrap)
            for factor in FACTORS:
                old, new = result[("pairs", factor)], result[("stratified", factor)]
                cells = "  ".join(f"{old[q]:5.2f} → {new[q]:4.2f}" for q in ("n_opt", *SIZES))
                print(f"{name:11s} {noise:6.3%} {factor:3g}×  {cells}  {old['width']:6.3f} → {new['width']:5.3f}"
                      f"  {rms[factor]:12.3f}", flush=True)


if __name__ == "__main__":
    main()
