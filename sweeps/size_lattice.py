"""IsoFLOP size targets on one lattice shared by every budget, so that a WSD sweep's budgets share trunks.

An ordinary IsoFLOP budget takes `count` targets log-spaced from N_opt/span to N_opt·span around its own
N_opt(C): step r = span^(2/(count-1)) in N. Two budgets then train the same model only where their
targets happen to round to the same shape, and between budgets they mostly do not, so a WSD sweep with
budgets closer together than r^(1/p) (N_opt ∝ C^p) makes a trunk per size per budget, each branched once.

With a shared lattice every target is a point N = r^k (k an integer) of the same step r, and a budget takes
the `count` consecutive points whose middle is nearest N_opt(C) in log space: its window is the ordinary
one moved by at most half a step. A size then serves every budget whose N_opt lies within about
r^(count/2) of it, which is what makes one trunk serve several budgets (docs/methods.md, "WSD presets").
The lattice is anchored at N = 1, not at any budget, so extending a sweep with new budgets leaves the
targets, and hence the run ids, of the old budgets unchanged.
"""

from __future__ import annotations

import math


def shared_targets(n_opt: float, *, span: float, count: int) -> list[float]:
    """`count` consecutive lattice points around `n_opt`: N = exp(k·s) with s = 2·ln(span)/(count-1) (the
    log of the ordinary targets' step), the run of points whose log-centre is nearest log(n_opt)."""
    if count < 2:
        raise ValueError(f"a shared size lattice needs at least 2 sizes per budget, got {count}")
    log_step = 2.0 * math.log(span) / (count - 1)
    first = math.floor(math.log(n_opt) / log_step - (count - 1) / 2 + 0.5)
    return [math.exp((first + i) * log_step) for i in range(count)]
