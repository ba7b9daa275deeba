"""WSD trunks with their cooldown branches as the plots draw them, from the results table and its curves.

A WSD sweep trains each model once at the stable learning rate (its *line* of trunks) and branches a cooldown
off it for every token count (experiments/wsd.py). Every branch's curve (analysis.table.read_curves) starts
with its trunk's history, carried in the checkpoint it starts from: up to its branch step it is the trunk's
curve, evaluations included, and after it its own cooldown. So the table's branch rows and their curves hold
everything a figure of trunks and branches needs, and the trunks' own rows (excluded from the table) are not
read. A line is the branches that agree on everything a sweep varies except D: shape, learning rate, batch
size and seed, within one sweep (the spec-level rule is experiments.wsd.line_of; the table has these columns).
Its trunk curve is the validation history of its longest branch up to that branch's step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# The columns in which one sweep's lines differ (shape, lr, batch size, seed); those present are used.
LINE_COLUMNS = ("sweep", "N", "n_layers", "d_model", "n_heads", "lr", "batch_size", "seed")


@dataclass(frozen=True)
class BranchCurve:
    """One cooldown branch: where it leaves its trunk, its cooldown's validation losses, and its end."""

    run_id: str
    branch_tokens: int  # tokens trained on the trunk before the cooldown
    tokens: np.ndarray  # validation points from the branch step on (the trunk's last evaluation first)
    val_loss: np.ndarray
    D: int
    loss: float  # the final validation loss: the row's, the point the fits use


@dataclass(frozen=True)
class TrunkLine:
    """One model's trunk (its stable phase, however many trunk runs trained it) and its branches."""

    N: int
    lr: float | None
    tokens: np.ndarray  # the trunk's validation history: tokens at each evaluation
    val_loss: np.ndarray
    branches: tuple[BranchCurve, ...]  # in order of branch_tokens

    def __post_init__(self):
        if not self.branches:
            raise ValueError("branches: a trunk line is drawn from at least one branch")


def trunk_lines(runs: pd.DataFrame, curves: pd.DataFrame | None) -> tuple[TrunkLine, ...]:
    """The WSD lines of a results table (branch rows, those with a trunk_id) and their curves, smallest N
    first; empty for a table without branches or without curves. Branches without a curve are left out."""
    if curves is None or "trunk_id" not in runs.columns or "branch_tokens" not in runs.columns:
        return ()
    branches = runs[runs["trunk_id"].notna() & runs["branch_tokens"].notna()]
    branches = branches[branches["run_id"].isin(set(curves["run_id"]))]
    if branches.empty:
        return ()
    by_run = {run_id: curve.sort_values("tokens") for run_id, curve in curves.groupby("run_id")}
    key = [c for c in LINE_COLUMNS if c in branches.columns]
    lines = []
    for _, members in branches.groupby(key, dropna=False, sort=False):
        members = members.sort_values("branch_tokens")
        own = tuple(_branch(row, by_run[row["run_id"]]) for _, row in members.iterrows())
        longest = by_run[members["run_id"].iloc[-1]]
        trunk = longest[(longest["tokens"] <= own[-1].branch_tokens) & np.isfinite(longest["val_loss"])]
        lr = float(members["lr"].iloc[0]) if "lr" in members.columns else None
        lines.append(TrunkLine(N=int(members["N"].iloc[0]), lr=lr, tokens=trunk["tokens"].to_numpy(float),
                               val_loss=trunk["val_loss"].to_numpy(float), branches=own))
    return tuple(sorted(lines, key=lambda line: (line.N, line.lr or 0.0)))


def _branch(row: pd.Series, curve: pd.DataFrame) -> BranchCurve:
    start = int(row["branch_tokens"])
    cooldown = curve[(curve["tokens"] >= start) & np.isfinite(curve["val_loss"])]
    return BranchCurve(run_id=str(row["run_id"]), branch_tokens=start, tokens=cooldown["tokens"].to_numpy(float),
                       val_loss=cooldown["val_loss"].to_numpy(float), D=int(row["D"]), loss=float(row["loss"]))
