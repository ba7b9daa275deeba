"""Do intervals called 95% cover 95%? Coverage of our intervals measured on simulated sweeps of a known law.

For each of `n_sweeps` simulated IsoFLOP sweeps (`analysis.simulate.simulate_runs`, one seed each) of a
`LawFamily`, the approaches are fitted exactly as `fit_all` fits them (Approach 2 with its parametric
bootstrap, the loss frontier through its minima, Approach 3 with its bootstrap over runs), and at each
`factor` × the largest budget we check whether the interval holds the truth:
- "approach2 n_opt", "approach3 n_opt": the confidence interval of N_opt(C) against the law's true N_opt;
- "frontier loss_opt": the frontier's interval of L_opt(C) against the law's true loss at N_opt;
- "frontier loss", "approach3 loss": the *prediction* interval of one new run at the true N_opt(C) (what a
  validation run is checked against) against that run's simulated loss, the truth times its own noise;
- "... loss_small", "... loss_large": the same for a new run at half and at twice the true N_opt(C), the span a
  researcher picks a model's size from near the optimum (well inside the families' own ±3× and ±8× sweeps):
  what the frontier's shape off the optimum and Approach 3's L(N, D) away from N_opt predict.
An interval its fit marks unreliable (`interval_reliable` False: most replicates dropped, the fit failed or
sits on a bound) is counted apart, not scored as a 95% interval. The report is the share inside, by
(predictor, quantity), over the sweeps that gave a reliable interval.

A new run's share also comes as its expected value over that run's own noise (`chance_inside`): with the
simulator's loss = L(N, D)·exp(σ·z), an interval [lo, hi] holds the run with probability
Φ(ln(hi/L)/σ) − Φ(ln(lo/L)/σ) for the noiseless truth L. Averaged over the sweeps it estimates the same coverage
as the share of draws (it is that share's conditional mean given the interval: Rao–Blackwell), without the
draws' own Monte Carlo error, which at 0.2% noise, where the truth often sits near an interval's edge, moved a
share of 100 sweeps by up to 0.08. For N_opt and L_opt, whose truths are fixed, the two are the same.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from analysis.bootstrap import bootstrap_parametric
from analysis.frontier import fit_frontier
from analysis.isoflop import fit_isoflop
from analysis.kaplan_law import KAPLAN_2020
from analysis.parametric import CHINCHILLA_2022, ChinchillaParams, fit_parametric
from analysis.simulate import Law, simulate_runs

QUANTITIES = ("approach2 n_opt", "approach3 n_opt", "approach3 loss", "approach3 loss_small", "approach3 loss_large",
              "frontier loss_opt", "frontier loss", "frontier loss_small", "frontier loss_large")
OFF_OPTIMUM = {"loss_small": 0.5, "loss_large": 2.0}  # a new run's N against the true N_opt
APPROACHES = ("approach2", "approach3")


@dataclass(frozen=True)
class LawFamily:
    """A simulated sweep design: the true law (a `simulate.Law`), its IsoFLOP budgets and the sizes per budget
    (±`width`× around `center`·N_opt: 1 centres the sweep on the optimum)."""

    name: str
    params: Law
    budgets: tuple[float, ...]
    n_per_budget: int
    width: float
    center: float = 1.0

    def __post_init__(self):
        if len(self.budgets) < 2 or not all(b > 0 and math.isfinite(b) for b in self.budgets):
            raise ValueError(f"budgets must be ≥ 2 positive finite FLOP counts, got {self.budgets}")
        if self.n_per_budget < 3:
            raise ValueError(f"n_per_budget must be ≥ 3, got {self.n_per_budget}")
        if not self.width > 1:
            raise ValueError(f"width must be > 1, got {self.width}")
        if not (self.center > 0 and math.isfinite(self.center)):
            raise ValueError(f"center must be positive and finite, got {self.center}")


# Two families far apart. "small-lab": the law our demo sweep fitted (README: L = 1.180 + 73.1/N^0.534 +
# 3368/D^0.667) on its design, 3 budgets × 5 sizes over ±3×. "chinchilla": Hoffmann et al.'s Approach 3 law on
# 5 budgets 1e18–1e20 × 9 sizes over ±8× (the simulator's default design), where E is most of the loss.
FAMILIES = {
    "small-lab": LawFamily("small-lab", ChinchillaParams(E=1.180, A=73.1, B=3368.0, alpha=0.534, beta=0.667),
                           (1e11, 3.16e11, 1e12), 5, 3.0),
    "chinchilla": LawFamily("chinchilla", CHINCHILLA_2022, tuple(np.geomspace(1e18, 1e20, 5)), 9, 8.0),
}
# "off-centre": small-lab with the sizes centred where the demo's prior put them, 20 tokens per parameter,
# which is 1.77×, 1.66× and 1.56× the law's own N_opt at its budgets (1.66× in all): most lowest runs sit one size
# from the small end, so most windows are 3 sizes (Approach 2's noise scale then comes from whole profiles).
FAMILIES["off-centre"] = dataclasses.replace(FAMILIES["small-lab"], name="off-centre", center=1.66)
# "kaplan-form": a truth whose form is not the one we fit (analysis/kaplan_law.py: Kaplan et al. 2020's eq. 1.5, no
# floor, the walls a power 0.095 of two exponentials) on chinchilla's design, 5 budgets 1e18–1e20 × 9 sizes over ±8×:
# what our intervals cover where the law is misspecified, as on real sweeps it is.
FAMILIES["kaplan-form"] = LawFamily("kaplan-form", KAPLAN_2020, tuple(np.geomspace(1e18, 1e20, 5)), 9, 8.0)


@dataclass(frozen=True)
class Coverage:
    """How often one kind of interval held the truth. One entry per reliable interval scored: `hits`, whether it
    held the truth drawn, and `chances`, the probability it holds it (`chance_inside`: the same 0 or 1 where the
    truth is fixed); `n_unreliable` intervals were marked unreliable and `n_failed` sweeps gave none."""

    quantity: str
    factor: float
    hits: tuple[bool, ...]
    chances: tuple[float, ...]
    n_unreliable: int
    n_failed: int

    def __post_init__(self):
        if len(self.hits) != len(self.chances):
            raise ValueError(f"hits and chances must pair up, got {len(self.hits)} and {len(self.chances)}")

    @property
    def n_inside(self) -> int:
        return sum(self.hits)

    @property
    def n_scored(self) -> int:
        return len(self.hits)

    @property
    def coverage(self) -> float:
        """The share of intervals that held the truth drawn."""
        return self.n_inside / self.n_scored if self.n_scored else math.nan

    @property
    def expected_coverage(self) -> float:
        """The mean chance of holding the truth (module docstring): the same coverage, less Monte Carlo error."""
        return float(np.mean(self.chances)) if self.chances else math.nan

    @property
    def expected_standard_error(self) -> float:
        """Monte Carlo standard error of `expected_coverage`, from the sweeps' spread (binomial for fixed truths)."""
        n = len(self.chances)
        return float(np.std(self.chances, ddof=1) / math.sqrt(n)) if n > 1 else math.nan


