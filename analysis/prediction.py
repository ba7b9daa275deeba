"""What scaling-lab predicts at a compute budget: one typed answer that every command reads.

`StudyFit.predict_at(C)` returns a `Prediction`: per approach an `Allocation` (N_opt, D_opt, tokens per
parameter and the loss there, each an `Estimate` with its interval), the learning rate and batch size where
their laws were fitted, the `Headline` (which predictor the answer leads with, and why) and warnings about
how far out the prediction is. `scaling predict`, `scaling study`, the report and the plots all read it.

The two predictors of a run's loss, and the rule that picks the headline between them, are stated in
docs/methods.md ("The headline predictor"):
- "frontier": N_opt from Approach 2 (the IsoFLOP minima, measured directly) and the loss from the loss
  frontier through those minima;
- "approach3": N_opt and the loss from Approach 3's L(N, D).
The rule, fixed before any validation run is seen: the predictor whose loss predictions erred less when
the sweep's own largest budget was held out (the backtest) leads; a difference within the standard error
of that mean error (the runs' own noise over the held-out runs) is a tie, and ties go to Approach 3, the
law with a floor. Without a backtest Approach 3 leads; a predictor whose fit failed never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.compute_per_token import SIX_N, ComputePerToken

PREDICTORS = ("frontier", "approach3")
APPROACH_OF = {"frontier": "approach2", "approach3": "approach3", "approach1": "approach1"}
APPROACH_NAMES = {"approach1": "Approach 1 (envelope)", "approach2": "Approach 2 (IsoFLOP)",
                  "approach3": "Approach 3 (parametric)"}
PREDICTOR_NAMES = {"frontier": "loss frontier (Approach 2)", "approach3": "Approach 3 L(N, D)",
                   "approach1": "Approach 1 (no loss law)"}
NAN_PAIR = (math.nan, math.nan)


class NoFitError(ValueError):
    """No approach could be fitted to the runs, so there is nothing to predict from (`scaling` exits 1)."""


def tokens_at(compute, n, per_token: ComputePerToken | None = None):
    """D = C / f(N): the tokens a model of N parameters trains on with C FLOPs, f the table's compute per token
    (`analysis.compute_per_token`); None: f = 6·N, C = 6·N·D (Kaplan et al. 2020, eq. 2.1)."""
    return (per_token or SIX_N).tokens(compute, n)


@dataclass(frozen=True)
class Estimate:
    """A value with its interval at the prediction's level ((nan, nan) where none could be formed).

    `reliable` is False where the interval comes from a bootstrap that does not mean its level (most replicates
    dropped, or its fit failed: `interval_reliable` of the fit's bootstrap): it is shown, marked, and not scored."""

    value: float
    interval: tuple[float, float] = NAN_PAIR
    reliable: bool = True

    def __post_init__(self):
        object.__setattr__(self, "value", float(self.value))
        lo, hi = self.interval
        object.__setattr__(self, "interval", (float(lo), float(hi)))

    @property
    def known(self) -> bool:
        return math.isfinite(self.value)

    @property
    def has_interval(self) -> bool:
        return all(math.isfinite(v) for v in self.interval)


UNKNOWN = Estimate(math.nan)


@dataclass(frozen=True)
class Allocation:
    """One approach's compute-optimal allocation at C and the loss there (`loss` unknown for Approach 1,
    which has no loss law; Approach 2's loss is the loss frontier's)."""

    approach: str
    n_opt: Estimate
    d_opt: Estimate
    tokens_per_param: Estimate
    loss: Estimate
    success: bool

    @property
    def name(self) -> str:
        return APPROACH_NAMES[self.approach]


def allocation_from_n_opt(approach: str, compute: float, n_opt: float, n_interval, *, loss: Estimate = UNKNOWN,
                          success: bool = True, per_token: ComputePerToken | None = None,
                          reliable: bool = True) -> Allocation:
    """An allocation from N_opt and its interval alone, with D = C/f(N) (`tokens_at`): a larger N means fewer
    tokens, so the interval's ends swap. `reliable`: whether that interval means its level (`Estimate`)."""
    lo, hi = (float(v) for v in n_interval)
    d, d_lo, d_hi = (float(tokens_at(compute, n, per_token)) for n in (n_opt, hi, lo))
    return Allocation(
        approach=approach, n_opt=Estimate(n_opt, (lo, hi), reliable), d_opt=Estimate(d, (d_lo, d_hi), reliable),
        tokens_per_param=Estimate(d / n_opt, (d_lo / hi, d_hi / lo), reliable), loss=loss, success=success)


@dataclass(frozen=True)
class Headline:
    """Which predictor leads, by the rule in the module docstring, and the backtest errors it compared
    (mean |relative error| on the held-out largest budget; NaN where not scored)."""

    predictor: str
    reason: str
    frontier_error: float = math.nan
    approach3_error: float = math.nan

    def __post_init__(self):
        if self.predictor not in APPROACH_OF:
            raise ValueError(f"predictor must be one of {sorted(APPROACH_OF)}, got {self.predictor!r}")

    @property
    def approach(self) -> str:
        return APPROACH_OF[self.predictor]

    @property
    def name(self) -> str:
        return PREDICTOR_NAMES[self.predictor]


def choose_headline(*, frontier_ok: bool, approach3_ok: bool, approach1_ok: bool, backtest=None,
                    noise_scale: float = math.nan) -> Headline | None:
    """The headline predictor by the rule in the module docstring; None when no approach was fitted.

    backtest: an `analysis.backtest.BacktestResult` (or None); noise_scale: the runs' loss noise (nats), which
    sets the tie band: one standard error of a mean relative error over the held-out runs."""
    if not (frontier_ok or approach3_ok):
        return Headline("approach1", "only Approach 1 was fitted; it predicts N_opt but no loss") if approach1_ok else None
    if not (frontier_ok and approach3_ok):
        return Headline("frontier" if frontier_ok else "approach3", "the only loss predictor fitted")
    errors = _backtest_errors(backtest)
    if errors is None:
        return Headline("approach3", "no backtest scored both predictors; ties and the default go to Approach 3")
    frontier_error, approach3_error, n_held, mean_loss = errors
    tie = noise_scale / mean_loss / math.sqrt(n_held) if math.isfinite(noise_scale) else 0.0
    scores = f"backtest mean |error| {frontier_error:.2%} (frontier) against {approach3_error:.2%} (Approach 3)"
    if frontier_error < approach3_error - tie:
        return Headline("frontier", f"{scores}: the frontier erred less", frontier_error, approach3_error)
    if approach3_error < frontier_error - tie:
        return Headline("approach3", f"{scores}: Approach 3 erred less", frontier_error, approach3_error)
    return Headline("approach3", f"{scores}: within the noise ({tie:.2%}), a tie, which goes to Approach 3",
                    frontier_error, approach3_error)


def _backtest_errors(backtest):
    """(frontier error, Approach 3 error, held-out runs, their mean loss) when the backtest scored both."""
    if backtest is None or not backtest.loss_predictions or not backtest.frontier_loss_predictions:
        return None
    ef, e3 = backtest.frontier_mean_rel_loss_error, backtest.mean_rel_loss_error
    if not (math.isfinite(ef) and math.isfinite(e3)):
        return None
    actual = [p.actual for p in backtest.loss_predictions]
    return ef, e3, len(actual), float(np.mean(actual))


@dataclass(frozen=True)
class Prediction:
    """The answer at compute C: every approach's allocation, lr and batch size where fitted, the headline.

    `extrapolation` is C over the largest budget the fit saw; `warnings` say when a predicted loss lies
    below a fitted floor or the prediction lies far beyond the sweep."""

    compute: float
    level: float
    allocations: tuple[Allocation, ...]
    lr: Estimate
    batch_size: Estimate
    headline: Headline
    extrapolation: float
    warnings: tuple[str, ...]

    def allocation(self, approach: str) -> Allocation | None:
        return next((a for a in self.allocations if a.approach == approach), None)

    @property
    def best(self) -> Allocation:
        """The headline predictor's allocation and loss."""
        return self.allocation(self.headline.approach)
