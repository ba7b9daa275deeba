"""How well the loss frontier predicts a run built off the compute-optimal size, beyond the sweep.

The frontier predicts L(N, C) = E + G·C^−γ·S(ln N − ln N_opt(C)) (analysis/frontier.py). This prints, for
runs at N_opt/3 to 3·N_opt of a known law:
- on a noiseless sweep of Chinchilla's law (5 budgets 1e18–1e20 × 9 sizes), the predicted cost of being off
  N_opt (the loss over the predicted L_opt) against the true cost, 10× beyond the sweep;
- on `--sweeps` noisy sweeps of each calibration family (`analysis.calibration.FAMILIES`, 0.6% noise), 4× beyond
  the largest budget at N_opt/2, N_opt and 2·N_opt: the median error of the prediction, the median |error| of
  the cost alone (what the shape decides), the share of 95% prediction intervals holding a new run's loss (the
  truth times its own noise) and the median interval width over the prediction.

To compare two versions of the shape, run one copy of this file against each checkout, e.g. `git worktree add
/tmp/old <commit> && cp benchmarks/off_optimum.py /tmp/old/benchmarks/ && python /tmp/old/benchmarks/off_optimum.py`.
This version asks the law for `optimum` and `loss` (checkouts from 7d23d6c on); the old → new figures in
docs/methods.md were measured with its first version, `git show 2b58cfe:benchmarks/off_optimum.py`, which uses
`parametric.compute_optimal` and `predict_loss` and so runs on older checkouts too.

    python benchmarks/off_optimum.py                 # about a minute
    python benchmarks/off_optimum.py --smoke-test    # seconds
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.calibration import FAMILIES  # noqa: E402
from analysis.frontier import fit_frontier  # noqa: E402
from analysis.isoflop import fit_isoflop  # noqa: E402
from analysis.parametric import CHINCHILLA_2022  # noqa: E402
from analysis.simulate import simulate_runs  # noqa: E402

NOISE = 0.006  # our runs' seed-to-seed spread (docs/methods.md, Calibration)


def true_loss(law, n, compute) -> float:
    return float(law.loss(n, compute / (6 * n)))


def noiseless_chinchilla() -> None:
    runs = simulate_runs(budgets=np.geomspace(1e18, 1e20, 5), n_per_budget=9, width=8.0, noise=0.0)
    fit = fit_frontier(fit_isoflop(runs, n_bootstrap=0, warn=False), n_bootstrap=0)
    far = 1e21
    n_opt = float(CHINCHILLA_2022.optimum(far)[0])
    print(f"noiseless Chinchilla law, 10× beyond the sweep (C = {far:.0e}): cost of a run off N_opt")
    for ratio in (1 / 3, 0.5, 2.0, 3.0):
        n = ratio * n_opt
        true_cost = true_loss(CHINCHILLA_2022, n, far) - true_loss(CHINCHILLA_2022, n_opt, far)
        cost = float(fit.predict_loss(n, far) - fit.loss_at_optimum(far))
        print(f"  N = {ratio:.3g}·N_opt  true {true_cost:.4f}  predicted {cost:.4f}  error {cost / true_cost - 1:+.1%}")


def family_rows(name: str, n_sweeps: int, n_bootstrap: int) -> None:
    family = FAMILIES[name]
    compute = 4 * max(family.budgets)
    n_opt = float(family.params.optimum(compute)[0])
    rng = np.random.default_rng(7)
    rows = {ratio: [] for ratio in (0.5, 1.0, 2.0)}
    for seed in range(n_sweeps):
        runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                             center=family.center, params=family.params, noise=NOISE, seed=seed)
        try:
            approach2 = fit_isoflop(runs, n_bootstrap=n_bootstrap, seed=seed, warn=False)
        except ValueError:
            continue
        if not approach2.success:
            continue
        fit = fit_frontier(approach2, n_bootstrap=n_bootstrap, seed=seed)
        if not (fit.success and fit.interval_reliable):
            continue  # unreliable intervals are not scored (docs/methods.md)
        at_optimum = float(fit.loss_at_optimum(compute))
        for ratio, scored in rows.items():
            n = ratio * n_opt
            truth = true_loss(family.params, n, compute)
            predicted = float(fit.predict_loss(n, compute))
            lo, hi = fit.prediction_interval(n, compute, seed=seed)
            actual = truth * math.exp(NOISE * rng.standard_normal())
            cost_error = ((predicted - at_optimum) - (truth - true_loss(family.params, n_opt, compute))) / truth
            scored.append((predicted / truth - 1, cost_error, lo <= actual <= hi, (hi - lo) / predicted))
    for ratio, scored in rows.items():
        error, cost_error, inside, width = (np.array(column, dtype=float) for column in zip(*scored))
        print(f"{name:<11} {ratio:>5g}  {len(scored):>6}  {np.median(error):>+8.2%}  {np.median(abs(cost_error)):>10.2%}  "
              f"{inside.mean():>8.2f}  {np.median(width):>6.3f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--smoke-test", action="store_true")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.sweeps, args.bootstrap = 3, 20
    noiseless_chinchilla()
    print(f"\n{args.sweeps} sweeps per family, {NOISE:.1%} noise, {args.bootstrap} replicates, 4× the largest budget")
    print(f"{'family':<11} {'N/N_opt':>5}  {'scored':>6}  {'error':>8}  {'|cost err|':>10}  {'coverage':>8}  {'width':>6}")
    for name in ("small-lab", "chinchilla", "off-centre", "kaplan-form"):
        family_rows(name, args.sweeps, args.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
