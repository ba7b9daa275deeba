"""Fit a whole study at once: every approach, the loss frontier, the Kaplan fits, hyperparameter laws,
consistency, backtest, and the headline predictor.

`fit_all(runs, curves)` is what the CLI and the study call. It cleans the table once (`table.clean_table`:
the exclusions become one note in the result). Where learning rate or batch size vary, the scaling-law fits
(Approaches 1–3, Kaplan, backtest) see only the best run of each (budget, N) and its curve, while the
hyperparameter laws see every run. Each component runs independently: a component that cannot be fitted
(too few budgets, no curves, no lr axis, ...) is recorded in `skipped` with the reason instead of failing
the others. The fits are called with warn=False and return what they left out in their results' `notes`;
those notes and the table's are collected once into `StudyFit.warnings`, and nothing is raised as a Python
warning: callers print them (the CLI, once each).
`StudyFit.to_dict()` is the JSON form and `StudyFit.from_dict` loads it back into the same objects;
`predict_at(C)` is the one prediction every command reads (`analysis.prediction`).

Names follow the papers: Approach 3's E, A, B, alpha, beta (Hoffmann et al. 2022, eq. 2); exponents a
(N_opt ∝ C^a) and b (D_opt ∝ C^b); every estimate with its `<name>_interval` at `level`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.backtest import BacktestResult, backtest
from analysis.bootstrap import BootstrapResult, bootstrap_parametric
from analysis.compute_per_token import SIX_N, ComputePerToken, from_runs
from analysis.consistency import ConsistencyResult, ExponentEstimate, check_consistency, exponents_of
from analysis.envelope import EnvelopeFit, fit_envelope
from analysis.frontier import FrontierFit, fit_frontier
from analysis.hyperparams import HyperparamFit, best_per_cell, fit_hyperparam_law, varies
from analysis.lr_horizon import LrHorizonFit, fit_lr_horizon
from analysis.replicates import NoiseFloor, cell_groups, has_replicates, mean_curves, noise_floor
from analysis.isoflop import IsoFlopFit, fit_isoflop
from analysis.kaplan import KaplanFits, fit_kaplan
from analysis.lack_of_fit import misfit_against_noise
from analysis.parametric import ParametricFit, fit_parametric
from analysis.powerlaw import percentile_interval
from analysis.prediction import (APPROACH_NAMES, NAN_PAIR, PREDICTOR_NAMES, PREDICTORS, UNKNOWN, Allocation, Estimate,
                                 Headline, NoFitError, Prediction, allocation_from_n_opt, choose_headline)
from analysis.serialize import from_tree, to_tree
from analysis.table import clean_table, compute_column

APPROACH_KEYS = {1: "approach1", 2: "approach2", 3: "approach3"}


@dataclass(frozen=True)
class StudyFit:
    """Every result of a study's fit; None where a component was not fitted (`skipped` says why).

    `headline` is the predictor every prediction leads with (`analysis.prediction`), chosen once here;
    `largest_budget` the largest compute among the fitted runs, from which predictions count how far out
    they are; `per_token` the runs' compute per token f(N), which turns every C into D = C / f(N)
    (analysis/compute_per_token.py; 6·N in a fit file written before it); `warnings` what the cleaning and
    the fits left out (their notes), each once."""

    approach1: EnvelopeFit | None
    approach2: IsoFlopFit | None
    approach3: ParametricFit | None
    approach3_bootstrap: BootstrapResult | None
    frontier: FrontierFit | None
    kaplan: KaplanFits | None
    lr_law: HyperparamFit | None
    batch_law: HyperparamFit | None
    consistency: ConsistencyResult | None
    backtest: BacktestResult | None
    headline: Headline | None
    largest_budget: float
    skipped: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    n_runs: int
    level: float
    n_bootstrap: int
    seed: int
    noise_floor: NoiseFloor | None = None  # the seed sd per budget where cells have replicates
    lr_horizon_law: LrHorizonFit | None = None  # lr_opt = k·N^p_N·D^p_D where the lr law was fitted
    per_token: ComputePerToken = SIX_N

    @property
    def has_parametric(self) -> bool:
        return self.approach3 is not None

    def to_dict(self) -> dict:
        """JSON-safe form of every component (NaN and ±inf as None); `from_dict` rebuilds the same objects."""
        return to_tree(self)

    @classmethod
    def from_dict(cls, tree: dict) -> StudyFit:
        """The fit that `to_dict` wrote (ValueError naming the field when the tree does not fit)."""
        return from_tree(cls, tree)

    def predict_loss(self, N, D) -> np.ndarray:
        """Approach 3's L(N, D) (NaN where Approach 3 was not fitted)."""
        if self.approach3 is None:
            return np.full(np.broadcast(np.asarray(N), np.asarray(D)).shape, math.nan)
        return self.approach3.predict_loss(N, D)

    def predict_run(self, N: float, D: float, *, by: str = "approach3", seed: int = 0) -> Estimate:
        """The loss of one run of N parameters on D tokens, with a prediction interval at `level`.

        by: "approach3" (L(N, D)) or "frontier" (the loss frontier through Approach 2's minima at C = f(N)·D,
        its reducible part scaled by the profile's shape off N_opt). Either interval combines the bootstrap's
        parameter uncertainty with run-to-run noise, so it is the interval a single new run's loss should fall
        in, not only the law's.
        For Approach 3 each replicate is multiplied by a residual of the fit resampled in log space
        (`BootstrapResult.prediction_interval`, as the backtest does). NaN where that fit is missing.
        """
        if by not in PREDICTORS:
            raise ValueError(f"by must be one of {PREDICTORS}, got {by!r}")
        if by == "frontier":
            if self.frontier is None:
                return UNKNOWN
            compute = float(self.per_token(float(N))) * float(D)
            return Estimate(self.frontier.predict_loss(N, compute), self.frontier.prediction_interval(N, compute, seed=seed),
                            self.frontier.interval_reliable)
        if self.approach3 is None:
            return UNKNOWN
        predicted = float(self.approach3.predict_loss(N, D))
        if self.approach3_bootstrap is None or self.approach3_bootstrap.n_converged < 2:
            return Estimate(predicted)
        return Estimate(predicted, self.approach3_bootstrap.prediction_interval(N, D, seed=seed),
                        self.approach3_bootstrap.interval_reliable)

    def _approach3_optima(self, compute) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """Approach 3's N_opt, D_opt, D/N and the loss there at each C (arrays shaped like C), and the same per
        converged replicate (C's shape plus one axis; None without two of them): every C in one evaluation."""
        compute = np.asarray(compute, dtype=float)
        n_opt, d_opt = self.approach3.compute_optimal(compute, self.per_token)
        values = {"n_opt": n_opt, "d_opt": d_opt, "tokens_per_param": d_opt / n_opt,
                  "loss": self.approach3.predict_loss(n_opt, d_opt)}
        boot = self.approach3_bootstrap
        if boot is None or boot.n_converged < 2:
            return values, None
        samples = boot.compute_optimal_samples(compute[..., None], self.per_token)
        samples["tokens_per_param"] = samples["d_opt"] / samples["n_opt"]
        return values, samples

    def _approach3_allocation(self, compute: float) -> Allocation:
        """Approach 3's N_opt, D_opt, D/N and the loss there at C, with intervals from its bootstrap."""
        values, samples = self._approach3_optima(float(compute))
        if samples is None:
            estimates = {k: Estimate(v) for k, v in values.items()}
        else:
            estimates = {k: Estimate(v, percentile_interval(samples[k], self.level),
                                     self.approach3_bootstrap.interval_reliable) for k, v in values.items()}
        return Allocation(approach="approach3", success=self.approach3.success, **estimates)

    def allocations(self, compute: float) -> tuple[Allocation, ...]:
        """Every fitted approach's allocation at C; Approach 2's loss is the loss frontier's L_opt(C)."""
        out = []
        for name, law in (("approach1", self.approach1), ("approach2", self.approach2)):
            if law is None or not law.success:
                continue
            loss = UNKNOWN
            if name == "approach2" and self.frontier is not None:
                loss = Estimate(self.frontier.loss_at_optimum(compute), self.frontier.loss_at_optimum_interval(compute),
                                self.frontier.interval_reliable)
            out.append(allocation_from_n_opt(name, compute, float(law.n_opt(compute)), law.n_opt_interval(compute),
                                             loss=loss, per_token=self.per_token,
                                             # Approach 1's interval drops no replicate: always reliable
                                             reliable=name == "approach1" or law.interval_reliable))
        if self.approach3 is not None:
            out.append(self._approach3_allocation(compute))
        return tuple(out)

    def loss_at_optimum(self, compute) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(C, loss, lo, hi): Approach 3's loss at N_opt(C) with its interval, over an array of C; None without it."""
        band = self._approach3_band(compute, "loss")
        return None if band is None else (np.asarray(compute, dtype=float), *band)

    def allocation_band(self, compute, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(value, lo, hi) of Approach 3's `key` ("n_opt" or "d_opt") over an array of C; None without it."""
        return self._approach3_band(compute, key)

    def _approach3_band(self, compute, key: str):
        """What `_approach3_allocation` gives for `key` at each C of a 1-D array, from one evaluation of every
        C's replicates (one C at a time took a second per plotted curve under a compute per token other than 6·N)."""
        if self.approach3 is None:
            return None
        values, samples = self._approach3_optima(compute)
        if samples is None:
            return values[key], np.full(values[key].shape, np.nan), np.full(values[key].shape, np.nan)
        intervals = [percentile_interval(row, self.level) for row in samples[key]]
        return values[key], np.array([i[0] for i in intervals]), np.array([i[1] for i in intervals])

    def exponents(self) -> dict[int, dict[str, float]]:
        """{approach: {"a": a, "b": b}} for every approach fitted successfully."""
        out = {}
        for number, result in ((1, self.approach1), (2, self.approach2), (3, self.approach3)):
            if result is not None and (number == 3 or result.success):
                out[number] = {"a": float(result.a), "b": float(result.b)}
        return out

    def headline_for(self, predictor: str | None = None) -> Headline:
        """The fit's headline, or the one a caller asks for by name (`--predictor`), falling back to the
        fit's own when the asked-for predictor was not fitted. ValueError when no approach was fitted."""
        if self.headline is None:
            raise NoFitError("no approach could be fitted, so there is nothing to predict from: "
                             + ("; ".join(f"{k}: {r}" for k, r in self.failures()) or "see the fit's messages"))
        if predictor in (None, "auto") or predictor == self.headline.predictor:
            return self.headline
        if predictor not in PREDICTORS:
            raise ValueError(f"predictor must be 'auto' or one of {PREDICTORS}, got {predictor!r}")
        fitted = self.approach3 is not None and self.approach3.success if predictor == "approach3" else (
            self.frontier is not None and self.frontier.success
            and self.approach2 is not None and self.approach2.success)
        if not fitted:
            return dataclasses.replace(self.headline, reason=f"{PREDICTOR_NAMES[predictor]} was asked for but not "
                                                             f"fitted; {self.headline.reason}")
        return dataclasses.replace(self.headline, predictor=predictor, reason="asked for by name (--predictor)")

    def predict_at(self, compute: float, *, predictor: str | None = None) -> Prediction:
        """The recommendation at compute C (FLOPs): every approach's allocation with intervals, lr and batch
        size from their laws where fitted, the headline (`headline_for(predictor)`) and warnings."""
        compute = float(compute)
        if not (math.isfinite(compute) and compute > 0):
            raise ValueError(f"compute must be a positive finite number of FLOPs, got {compute!r}")
        headline = self.headline_for(predictor)
        laws = {}
        for name, law in (("lr", self.lr_law), ("batch_size", self.batch_law)):
            laws[name] = Estimate(law.predict(compute), law.interval(compute)) if law is not None and law.success else UNKNOWN
        allocations = self.allocations(compute)
        extrapolation = compute / self.largest_budget if self.largest_budget > 0 else math.nan
        return Prediction(compute=compute, level=self.level, allocations=allocations, headline=headline,
                          extrapolation=extrapolation, warnings=self._floor_warnings(allocations, extrapolation),
                          **laws)

    def floors(self) -> dict[str, float]:
        """Each fitted law's irreducible loss: Approach 3's E, and the frontier's where it has one."""
        out = {}
        if self.approach3 is not None and self.approach3.success:
            out["Approach 3"] = float(self.approach3.E)
        if self.frontier is not None and self.frontier.has_floor:
            out["the loss frontier"] = float(self.frontier.E)
        return out

    def failures(self) -> tuple[tuple[str, str], ...]:
        """(component, reason) for every approach that was skipped or fitted without success."""
        failed = [(name, reason) for name, reason in self.skipped if name.startswith("approach")]
        for name in ("approach1", "approach2", "approach3"):
            law = getattr(self, name)
            if law is not None and not law.success:
                failed.append((name, law.message))
        return tuple(failed)

    def unreliable_intervals(self) -> tuple[str, ...]:
        """One sentence per fitted law whose bootstrap intervals do not mean their level (most replicates
        dropped, or the fit itself failed or sits on a bound): `powerlaw.replicates_reliable`."""
        out = []
        boot = self.approach3_bootstrap
        if boot is not None and not boot.interval_reliable:
            out.append(f"Approach 3's intervals are unreliable ({boot.message}; fit: "
                       f"{'ok' if boot.fit.success else 'NOT OK'})")
        if self.frontier is not None and self.frontier.n_bootstrap and not self.frontier.interval_reliable:
            out.append(f"the loss frontier's intervals are unreliable ({self.frontier.n_converged} of "
                       f"{self.frontier.n_bootstrap} bootstrap replicates kept)")
        return tuple(out)

    def _floor_warnings(self, allocations, extrapolation: float) -> tuple[str, ...]:
        out = list(self.unreliable_intervals())
        for allocation in allocations:
            for law, floor in self.floors().items():
                if allocation.loss.known and allocation.loss.value < floor:
                    out.append(f"{allocation.name}'s predicted loss {allocation.loss.value:.4g} at {extrapolation:.3g}× "
                               f"the largest budget lies below {law}'s fitted floor E = {floor:.4g}: it has "
                               f"extrapolated past every loss the runs can reach")
        if extrapolation > FAR_OUT:
            out.append(f"{extrapolation:.3g}× the largest budget fitted: far beyond the sweep, where the law's "
                       f"form, not the runs, sets the answer")
        return tuple(out)


FAR_OUT = 100  # × the largest budget: beyond two decades the sweep no longer constrains the extrapolation


def _approach3_estimate(fit: ParametricFit, boot: BootstrapResult | None) -> ExponentEstimate:
    a_interval = tuple(boot.intervals["a"]) if boot is not None else NAN_PAIR
    b_interval = tuple(boot.intervals["b"]) if boot is not None else NAN_PAIR
    return ExponentEstimate(APPROACH_NAMES["approach3"], fit.a, a_interval, fit.b, b_interval)


def fit_all(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    approaches: Sequence[int] = (1, 2, 3),
    n_bootstrap: int = 1000,
    seed: int = 0,
    holdout: Sequence[str] | None = None,
    level: float = 0.95,
) -> StudyFit:
    """Fit every component the data supports; see the module docstring.

    approaches: which of 1 (envelope; needs `curves`), 2 (IsoFLOP) and 3 (parametric) to fit.
    holdout: run ids for the backtest; None holds out the largest budget; an empty sequence skips it.
    """
    unknown = set(approaches) - {1, 2, 3}
    if unknown:
        raise ValueError(f"approaches: unknown approach(es) {sorted(unknown)}; choose from 1, 2, 3")
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be ≥ 2, got {n_bootstrap}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    fits = _Fits()
    boot = dict(n_bootstrap=n_bootstrap, level=level, seed=seed)
    cleaned = clean_table(runs, source="fit_all")
    runs = cleaned.table
    if runs.empty:
        excluded = "; ".join(cleaned.notes) or "the table is empty, or every row was excluded"
        raise NoFitError(f"no usable runs to fit: {excluded}")
    scaling_runs, curves = _scaling_runs(runs, curves, fits.notes)
    per_token = from_runs(scaling_runs)  # every C → D conversion below divides by this f(N)
    if not per_token.is_6n:
        fits.notes.append(f"tokens from compute: D = C / f(N), {per_token.describe()} (analysis/compute_per_token.py)")
    _fit_allocation_laws(fits, scaling_runs, curves, approaches, boot, per_token)
    fits.attempt("kaplan", fit_kaplan, scaling_runs)
    for column, name in (("lr", "lr_law"), ("batch_size", "batch_law")):
        if varies(runs, column):
            fits.attempt(name, fit_hyperparam_law, runs, column, warn=False, **boot)
            fits.note(name)
    if fits.ok("lr_law"):  # the same cell optima against N and D (Bjorck et al. 2024)
        fits.attempt("lr_horizon_law", fit_lr_horizon, fits.results["lr_law"], per_token=per_token, **boot)
    _check_consistency(fits)
    _check_approach3_misfit(fits)
    if 3 not in approaches:
        fits.skipped.append(("backtest", "Approach 3 not requested"))
    elif holdout is not None and len(holdout) == 0:
        fits.skipped.append(("backtest", "no holdout requested"))
    else:
        fits.attempt("backtest", backtest, scaling_runs, holdout, n_bootstrap=n_bootstrap, level=level, seed=seed)
    r = fits.results
    return StudyFit(
        approach1=r.get("approach1"), approach2=r.get("approach2"), approach3=r.get("approach3"),
        approach3_bootstrap=r.get("approach3_bootstrap"), frontier=r.get("frontier"), kaplan=r.get("kaplan"),
        lr_law=r.get("lr_law"), batch_law=r.get("batch_law"), consistency=r.get("consistency"),
        backtest=r.get("backtest"), headline=_headline(r), largest_budget=_largest_budget(scaling_runs),
        skipped=tuple(fits.skipped),
        warnings=tuple(dict.fromkeys([*cleaned.notes, *fits.warnings])),
        notes=tuple(fits.notes), n_runs=len(runs), level=level, n_bootstrap=n_bootstrap, seed=seed,
        noise_floor=noise_floor(runs), lr_horizon_law=r.get("lr_horizon_law"), per_token=per_token,
    )


@dataclass
class _Fits:
    """What fit_all has so far: results by name, components skipped with their reasons, notes, and the
    warnings the fits returned in their results (for the caller to print once)."""

    results: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)

    def attempt(self, name: str, function, *args, **kwargs) -> None:
        try:
            self.results[name] = function(*args, **kwargs)
        except (ValueError, ArithmeticError) as error:  # recorded with its reason; the other fits go on
            self.skipped.append((name, f"{type(error).__name__}: {error}" if isinstance(error, ArithmeticError)
                                 else str(error)))

    def note(self, name: str) -> None:
        """Keep the notes of a fit called with warn=False, to be printed once by the caller."""
        if name in self.results:
            self.warnings.extend(self.results[name].notes)

    def ok(self, name: str) -> bool:
        return name in self.results and self.results[name].success