def chance_inside(interval: tuple[float, float], loss: float, noise: float) -> float:
    """The probability that [lo, hi] holds a run whose loss is `loss`·exp(`noise`·z), z standard normal (module
    docstring); with no noise, whether it holds `loss` itself."""
    lo, hi = interval
    if noise == 0:
        return float(lo <= loss <= hi)
    return float(ndtr(math.log(hi / loss) / noise) - ndtr(math.log(lo / loss) / noise))


@dataclass(frozen=True)
class CalibrationResult:
    """Coverage by quantity and extrapolation factor over `n_sweeps` sweeps of `family` at relative `noise`."""

    family: str
    noise: float
    n_sweeps: int
    n_bootstrap: int
    level: float
    coverages: tuple[Coverage, ...]

    def coverage(self, quantity: str, factor: float) -> Coverage:
        return next(c for c in self.coverages if c.quantity == quantity and c.factor == factor)


def _truth(params: Law, compute: float, noise: float, rng, off_rng) -> tuple[dict[str, float], dict[str, float]]:
    """(truth, noiseless): the law's N_opt, D_opt, L_opt at `compute`, and new runs' losses (the law times each
    run's own noise) at N_opt ("loss", noise from `rng`) and at the sizes of `OFF_OPTIMUM` (the run's N under
    "n_" + its key; noise from `off_rng`, its own stream, so the runs at N_opt draw what they drew before these
    were added); `noiseless` holds the new runs' losses without their noise."""
    n_opt, d_opt = (float(v) for v in params.optimum(compute))
    loss_opt = float(params.loss(n_opt, d_opt))
    truth = {"n_opt": n_opt, "d_opt": d_opt, "loss_opt": loss_opt,
             "loss": loss_opt * math.exp(noise * rng.standard_normal())}
    noiseless = {"loss": loss_opt}
    for key, ratio in OFF_OPTIMUM.items():
        n = ratio * n_opt
        truth["n_" + key] = n
        noiseless[key] = float(params.loss(n, compute / (6 * n)))
        truth[key] = noiseless[key] * math.exp(noise * off_rng.standard_normal())
    return truth, noiseless


def _fits(runs, approaches, *, n_bootstrap: int, level: float, seed: int, search: str):
    """(Approach 2, frontier, Approach 3, its bootstrap) as fit_all fits them; None where not fitted."""
    approach2 = frontier = fit = boot = None
    if "approach2" in approaches:
        try:
            # warn=False: excluded budgets and the like are in its notes; what matters here is the interval
            approach2 = fit_isoflop(runs, n_bootstrap=n_bootstrap, level=level, seed=seed, warn=False)
        except ValueError:
            pass
    if approach2 is not None and approach2.success:
        frontier = fit_frontier(approach2, n_bootstrap=n_bootstrap, level=level, seed=seed)
    if "approach3" in approaches:
        fit = fit_parametric(runs, search=search)
        boot = bootstrap_parametric(runs, n_resamples=n_bootstrap, seed=seed, level=level, fit=fit)
    return approach2, frontier, fit, boot


