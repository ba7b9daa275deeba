"""Approach 2's window where the lowest run is one size from an end: 3 sizes (the rule) against 1 + 2 sizes.

`analysis.isoflop.profile_window` takes the same number of sizes on each side of a budget's lowest run, so a
lowest run one size from an end gets a 3-size window, through which the parabola passes exactly. The
alternative takes up to 2 sizes on each side independently (4 sizes there, one residual degree of freedom).
On `--sweeps` simulated sweeps of each design (the calibration families, and chinchilla's law and Kaplan's form
with the sizes centred 3× above or below the optimum), over every budget whose lowest run is one size from an
end, this prints each window's mean and RMS error of ln N* and of L* (relative) against the law's optimum, and
how many vertices lie more than 0.5% below the budget's lowest run. Records: docs/methods.md (Approach 2).

    python benchmarks/window_sides.py                 # under a minute
    python benchmarks/window_sides.py --smoke-test    # seconds
"""

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.calibration import FAMILIES  # noqa: E402
from analysis.isoflop import fit_parabola, profile_window  # noqa: E402
from analysis.simulate import simulate_runs  # noqa: E402

DESIGNS = {
    "off-centre": FAMILIES["off-centre"],
    "small-lab": FAMILIES["small-lab"],
    "chinchilla ×3": dataclasses.replace(FAMILIES["chinchilla"], center=3.0),
    "chinchilla ×1/3": dataclasses.replace(FAMILIES["chinchilla"], center=1 / 3),
    "kaplan-form ×3": dataclasses.replace(FAMILIES["kaplan-form"], center=3.0),
    "kaplan-form ×1/3": dataclasses.replace(FAMILIES["kaplan-form"], center=1 / 3),
}


def vertex(log_n, loss) -> tuple[float, float]:
    """(ln N*, L*) of the least-squares parabola; NaN when it opens downward or its vertex leaves the points."""
    p = fit_parabola(log_n, loss, outlier_threshold=None)
    if p.c2 <= 0 or not log_n.min() <= p.vertex <= log_n.max():
        return math.nan, math.nan
    return p.vertex, p.minimum


def errors(design, noise: float, n_sweeps: int) -> dict[str, np.ndarray]:
    """Per qualifying budget and window: (ln N* error, relative L* error, vertex > 0.5% below the lowest run)."""
    rows = {"3 sizes": [], "1 + 2": []}
    for seed in range(n_sweeps):
        runs = simulate_runs(budgets=design.budgets, n_per_budget=design.n_per_budget, width=design.width,
                             center=design.center, params=design.params, noise=noise, seed=seed)
        for budget, group in runs.groupby("budget"):
            group = group.sort_values("N")
            log_n, loss = np.log(group["N"].to_numpy(float)), group["loss"].to_numpy(float)
            lowest, last = int(np.argmin(loss)), len(loss) - 1
            if min(lowest, last - lowest) != 1 or max(lowest, last - lowest) < 2:
                continue
            n_true = float(design.params.optimum(budget)[0])
            loss_true = float(design.params.loss(n_true, budget / (6 * n_true)))
            rule = profile_window(np.exp(log_n), loss)  # the 3 sizes the fit itself takes
            wider = slice(0, 4) if lowest == 1 else slice(last - 3, last + 1)
            for name, window in (("3 sizes", rule), ("1 + 2", wider)):
                x, value = vertex(log_n[window], loss[window])
                rows[name].append((x - math.log(n_true), value / loss_true - 1, value < 0.995 * loss.min()))
    return {name: np.array(values, dtype=float).reshape(-1, 3) for name, values in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=int, default=300)
    p.add_argument("--noise", type=float, nargs="+", default=[0.006, 0.002])
    p.add_argument("--smoke-test", action="store_true")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.sweeps, args.noise = 5, [0.006]
    print(f"{'design':<17} {'noise':>6} {'window':<8} {'budgets':>9}  {'ln N* mean':>10} {'rms':>6}  "
          f"{'L* mean':>8} {'rms':>7}  {'>0.5% below':>11}")
    for noise in args.noise:
        for name, design in DESIGNS.items():
            for window, e in errors(design, noise, args.sweeps).items():
                ok = np.isfinite(e[:, 0])
                if not ok.any():
                    print(f"{name:<17} {noise:>6.1%} {window:<8} {'none':>9}")
                    continue
                dx, dl = e[ok, 0], e[ok, 1]
                print(f"{name:<17} {noise:>6.1%} {window:<8} {ok.sum():>4}/{len(e):<4}  {dx.mean():>+10.3f} "
                      f"{math.sqrt(np.mean(dx**2)):>6.3f}  {dl.mean():>+8.3%} {math.sqrt(np.mean(dl**2)):>7.3%}  "
                      f"{int(e[ok, 2].sum()):>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
