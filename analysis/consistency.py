"""Do the approaches agree? The exponents a (N_opt ∝ C^a) and b (D_opt ∝ C^b) side by side.

Hoffmann et al. (2022, Table 2) report a = 0.50, 0.49 and 0.46 from their three approaches; Besiroglu et
al. (2024) note that the intervals did not overlap and nobody flagged it. Here every pair of approaches
whose intervals for a (or b) are disjoint is named in `disagreements`, and an
`InconsistentExponentsWarning` is raised, so a report cannot show the three numbers without the caveat.

An approach without an interval (bootstrap off or failed) is compared by nothing and said so. Nor is an
interval that holds the whole of [0, 1] (`spans_every_split`): a from 0 (every extra FLOP to data) to 1 (every one
to parameters) is every way of growing both N and D with compute, so such an interval says nothing of the split
(Approach 2 on Epoch AI's extraction of Chinchilla's runs: a in [−0.45, 1.56], its vertices scattering 46× their
noise), and no interval inside [0, 1] can be disjoint from it: "overlap" would be reported however far apart the
point estimates are.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence


class InconsistentExponentsWarning(UserWarning):
    """Two approaches' intervals for a scaling exponent do not overlap."""


@dataclass(frozen=True)
class ExponentEstimate:
    """One approach's a and b with their intervals (NaN where unknown)."""

    approach: str
    a: float
    a_interval: tuple[float, float]
    b: float
    b_interval: tuple[float, float]


@dataclass(frozen=True)
class ConsistencyResult:
    """The estimates compared, the disagreements found (one sentence each) and whether there were none.

    `consistent` is True only when every pair with intervals overlaps and at least two were comparable.
    """

    estimates: tuple[ExponentEstimate, ...]
    disagreements: tuple[str, ...]
    consistent: bool
    message: str

    @property
    def notes(self) -> tuple[str, ...]:
        """The warning `check_consistency` raises, as a message (none when no pair disagrees)."""
        if not self.disagreements:
            return ()
        return ("scaling exponents disagree between approaches: " + "; ".join(self.disagreements),)


def exponents_of(fit, approach: str) -> ExponentEstimate:
    """ExponentEstimate from any result exposing a, a_interval, b, b_interval (Approaches 1 and 2)."""
    return ExponentEstimate(approach, float(fit.a), _pair(fit.a_interval), float(fit.b), _pair(fit.b_interval))


def _pair(interval) -> tuple[float, float]:
    if interval is None:
        return (math.nan, math.nan)
    lo, hi = interval
    return (float(lo), float(hi))


def _has_interval(interval: tuple[float, float]) -> bool:
    return all(math.isfinite(v) for v in interval)


def spans_every_split(interval: tuple[float, float]) -> bool:
    """Whether an exponent's interval holds all of [0, 1] (module docstring): it does not inform a comparison."""
    return interval[0] <= 0 and interval[1] >= 1


def _overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return max(first[0], second[0]) <= min(first[1], second[1])


def check_consistency(estimates: Sequence[ExponentEstimate], *, warn: bool = True) -> ConsistencyResult:
    """Compare every pair of estimates' intervals for a and for b; warn when any pair is disjoint."""
    estimates = tuple(estimates)
    disagreements, uncompared, compared = [], [], 0
    for name in ("a", "b"):
        with_interval = [e for e in estimates if _has_interval(getattr(e, f"{name}_interval"))]
        for e in [e for e in with_interval if spans_every_split(getattr(e, f"{name}_interval"))]:
            lo, hi = getattr(e, f"{name}_interval")
            uncompared.append(f"{e.approach}: its interval for {name}, [{lo:.3f}, {hi:.3f}], holds every split of "
                              f"compute ({name} from 0 to 1), not compared")
            with_interval.remove(e)
        for first, second in combinations(with_interval, 2):
            compared += 1
            i1, i2 = getattr(first, f"{name}_interval"), getattr(second, f"{name}_interval")
            if not _overlap(i1, i2):
                disagreements.append(
                    f"{name}: {first.approach} gives {getattr(first, name):.3f} [{i1[0]:.3f}, {i1[1]:.3f}] but "
                    f"{second.approach} gives {getattr(second, name):.3f} [{i2[0]:.3f}, {i2[1]:.3f}]: intervals do not overlap")
    uncompared += [f"{e.approach}: no interval, not compared" for e in estimates if not _has_interval(e.a_interval)]
    if compared == 0:
        head = f"nothing to compare: {len(estimates)} estimate(s), fewer than 2 with informative intervals"
    elif disagreements:
        head = f"{len(disagreements)} disagreement(s): " + "; ".join(disagreements)
    else:
        head = f"all {compared} interval pair(s) overlap"
    result = ConsistencyResult(estimates, tuple(disagreements), compared > 0 and not disagreements,
                               "; ".join([head] + uncompared))
    for note in result.notes if warn else ():
        warnings.warn(note, InconsistentExponentsWarning, stacklevel=2)
    return result