def _scaling_runs(runs: pd.DataFrame, curves: pd.DataFrame | None, notes: list):
    """The best run of each (budget, N) over the hyperparameter axes, and the curves of those runs only."""
    scaling_runs = best_per_cell(runs)
    if len(scaling_runs) < len(runs):
        notes.append(f"scaling-law fits use the best run of each (budget, N) over the hyperparameter axes: "
                     f"{len(scaling_runs)} of {len(runs)} runs")
    if curves is not None and "run_id" in curves.columns and "run_id" in runs.columns:
        # the envelope sees the same runs: an excluded run's curve, or a poor learning rate's, is left out
        kept = curves["run_id"].astype(str).isin(set(scaling_runs["run_id"].astype(str)))
        if not kept.all():
            notes.append(f"Approach 1 uses the curves of those runs: "
                         f"{curves.loc[kept, 'run_id'].nunique()} of {curves['run_id'].nunique()} curves")
        curves = curves[kept]
        if has_replicates(scaling_runs):
            curves = mean_curves(curves, scaling_runs)
            notes.append("Approach 1 averages the curves of each cell's seed replicates")
    return scaling_runs, curves


def _fit_allocation_laws(fits: _Fits, runs: pd.DataFrame, curves, approaches, boot: dict,
                         per_token: ComputePerToken) -> None:
    """Approaches 1-3, the loss frontier through Approach 2's minima and Approach 3's bootstrap."""
    if 1 in approaches:
        if curves is None:
            fits.skipped.append(("approach1", "no training curves given"))
        else:
            fits.attempt("approach1", fit_envelope, curves, per_token=per_token, warn=False, **boot)
            fits.note("approach1")
    if 2 in approaches:
        fits.attempt("approach2", fit_isoflop, runs, per_token=per_token, warn=False, **boot)
        fits.note("approach2")
        if fits.ok("approach2"):
            fits.attempt("frontier", fit_frontier, fits.results["approach2"], **boot)
    if 3 in approaches:
        fits.attempt("approach3", fit_parametric, runs)
        if "approach3" in fits.results:
            grouped, group_col = cell_groups(runs)  # seed replicates: resample whole cells
            fits.attempt("approach3_bootstrap", bootstrap_parametric, grouped, n_resamples=boot["n_bootstrap"],
                         seed=boot["seed"], level=boot["level"], fit=fits.results["approach3"], group_col=group_col)