def _intervals_at(fits, compute: float, truth: dict, seed: int) -> dict:
    """{quantity: (interval, reliable)} at one compute; a quantity whose fit failed is absent."""
    approach2, frontier, fit, boot = fits
    out = {}
    if approach2 is not None and approach2.success:
        out["approach2 n_opt"] = (approach2.n_opt_interval(compute), approach2.interval_reliable)
    if frontier is not None:
        reliable = frontier.success and frontier.interval_reliable
        out["frontier loss_opt"] = (frontier.loss_at_optimum_interval(compute), reliable)
        out["frontier loss"] = (frontier.prediction_interval(truth["n_opt"], compute, seed=seed), reliable)
        for key in OFF_OPTIMUM:
            out["frontier " + key] = (frontier.prediction_interval(truth["n_" + key], compute, seed=seed), reliable)
    if boot is None:
        return out
    reliable = fit.success and boot.interval_reliable
    out["approach3 n_opt"] = (boot.compute_optimal_intervals(compute)["n_opt"], reliable)
    out["approach3 loss"] = (boot.prediction_interval(truth["n_opt"], truth["d_opt"], seed=seed), reliable)
    for key in OFF_OPTIMUM:
        n = truth["n_" + key]
        out["approach3 " + key] = (boot.prediction_interval(n, compute / (6 * n), seed=seed), reliable)
    return out


def calibrate(family: LawFamily, *, n_sweeps: int = 100, noise: float = 0.006, factors=(4.0,),
              n_bootstrap: int = 200, level: float = 0.95, seed: int = 0,
              approaches=APPROACHES, search: str = "both") -> CalibrationResult:
    """Coverage of every interval kind in the module docstring over `n_sweeps` simulated sweeps of `family`
    with relative noise `noise` (sweep i uses seed `seed + i`), at each of `factors` × the largest budget.
    approaches: which fits to run, of "approach2" (with the frontier) and "approach3" (the costly one);
    search: Approach 3's starts (`parametric.fit_parametric`): "varpro" is the cheap one, reaching the default's
    objective to ~1e-13 on such sweeps (docs/methods.md), for quick checks."""
    if n_sweeps < 1 or n_bootstrap < 2:
        raise ValueError(f"n_sweeps must be ≥ 1 and n_bootstrap ≥ 2, got {n_sweeps} and {n_bootstrap}")
    if not approaches or set(approaches) - set(APPROACHES):
        raise ValueError(f"approaches must be a non-empty subset of {APPROACHES}, got {approaches!r}")
    factors = tuple(float(f) for f in factors)
    if not factors or not all(f > 0 for f in factors):
        raise ValueError(f"factors must be positive multiples of the largest budget, got {factors}")
    hits = {(q, f): [] for q in QUANTITIES for f in factors}
    chances = {(q, f): [] for q in QUANTITIES for f in factors}
    unscored = {(q, f): [0, 0] for q in QUANTITIES for f in factors}  # unreliable, failed
    rng, off_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    for i in range(n_sweeps):
        runs = simulate_runs(budgets=family.budgets, n_per_budget=family.n_per_budget, width=family.width,
                             center=family.center, params=family.params, noise=noise, seed=seed + i)
        fits = _fits(runs, approaches, n_bootstrap=n_bootstrap, level=level, seed=seed + i, search=search)
        for factor in factors:
            compute = factor * max(family.budgets)
            truth, noiseless = _truth(family.params, compute, noise, rng, off_rng)
            intervals = _intervals_at(fits, compute, truth, seed + i)
            for quantity in QUANTITIES:
                key = (quantity, factor)
                if quantity not in intervals or not all(map(math.isfinite, intervals[quantity][0])):
                    unscored[key][1] += 1
                    continue
                (lo, hi), reliable = intervals[quantity]
                if not reliable:
                    unscored[key][0] += 1
                    continue
                what = quantity.split()[1]
                hits[key].append(bool(lo <= truth[what] <= hi))
                chances[key].append(chance_inside((lo, hi), noiseless[what], noise) if what in noiseless
                                    else float(hits[key][-1]))
    # the frontier's quantities come with Approach 2's fit, Approach 3's with its own
    wanted = [q for q in QUANTITIES if ("approach3" if q.startswith("approach3") else "approach2") in approaches]
    coverages = tuple(Coverage(q, f, tuple(hits[(q, f)]), tuple(chances[(q, f)]), *unscored[(q, f)])
                      for f in factors for q in wanted)
    return CalibrationResult(family=family.name, noise=noise, n_sweeps=n_sweeps, n_bootstrap=n_bootstrap,
                             level=level, coverages=coverages)
