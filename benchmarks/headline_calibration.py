"""Does the headline's interval mean 95%? The predictor a user is shown, scored on simulated sweeps of known laws.

`benchmarks/calibration.py` scores each predictor's intervals apart. A user reads the headline: the predictor
the rule picks per sweep from its own backtest (analysis/prediction.py). For `--sweeps` sweeps of each family
(`analysis.calibration.FAMILIES`) at 0.6% noise, `fit_all` (Approaches 2 and 3, `--bootstrap` replicates, the
largest budget held out to choose the headline) predicts a new run at the true N_opt 4× beyond the largest
budget, the truth times its own noise; this prints how often each predictor led, the headline's coverage
(over reliable intervals) and its median |error| against the law.

    python benchmarks/headline_calibration.py                 # several minutes
    python benchmarks/headline_calibration.py --smoke-test    # seconds
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.calibration import FAMILIES  # noqa: E402
from analysis.simulate import simulate_runs  # noqa: E402
from analysis.study_fit import fit_all  # noqa: E402

NOISE = 0.006  # our runs' seed-to-seed spread (docs/methods.md, Calibration)


def headline_rows(name: str, n_sweeps: int, n_bootstrap: int) -> None:
    family = FAMILIES[name]
    compute = 4 * max(family.budgets)
    n, d = (float(v) for v in family.params.optimum(compute))
    truth = float(family.params.loss(n, d))
    rng = np.random.default_rng(11)
    led, inside, unreliable, errors = {}, [], 0, []
    for seed in range(n_sweeps):
        runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                             center=family.center, params=family.params, noise=NOISE, seed=seed)
        fit = fit_all(runs, approaches=(2, 3), n_bootstrap=n_bootstrap, seed=seed)
        predictor = fit.headline.predictor
        led[predictor] = led.get(predictor, 0) + 1
        estimate = fit.predict_run(n, d, by=predictor)
        actual = truth * math.exp(NOISE * rng.standard_normal())
        errors.append(abs(estimate.value / truth - 1))
        if not (estimate.reliable and all(map(math.isfinite, estimate.interval))):
            unreliable += 1
            continue
        inside.append(estimate.interval[0] <= actual <= estimate.interval[1])
    shares = ", ".join(f"{p} {k}" for p, k in sorted(led.items()))
    print(f"{name:<11} led: {shares:<28} coverage {np.mean(inside):.2f} ({sum(inside)}/{len(inside)}, "
          f"{unreliable} unreliable)  median |error| {np.median(errors):.2%}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--family", choices=sorted(FAMILIES), nargs="+", default=sorted(FAMILIES))
    p.add_argument("--smoke-test", action="store_true")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.sweeps, args.bootstrap = 2, 10
    print(f"{args.sweeps} sweeps per family, {NOISE:.1%} noise, {args.bootstrap} replicates; a new run at N_opt, "
          "4× the largest budget")
    for name in args.family:
        headline_rows(name, args.sweeps, args.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
