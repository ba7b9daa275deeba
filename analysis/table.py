"""The results table: the contract between sweeps and analysis, and its readers.

One row per run, columns named after the papers' symbols (see `COLUMNS`). Only N, D and loss are
required; everything else is optional and kept when present (extra columns pass through untouched).

Sources `read_table` and `read_curves` accept:
- a run store: a directory holding `runs/<run_id>/row.json` (one flat JSON object, that run's row) and
  `runs/<run_id>/curve.csv` (columns step, tokens, flops, train_loss, val_loss), as sweeps write it;
- a `.csv` or `.parquet` results table.

Notable choices:
- Column mapping (`n_col=` etc.) COPIES the named column into N/D/loss and keeps the original, so
  `n_col="N_total"` refits a store under another parameter convention without losing a column.
- C defaults to 6·N·D (Kaplan et al. 2020; Hoffmann et al. 2022), computed in floating point because
  N·D overflows int64 past ~10^18, wherever the column is absent or empty.
- Unusable rows are excluded, never silently: `clean_runs` (pure) says which and why; `clean_table`,
  `load_table` and `load_curves` return the kept rows with `notes`, one message naming every excluded run
  id (or row) and its reason (a `CleanTable`, for callers such as `fit_all` and the CLI that report the
  notes themselves); `usable_runs`, `read_table` and `read_curves`, the entry points for a library user,
  return the rows only and raise each note as an `ExcludedRunsWarning`.
  Reasons: status other than "completed", N or D missing or not positive, loss missing, not finite or
  not positive (losses are fitted in log space), marked True in a boolean exclusion column (`excluded`
  or `*_excluded`, `exclusion_columns`), or a WSD trunk (role "trunk": trained at the stable learning
  rate only; its branches, role "branch", are ordinary rows).
- N and D are cast to int64 (rounded) after exclusion; optional integer columns become nullable Int64.
- Curves (`read_curves`): `loss` is the TRAINING loss, logged at every step. Training windows are drawn
  without replacement within each pass over the training split (lm/batches.py), so while a run's
  `passes` column is at most 1 no training token is seen twice: the training loss on a batch is a
  held-out estimate before the step, and it is what Hoffmann et al. (2022) Approach 1 take the envelope
  of. A run with `passes` > 1 repeats data after its first pass (the trainer warns), and its later
  training losses are on seen tokens; rows written before the sampler existed have no `passes` (their
  windows were drawn with replacement). `val_loss` is kept alongside (NaN where not evaluated).
  A CSV/Parquet source for curves is either a results table with a `curve` column (paths to per-run
  curve CSVs, relative to the table's folder) or a long-format file already holding run_id, N, D,
  tokens and train_loss (or loss) per point.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# name -> dtype. "int64": required integers; "Int64": optional (nullable) integers.
COLUMNS: dict[str, str] = {
    "run_id": "str",        # content hash of the run's spec
    "sweep": "str",         # name of the sweep the run belongs to
    "status": "str",        # "completed" | "diverged" | "failed" | ...
    "N": "int64",           # parameters under the fitting convention
    "N_total": "Int64",     # parameter groups (lm.accounting.param_counts)
    "N_embedding": "Int64",
    "N_head": "Int64",
    "N_blocks": "Int64",
    "N_norms": "Int64",
    "D": "int64",           # training tokens
    "passes": "float64",    # passes over the training split those tokens made (lm/batches.py); > 1 repeats data
    "C": "float64",         # compute under the run's own convention (`compute`); 6·N·D where absent
    "flops": "float64",     # exact counted training FLOPs
    "budget": "float64",    # nominal IsoFLOP budget of the run's cell, under `compute`; NaN for grid sweeps
    "compute": "str",       # what C and budget count: "exact" or "6N_<n_convention>" (analysis/compute.py)
    "C_exact": "float64",   # C under every convention, so any one can be refitted (analysis/compute.py)
    "C_6N_non_embedding": "float64",
    "C_6N_total": "float64",
    "C_6N_with_head": "float64",
    "loss": "float64",      # final validation loss, nats/token
    "train_loss": "float64",
    "lr": "float64",
    "seed": "Int64",        # the run's seed (initialisation and data order); replicates of a cell differ only here
    "beta2": "float64",     # AdamW β2
    "batch_size": "Int64",  # sequences per step
    "context_length": "Int64",
    "vocab_size": "Int64",    # tokenizer vocabulary: with the context, what a recommended shape is built for
    "wall_seconds": "float64",
    "tokens_per_second": "float64",
    "mfu": "float64",
    "device": "str",
    "error": "str",
}
REQUIRED = ("N", "D", "loss")
CURVE_COLUMNS = ("step", "tokens", "flops", "train_loss", "val_loss")
COMPLETED = "completed"


class ExcludedRunsWarning(UserWarning):
    """Some runs were left out of an analysis; the message names each one and the reason."""


@dataclass(frozen=True, eq=False)  # eq=False: DataFrames have no truth value to compare by
class CleanTable:
    """The rows left for analysis (a results table, or curves in long format) and the notes on what was
    left out: each note one message naming every excluded run (or row) and its reason, for the caller to
    report once (the wrappers `usable_runs`, `read_table`, `read_curves` warn with them)."""

    table: pd.DataFrame
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.table, pd.DataFrame):
            raise ValueError(f"table must be a pandas DataFrame, got {type(self.table).__name__}")
        if not all(isinstance(n, str) for n in self.notes):
            raise ValueError(f"notes must be strings, got {self.notes!r}")


def warn_excluded(notes, *, stacklevel: int = 2) -> None:
    """Raise each note as an ExcludedRunsWarning, attributed `stacklevel` frames up from the caller."""
    for note in notes:
        warnings.warn(note, ExcludedRunsWarning, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------------------------------- cleaning

def _show(value) -> str:
    """A cell value as a user reads it: 1e+06, nan, 'abc'."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):g}"
    return repr(value)