def _check_consistency(fits: _Fits) -> None:
    r = fits.results
    # only laws that fitted (and beat "no scaling", analysis.significance) are compared: two fits of noise
    # have wide intervals that overlap, and calling them "consistent" would vouch for a law that is not there
    estimates = [exponents_of(r[key], APPROACH_NAMES[key]) for key in ("approach1", "approach2") if fits.ok(key)]
    if fits.ok("approach3"):
        estimates.append(_approach3_estimate(r["approach3"], r.get("approach3_bootstrap")))
    if len(estimates) >= 2:
        r["consistency"] = check_consistency(estimates, warn=False)
        fits.warnings.extend(r["consistency"].notes)
    else:
        fits.skipped.append(("consistency", f"{len(estimates)} approach(es) fitted successfully; need ≥ 2 to compare"))


def _check_approach3_misfit(fits: _Fits) -> None:
    """Warn when Approach 3's residuals scatter more than the runs' noise (`lack_of_fit.misfit_against_noise`):
    its law then misses these runs' shape, and its intervals carry that misfit only as resampled residuals."""
    approach2, approach3 = fits.results.get("approach2"), fits.results.get("approach3")
    if approach2 is None or approach3 is None or not approach2.noise_dof:
        return
    window_losses = np.concatenate([p.loss[p.window] for p in approach2.profiles])
    relative_noise = approach2.noise_scale / float(np.median(window_losses))
    test = misfit_against_noise(approach3.residuals, 4 if approach3.fixed_E else 5, relative_noise,
                                approach2.noise_dof)
    if test.significant:
        rms = math.sqrt(float(np.mean(np.square(approach3.residuals))))
        fits.warnings.append(
            f"Approach 3's L(N, D) misses these runs by more than their noise: its residuals scatter "
            f"{rms / relative_noise:.3g}× the runs' noise (RMS {rms:.2%} of the loss against {relative_noise:.2%} in "
            f"the IsoFLOP windows; {test.message}), so the law's form sets part of its errors, and its intervals "
            f"carry that misfit only as resampled residuals")


def _headline(r: dict) -> Headline | None:
    approach2 = r.get("approach2")
    frontier = r.get("frontier")
    frontier_ok = approach2 is not None and approach2.success and frontier is not None and frontier.success
    return choose_headline(
        frontier_ok=frontier_ok, approach3_ok="approach3" in r and r["approach3"].success,
        approach1_ok="approach1" in r and r["approach1"].success, backtest=r.get("backtest"),
        noise_scale=approach2.noise_scale if approach2 is not None else math.nan)


def _largest_budget(runs: pd.DataFrame) -> float:
    if not len(runs):
        return math.nan
    if "budget" in runs.columns and runs["budget"].notna().all():
        return float(runs["budget"].max())
    return float(compute_column(runs).max())
