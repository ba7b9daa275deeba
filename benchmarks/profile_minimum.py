"""Each IsoFLOP budget's minimum: Approach 2's windowed parabola against Porian et al.'s Akima interpolant.

Porian et al. 2024 take each budget's N* and L* from an Akima interpolant of log loss against log N, minimised
on a fine grid (a minimum at an end does not count); Approach 2 fits a parabola in log N to the lowest run and
up to 2 sizes on each side (docs/methods.md). On `--sweeps` simulated sweeps of each calibration family
(`analysis.calibration.FAMILIES`) this prints, over every budget, the mean and RMS error of ln N* and of L*
(relative) against the law's own optimum at that budget, at each noise level.

    python benchmarks/profile_minimum.py                 # under a minute
    python benchmarks/profile_minimum.py --smoke-test    # seconds
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.interpolate import Akima1DInterpolator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.calibration import FAMILIES  # noqa: E402
from analysis.isoflop import fit_isoflop  # noqa: E402
from analysis.simulate import simulate_runs  # noqa: E402


def akima_minimum(n, loss) -> tuple[float, float]:
    """(ln N*, L*) of Porian et al.'s interpolant on 2,001 points; NaN when the minimum is at an end."""
    order = np.argsort(n)
    x, y = np.log(n[order]), np.log(loss[order])
    grid = np.linspace(x[0], x[-1], 2001)
    values = Akima1DInterpolator(x, y)(grid)
    i = int(np.argmin(values))
    if i in (0, len(grid) - 1):
        return math.nan, math.nan
    return float(grid[i]), math.exp(values[i])


def errors(name: str, noise: float, n_sweeps: int) -> dict[str, np.ndarray]:
    """Per budget: (ln N* error, relative L* error) of each estimator; NaN where it gave no minimum."""
    family = FAMILIES[name]
    rows = {"parabola": [], "akima": []}
    for seed in range(n_sweeps):
        runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                             center=family.center, params=family.params, noise=noise, seed=seed)
        for profile in fit_isoflop(runs, n_bootstrap=0, warn=False).profiles:
            n_true = float(family.params.optimum(profile.budget)[0])
            loss_true = float(family.params.loss(n_true, profile.budget / (6 * n_true)))
            x, loss = ((math.log(profile.n_opt), profile.loss_opt) if profile.included else (math.nan, math.nan))
            rows["parabola"].append((x - math.log(n_true), loss / loss_true - 1))
            x, loss = akima_minimum(np.asarray(profile.n, float), np.asarray(profile.loss, float))
            rows["akima"].append((x - math.log(n_true), loss / loss_true - 1))
    return {method: np.array(values) for method, values in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--noise", type=float, nargs="+", default=[0.006, 0.002])
    p.add_argument("--smoke-test", action="store_true")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.sweeps, args.noise = 3, [0.006]
    print(f"{'family':<11} {'noise':>6} {'method':<8} {'budgets':>9}  {'ln N* mean':>10} {'rms':>6}  {'L* mean':>8} {'rms':>7}")
    for noise in args.noise:
        for name in ("small-lab", "chinchilla", "off-centre", "kaplan-form"):
            for method, e in errors(name, noise, args.sweeps).items():
                ok = np.isfinite(e[:, 0])
                dx, dl = e[ok, 0], e[ok, 1]
                print(f"{name:<11} {noise:>6.1%} {method:<8} {ok.sum():>4}/{len(e):<4}  {dx.mean():>+10.3f} "
                      f"{math.sqrt(np.mean(dx**2)):>6.3f}  {dl.mean():>+8.3%} {math.sqrt(np.mean(dl**2)):>7.3%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
