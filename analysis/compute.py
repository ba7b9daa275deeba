"""One compute convention for a whole fit: N, C and the IsoFLOP budgets of a results table re-expressed together.

A run's row carries its compute under every convention (C_exact, C_6N_total, C_6N_with_head,
C_6N_non_embedding; lm.accounting) and its budget under its own (`compute`: "exact" or "6N_<n_convention>").
`under_convention` rewrites N, C, budget and the convention columns so that all of them count one convention:
    N       the parameter count of `n_convention`, from the row's groups (N_total; N_blocks + N_norms;
            N_blocks + N_norms + N_embedding, the head's V·d being the embedding's size even when tied), or the
            table's N as given (n_convention None: a column mapped with `--n-col`, say)
    C       C_exact (or the exact `flops`) for "exact"; 6·N·D with that N for "6N"
    budget  regrouped: runs planned in one cell (the same budget under the same convention) stay one IsoFLOP
            budget, and a cell planned under another convention gets the geometric mean of its runs' C under
            the new one. Why the cell and not a re-clustering of C: a cell's runs are the profile its sweep
            designed, and re-expressed they spread by up to ~25% in C (the exact count adds attention and the
            head, most for the smallest models), more than the 12% within which `assign_budgets` clusters C, so
            clustering would split profiles arbitrarily. A cell is iso-FLOP only under the convention it was
            planned in: `spread` (the largest C ratio within a regrouped cell, less 1) says how far from
            iso-FLOP the refit's profiles are, and the message names it.
So stored C and budgets are never mixed with another convention's N (the old `--n-col` path kept them).
Pure: no files, no warnings; the caller reports `message`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

COMPUTE_KINDS = ("exact", "6N")
N_CONVENTIONS = ("non_embedding", "total", "with_head")  # as lm.accounting names them (analysis imports no lm)
_GROUPS = {"total": ("N_total",), "non_embedding": ("N_blocks", "N_norms"),
           "with_head": ("N_blocks", "N_norms", "N_embedding")}


@dataclass(frozen=True)
class ConventionTable:
    """A table under one convention: `convention` is what its C and budget count ("exact" or "6N_<N>")."""

    runs: pd.DataFrame
    convention: str
    n_convention: str | None  # None: the table's own N column
    regrouped_cells: int  # cells planned under another convention, their budgets re-expressed
    spread: float  # largest max(C)/min(C) − 1 within a regrouped cell (0 when none was regrouped)

    @property
    def message(self) -> str | None:
        if not self.regrouped_cells:
            return None
        return (f"{self.regrouped_cells} IsoFLOP budget(s) planned under another compute convention were regrouped "
                f"under {self.convention}: within one, C now differs by up to {self.spread:.0%} (a cell is "
                f"iso-FLOP only under the convention it was planned in)")


def own_conventions(runs: pd.DataFrame) -> pd.Series:
    """Each run's own convention: its `compute` column, else (rows from before it) 6N under its n_convention."""
    n_conv = runs["n_convention"] if "n_convention" in runs.columns else pd.Series("with_head", index=runs.index)
    legacy = "6N_" + n_conv.fillna("with_head").astype(str)
    if "compute" not in runs.columns:
        return legacy
    return runs["compute"].where(runs["compute"].notna(), legacy).astype(str)


def _n_under(runs: pd.DataFrame, n_convention: str) -> pd.Series:
    missing = [c for c in _GROUPS[n_convention] if c not in runs.columns]
    if missing:
        raise ValueError(f"runs: N under {n_convention!r} needs the parameter-group column(s) {missing} "
                         f"(a scaling-lab results table has them); columns are {list(map(str, runs.columns))}")
    n = sum(runs[c].astype("float64") for c in _GROUPS[n_convention])
    if n.isna().any():
        raise ValueError(f"runs: parameter groups {list(_GROUPS[n_convention])} are empty for "
                         f"{int(n.isna().sum())} run(s), so N under {n_convention!r} is unknown")
    return n.round().astype("int64")


def _exact_c(runs: pd.DataFrame) -> pd.Series:
    c = runs["C_exact"].astype("float64") if "C_exact" in runs.columns else pd.Series(np.nan, index=runs.index)
    if "flops" in runs.columns:  # the exact count the run itself recorded: the same number
        c = c.fillna(runs["flops"].astype("float64"))
    if c.isna().any():
        raise ValueError(f"runs: compute 'exact' needs C_exact (or flops) for every run; "
                         f"{int(c.isna().sum())} run(s) have neither")
    return c


def under_convention(runs: pd.DataFrame, *, compute: str, n_convention: str | None = None,
                     n_label: str = "N") -> ConventionTable:
    """`runs` with N, C, budget, `compute` and `n_convention` under one convention (see the module docstring).
    n_label names the table's own N when `n_convention` is None (a mapped column): the convention is 6N_<n_label>."""
    if compute not in COMPUTE_KINDS:
        raise ValueError(f"compute must be one of {COMPUTE_KINDS}, got {compute!r}")
    if n_convention is not None and n_convention not in N_CONVENTIONS:
        raise ValueError(f"n_convention must be one of {N_CONVENTIONS}, got {n_convention!r}")
    out = runs.copy()
    own = own_conventions(runs)
    if n_convention is not None:
        out["N"] = _n_under(runs, n_convention)
        out["n_convention"] = n_convention
    convention = "exact" if compute == "exact" else f"6N_{n_convention or n_label}"
    out["C"] = _exact_c(runs) if compute == "exact" else 6.0 * out["N"].astype("float64") * out["D"].astype("float64")
    regrouped, spread = 0, 0.0
    if "budget" in runs.columns:
        budget = runs["budget"].astype("float64")
        new_budget = budget.copy()
        cells = pd.DataFrame({"own": own, "budget": budget})[budget.notna()]
        for (cell_convention, _), members in cells.groupby(["own", "budget"]).groups.items():
            if cell_convention == convention:
                continue  # planned under this very convention: its budget stands
            c = out.loc[members, "C"].to_numpy(float)
            new_budget.loc[members] = math.exp(np.log(c).mean())
            regrouped, spread = regrouped + 1, max(spread, c.max() / c.min() - 1)
        out["budget"] = new_budget
    out["compute"] = convention
    return ConventionTable(runs=out, convention=convention, n_convention=n_convention, regrouped_cells=regrouped,
                           spread=spread)
