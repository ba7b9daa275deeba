"""Coverage of the intervals called 95%, measured on simulated sweeps of known laws (analysis/calibration.py).

For each law family (`analysis.calibration.FAMILIES`: "small-lab", our demo's fitted law on its 3-budget
design; "chinchilla", Hoffmann et al.'s law on 5 budgets) and each relative noise level (default 0.6%, our
runs' measured seed-to-seed spread, and 0.2%, nearer published sweeps), `--sweeps` simulated sweeps are fitted
and the share of intervals that hold the truth is printed per approach and extrapolation factor (4× and 10×
the largest budget): Approach 2's and 3's N_opt, the frontier's L_opt, and the loss of one new run at N_opt
(and at half and twice it) for the frontier and Approach 3 (prediction intervals). The target is 90-98% at the
95% level. "coverage" is the share of intervals holding the truth drawn; "expected" the mean chance of holding
it (for a new run, averaged over that run's noise: the same coverage without the draws' Monte Carlo error;
`analysis.calibration.chance_inside`), with its Monte Carlo standard error ("± se"). With
`--before` the same sweeps are also fitted as before this method (no lack-of-fit widening, no union with the
unselected floor law: both switched off by patching them out), side by side in one run.

    python benchmarks/calibration.py                 # 100 sweeps per family and noise (several minutes)
    python benchmarks/calibration.py --smoke-test    # seconds: 5 sweeps, one noise level
"""

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import frontier, isoflop  # noqa: E402
from analysis.calibration import FAMILIES, calibrate  # noqa: E402


@contextmanager
def method(current: bool):
    """The fits as shipped, or as before (lack-of-fit factor pinned to 1, no unselected floor law)."""
    if current:
        yield
        return
    with mock.patch.object(isoflop, "lack_of_fit_factor", lambda *a, **k: 1.0), \
            mock.patch.object(frontier, "lack_of_fit_factor", lambda *a, **k: 1.0), \
            mock.patch.object(frontier, "_unselected_floor", lambda *a, **k: {}):
        yield


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--noise", type=float, nargs="+", default=[0.006, 0.002])
    p.add_argument("--family", choices=sorted(FAMILIES), nargs="+", default=sorted(FAMILIES, reverse=True))
    p.add_argument("--before", action="store_true", help="also fit every sweep with the intervals before this method")
    p.add_argument("--smoke-test", action="store_true")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.sweeps, args.bootstrap, args.noise = 5, 50, [0.006]
    print(f"{'family':<11} {'noise':>6} {'method':>6} {'×':>3}  {'quantity':<20} {'coverage':>8}  inside/scored  "
          f"{'expected':>8} {'± se':>6}  unreliable  failed")
    for name in args.family:
        for noise in args.noise:
            for current in (True, False) if args.before else (True,):
                start = time.perf_counter()
                with method(current):
                    result = calibrate(FAMILIES[name], n_sweeps=args.sweeps, noise=noise, factors=(4.0, 10.0),
                                       n_bootstrap=args.bootstrap)
                for c in result.coverages:
                    print(f"{name:<11} {noise:>6.3%} {'now' if current else 'before':>6} {c.factor:>3g}  {c.quantity:<20} "
                          f"{c.coverage:>8.3f}  {c.n_inside:>5}/{c.n_scored:<6}  {c.expected_coverage:>8.3f} "
                          f"{c.expected_standard_error:>6.3f}  {c.n_unreliable:>10}  {c.n_failed:>6}", flush=True)
                print(f"  ({args.sweeps} sweeps, {args.bootstrap} replicates each: {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