def _run_label(df: pd.DataFrame, label) -> str:
    if "run_id" in df.columns and pd.notna(df.at[label, "run_id"]):
        return f"run {df.at[label, 'run_id']}"
    return f"row {label}"


WSD_TRUNK = "a WSD trunk (its cooldown branches are the points)"


def compute_column(df: pd.DataFrame) -> pd.Series:
    """Each run's C: the `C` column where given, C = 6·N·D where it is absent or NaN (a table of N, D and loss)."""
    six_nd = 6.0 * df["N"].astype("float64") * df["D"].astype("float64")
    return df["C"].astype("float64").fillna(six_nd) if "C" in df.columns else six_nd


def exclusion_columns(df: pd.DataFrame) -> list[str]:
    """Boolean columns that mark runs to leave out: named `excluded` or ending in `_excluded` (Epoch AI's
    Chinchilla extraction marks the runs it drops so, as tests/golden/epoch_chinchilla.csv keeps them)."""
    return [str(c) for c in df.columns if str(c) == "excluded" or str(c).endswith("_excluded")]


_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no", "", "nan", "none"}


def _exclusion_flags(values: pd.Series, col: str) -> pd.Series:
    """True where an exclusion column marks the run; ValueError naming the column for a non-boolean value."""
    text = values.map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        raise ValueError(f"column {col!r} marks excluded runs and must be boolean (True/False), "
                         f"got {values[bad].iloc[0]!r}")
    return text.isin(_TRUE)


