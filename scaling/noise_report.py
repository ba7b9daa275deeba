"""The report's noise-floor section: the seed standard deviation per budget, where cells have replicates.

Blocks in scaling/report.py's form (("h2", text), ("p", text), ("table", header, rows)). Why it is shown: an
error or a difference between two runs smaller than the seed noise is not resolved by single runs, so the
report sets the validation error and the profiles' differences beside it (analysis/replicates.py).
"""

from __future__ import annotations

from analysis.replicates import NoiseFloor


def noise_blocks(floor: NoiseFloor | None) -> list[tuple]:
    """The section for `StudyFit.noise_floor`: a table per budget, or one sentence when nothing was measured."""
    blocks: list[tuple] = [("h2", "Noise floor: seed-to-seed spread")]
    if floor is None or not floor.success:
        reason = floor.message if floor is not None else "not computed"
        return blocks + [("p", f"Not measured: {reason}.")]
    blocks.append(("p", f"Standard deviation of the final loss between replicates of one cell (same N, D and "
                        f"hyperparameters, another seed: initialisation and data order), pooled per budget: "
                        f"{floor.message}. Overall {floor.sd:.4f} nats ({floor.relative_sd:.2%} of the loss); "
                        f"loss differences below it are not resolved by one run each."))
    blocks.append(("table", ["budget", "cells", "runs", "dof", "seed sd (nats)", "relative sd"],
                   [[f"{b.budget:.3g}", str(b.n_cells), str(b.n_runs), str(b.dof), f"{b.sd:.4f}",
                     f"{b.relative_sd:.2%}"] for b in floor.budgets]))
    return blocks