def clean_runs(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a results table into usable rows and a report of the others. Pure: no warning, no copy kept.

    Checks whichever of status, N, D, loss are present (a missing column is the caller's concern).
    Returns (kept, excluded): `kept` holds the usable rows with their original index; `excluded` is a
    DataFrame with columns row (the original index label), run_id (or None) and reason.
    """
    reasons: dict[object, list[str]] = {}

    def flag(mask: pd.Series, reason_of) -> None:
        for label in df.index[mask.to_numpy()]:
            reasons.setdefault(label, []).append(reason_of(label))

    if "status" in df.columns:
        status = df["status"]
        flag(status.isna() | (status.astype(str) != COMPLETED),
             lambda i: f"status {_show(df.at[i, 'status'])}, not {COMPLETED!r}")
    # a WSD trunk trains only the stable phase and its branches are the points: left out as such, whatever
    # its other fields say (its loss is NaN by design), and counted, not listed (`describe_excluded`)
    trunk = df["role"].astype(str) == "trunk" if "role" in df.columns else pd.Series(False, index=df.index)
    flag(trunk, lambda i: WSD_TRUNK)
    for col in ("N", "D"):
        if col in df.columns:
            values = pd.to_numeric(df[col], errors="coerce")
            flag(~(np.isfinite(values.astype(float)) & (values > 0)) & ~trunk,
                 lambda i, c=col: f"{c} = {_show(df.at[i, c])} is not a positive number")
    if "loss" in df.columns:
        loss = pd.to_numeric(df["loss"], errors="coerce").astype(float)
        flag(~(np.isfinite(loss) & (loss > 0)) & ~trunk,
             lambda i: f"loss = {_show(df.at[i, 'loss'])} is not a positive finite number")
    for col in exclusion_columns(df):
        flag(_exclusion_flags(df[col], col), lambda i, c=col: f"marked excluded by column {c!r}")
    labels = [i for i in df.index if i in reasons]
    excluded = pd.DataFrame({
        "row": labels,
        "run_id": [df.at[i, "run_id"] if "run_id" in df.columns else None for i in labels],
        "reason": ["; ".join(reasons[i]) for i in labels],
    })
    kept = df.loc[~df.index.isin(labels)]
    return kept, excluded


def describe_excluded(df: pd.DataFrame, excluded: pd.DataFrame, *, source: str = "runs") -> str:
    """One message naming every excluded run (or row) and its reason; WSD trunks, left out by design, counted."""
    trunks = excluded["reason"] == WSD_TRUNK
    items = [f"{_run_label(df, r)} ({why})" for r, why in zip(excluded["row"][~trunks], excluded["reason"][~trunks])]
    if trunks.any():
        items.append(f"{int(trunks.sum())} WSD trunk(s) (their cooldown branches are the points)")
    return f"{source}: excluded {len(excluded)} of {len(df)} runs: {'; '.join(items)}"


def clean_table(df: pd.DataFrame, *, source: str = "runs") -> CleanTable:
    """`clean_runs` for callers that want the usable rows: the kept rows and, if any were excluded, one note
    naming each excluded run and its reason (`describe_excluded`). Quiet: the caller reports the note."""
    kept, excluded = clean_runs(df)
    return CleanTable(kept, (describe_excluded(df, excluded, source=source),) if len(excluded) else ())


def usable_runs(df: pd.DataFrame, *, source: str = "runs", stacklevel: int = 2) -> pd.DataFrame:
    """`clean_table` for a library user: warns (ExcludedRunsWarning) naming the excluded runs and returns
    the kept rows."""
    cleaned = clean_table(df, source=source)
    warn_excluded(cleaned.notes, stacklevel=stacklevel + 1)
    return cleaned.table


# ---------------------------------------------------------------------------------------------- reading

def _read_json_row(path: Path, run_dir: Path) -> dict:
    try:
        row = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON row ({e})") from None
    if not isinstance(row, dict) or any(isinstance(v, (dict, list)) for v in row.values()):
        raise ValueError(f"{path}: a row must be one flat JSON object (no nested objects or lists)")
    run_id = row.setdefault("run_id", run_dir.name)
    if str(run_id) != run_dir.name:
        raise ValueError(f"{path}: run_id {run_id!r} does not match its folder {run_dir.name!r}")
    return row


def _store_run_dirs(store: Path) -> list[Path]:
    runs = store / "runs"
    if not runs.is_dir():
        raise ValueError(f"{store}: not a run store (no runs/ folder) and not a .csv/.parquet file")
    dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    if not dirs:
        raise ValueError(f"{runs}: the store holds no runs")
    return dirs


def _read_store_rows(store: Path) -> tuple[pd.DataFrame, list[str]]:
    """Rows of every run that has a row.json; the run ids without one (unfinished) are returned apart."""
    rows, unfinished = [], []
    for run_dir in _store_run_dirs(store):
        path = run_dir / "row.json"
        if path.is_file():
            rows.append(_read_json_row(path, run_dir))
        else:
            unfinished.append(run_dir.name)
    return pd.DataFrame(rows), unfinished


_STR_COLUMNS = [c for c, t in COLUMNS.items() if t == "str"]


def _read_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={c: str for c in _STR_COLUMNS})
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ValueError(f"{path}: cannot read as {suffix[1:]} ({e})") from None
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use a run store folder, .csv or .parquet")


def _source_path(source) -> Path:
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return path


def _map_columns(df: pd.DataFrame, where: str, mapping: dict[str, str]) -> pd.DataFrame:
    """Copy each mapped column (e.g. n_col="params") into its standard name; error if missing."""
    for standard, given in mapping.items():
        if given == standard:
            continue
        if given not in df.columns:
            raise ValueError(f"{where}: no column {given!r} (asked for as the {standard} column); "
                             f"columns are {list(map(str, df.columns))}")
        df[standard] = df[given]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing required column(s) {missing}; columns are "
                         f"{list(map(str, df.columns))} (map yours with n_col=, d_col=, loss_col=)")
    return df


def _apply_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    for col, dtype in COLUMNS.items():
        if col not in df.columns:
            continue
        if dtype == "str":
            df[col] = df[col].astype("object").where(df[col].notna(), None)
            df[col] = df[col].map(lambda v: v if v is None else str(v))
        elif dtype == "float64":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        else:  # integers: rounded, since a fractional count of parameters or tokens means nothing
            values = pd.to_numeric(df[col], errors="coerce").astype("float64").round()
            df[col] = values.astype("int64") if dtype == "int64" else values.astype("Int64")
    return df


def read_table(source, *, n_col: str = "N", d_col: str = "D", loss_col: str = "loss") -> pd.DataFrame:
    """`load_table`'s rows, its note (if any) raised as an `ExcludedRunsWarning`."""
    loaded = load_table(source, n_col=n_col, d_col=d_col, loss_col=loss_col)
    warn_excluded(loaded.notes)
    return loaded.table


def load_table(source, *, n_col: str = "N", d_col: str = "D", loss_col: str = "loss") -> CleanTable:
    """Read a results table from a run store, .csv or .parquet, ready to fit.

    Copies the mapped columns into N/D/loss, fills C = 6·N·D where absent, excludes unusable rows (see
    `clean_runs`), applies `COLUMNS` dtypes and returns the kept rows with a fresh index, and one note
    naming each excluded run and each unfinished run of a store. `table.attrs["source"]` records where it
    came from. Raises FileNotFoundError for a missing source, ValueError (naming the file and column) for
    an unreadable file or a missing required column.
    """
    path = _source_path(source)
    unfinished: list[str] = []
    if path.is_dir():
        df, unfinished = _read_store_rows(path)
        if df.empty:
            raise ValueError(f"{path}: no run in the store has a row.json yet ({len(unfinished)} unfinished)")
    else:
        df = _read_file(path)
    df = _map_columns(df.copy(), str(path), {"N": n_col, "D": d_col, "loss": loss_col})
    cleaned = clean_table(df.reset_index(drop=True), source=str(path))
    parts = list(cleaned.notes)
    if unfinished:
        parts.append(f"{path}: {len(unfinished)} run(s) have no row.json yet (unfinished): {', '.join(unfinished)}")
    kept = _apply_dtypes(cleaned.table.reset_index(drop=True).copy())
    kept["C"] = compute_column(kept)
    kept.attrs["source"] = str(path)
    return CleanTable(kept, (" | ".join(parts),) if parts else ())


# ---------------------------------------------------------------------------------------------- curves

def _read_curve_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: curve file not found")
    curve = _read_file(path)
    missing = [c for c in ("step", "tokens", "train_loss") if c not in curve.columns]
    if missing:
        raise ValueError(f"{path}: curve missing column(s) {missing}; expected {list(CURVE_COLUMNS)}")
    return curve


def _attach(curve: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    """The run's identity, N, D and its compute per token (C / D: what its budget counts, analysis/compute.py)."""
    known = "C" in row and pd.notna(row["C"]) and pd.notna(row["D"]) and float(row["D"]) > 0
    per_token = float(row["C"]) / float(row["D"]) if known else math.nan
    return curve.assign(run_id=str(row["run_id"]), N=row["N"], D=row["D"], C_per_token=per_token)


class NoCurvesError(ValueError):
    """A source that is a results table of final losses, with no training curve to read: not an error unless
    Approach 1 alone was asked for."""


def _finish_curves(parts: list[pd.DataFrame], where: str) -> pd.DataFrame:
    if not parts:
        raise ValueError(f"{where}: no usable run has a training curve")
    curves = pd.concat(parts, ignore_index=True)
    for col in CURVE_COLUMNS:
        if col not in curves.columns:
            curves[col] = math.nan
    for col in ("N", "D", "step", "tokens", "flops", "train_loss", "val_loss"):
        curves[col] = pd.to_numeric(curves[col], errors="coerce")
    curves["loss"] = curves["train_loss"]
    curves = curves[np.isfinite(curves["loss"].to_numpy(float))]
    front = ["run_id", "N", "D", "step", "tokens", "flops", "loss", "train_loss", "val_loss"]
    curves = curves[front + [c for c in curves.columns if c not in front]].reset_index(drop=True)
    curves.attrs["source"] = where
    return curves


def read_curves(source, *, n_col: str = "N", d_col: str = "D") -> pd.DataFrame:
    """`load_curves`' curves, its note (if any) raised as an `ExcludedRunsWarning`."""
    loaded = load_curves(source, n_col=n_col, d_col=d_col)
    warn_excluded(loaded.notes)
    return loaded.table


def load_curves(source, *, n_col: str = "N", d_col: str = "D") -> CleanTable:
    """Training curves in long format: one row per logged point, columns run_id, N, D, step, tokens,
    flops, loss (= train_loss, see the module docstring), train_loss, val_loss.

    Runs excluded from the results table (not completed, bad N/D) are excluded here too, named in the
    note; points without a finite training loss are dropped.
    """
    path = _source_path(source)
    where = str(path)
    if path.is_dir():
        rows, _ = _read_store_rows(path)
        if rows.empty:
            raise ValueError(f"{path}: no run in the store has a row.json yet")
        rows = _map_columns(rows, where, {"N": n_col, "D": d_col, "loss": "loss"})
        cleaned = clean_table(rows.drop(columns="loss"), source=where)
        parts = []
        for _, row in cleaned.table.iterrows():
            curve_path = path / "runs" / str(row["run_id"]) / "curve.csv"
            if curve_path.is_file():
                parts.append(_attach(_read_curve_csv(curve_path), row))
        return CleanTable(_finish_curves(parts, where), cleaned.notes)
    table = _read_file(path).copy()
    for standard, given in {"N": n_col, "D": d_col}.items():
        if given != standard:
            if given not in table.columns:
                raise ValueError(f"{where}: no column {given!r} (asked for as the {standard} column)")
            table[standard] = table[given]
    if "curve" in table.columns:  # a results table pointing at one curve file per run
        for col in ("run_id", "N", "D"):
            if col not in table.columns:
                raise ValueError(f"{where}: missing column {col!r} needed with a 'curve' column")
        cleaned = clean_table(table.drop(columns=[c for c in ("loss",) if c in table.columns]), source=where)
        parts = [_attach(_read_curve_csv(path.parent / str(row["curve"])), row)
                 for _, row in cleaned.table.iterrows() if pd.notna(row["curve"])]
        return CleanTable(_finish_curves(parts, where), cleaned.notes)
    if "tokens" not in table.columns:  # neither a 'curve' column nor a long-format file: final losses only
        raise NoCurvesError(f"{where}: no training curves (a results table of final losses; Approach 1 needs a "
                            "long-format file with run_id, N, D, tokens, train_loss or loss, or a 'curve' column)")
    # otherwise a long-format curves file
    if "train_loss" not in table.columns and "loss" in table.columns:
        table["train_loss"] = table["loss"]
    missing = [c for c in ("run_id", "N", "D", "tokens", "train_loss") if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing} for training curves (a long-format file needs "
                         "run_id, N, D, tokens, train_loss or loss; or give a results table with a 'curve' column)")
    table = table.drop(columns=[c for c in ("loss",) if c in table.columns])
    if "step" not in table.columns:
        table["step"] = table.groupby("run_id").cumcount()
    ok = clean_table(table.drop_duplicates("run_id")[[c for c in ("run_id", "status", "N", "D") if c in table.columns]],
                     source=where)
    return CleanTable(_finish_curves([table[table["run_id"].isin(ok.table["run_id"])]], where), ok.notes)


