"""The durable run store: one self-describing folder per run, written atomically, read by analysis.

Layout (analysis/table.py reads it without importing this package; tests/test_store.py checks both agree):

    <store>/runs/<run_id>/spec.json        the spec's fields plus "run_id"
                          status.json      status, attempts, resumed_from_step (list), error, host, pid, times
                          provenance.json  git SHA and dirty flag, package versions, python, hostname
                          curve.csv        step,tokens,flops,train_loss,val_loss (val_loss empty when not evaluated)
                          result.json      lm.train.TrainResult without its curve
                          row.json         the run's row of the results table: one flat object, ROW_COLUMNS (RunResult.to_row)
                          checkpoint.pt    lm checkpoint while the run is unfinished (see runner.py)
                          checkpoint-step<k>.pt  a WSD trunk's checkpoint at its last step k (kept: runs start from it)
                          lease.json       which driver trains it now, or released (experiments/lease.py)
    <store>/sweeps/<sweep>.json            which run ids a sweep asked for (`write_manifest`)

Status: pending -> running -> completed | diverged | failed | interrupted. completed, diverged and failed
are terminal; a run is *done* iff row.json exists with a terminal status, and row.json is always written
last, so a crash at any moment leaves a run either done or resumable. Every file is written to a temp
file in the same folder and renamed over the old one (os.replace), so readers never see half a file.
JSON is strict: non-finite floats (NaN, inf) are written as null.

Run ids and sweep names are file names here, so they must match [A-Za-z0-9][A-Za-z0-9._-]* and contain
no ".."; anything else (`../x`, `a/b`) is rejected before touching the disk.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import atomicio
from experiments.run_result import RunResult
from experiments.spec import ExperimentSpec

RUNS_DIR, SWEEPS_DIR = "runs", "sweeps"
SPEC, STATUS, PROVENANCE, CURVE, RESULT, ROW = (
    "spec.json", "status.json", "provenance.json", "curve.csv", "result.json", "row.json")

STATUSES = ("pending", "running", "completed", "diverged", "failed", "interrupted")
TERMINAL = ("completed", "diverged", "failed")

# The results-table row, in this order (a superset of analysis.table.COLUMNS): the fields of
# experiments.run_result.RunResult, which says what each column holds.
ROW_COLUMNS = RunResult.columns()
CURVE_COLUMNS = ("step", "tokens", "flops", "train_loss", "val_loss")

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME_LENGTH = 128


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is safe as a single file name in the store; else ValueError naming `what`."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} {name!r} is not allowed: use letters, digits, '.', '_' and '-', starting "
                         f"with a letter or digit, without '..', at most {MAX_NAME_LENGTH} characters")
    return name


def run_dir(store: str | Path, run_id: str) -> Path:
    return Path(store) / RUNS_DIR / check_name(run_id, "run id")


# ---- atomic writes: the shared primitive (atomicio), under the names the store has always used -----

atomic_write_text = atomicio.write_text
write_json = atomicio.write_json


def read_json(path: str | Path) -> dict | None:
    """The JSON object in `path`, or None if the file does not exist; ValueError naming it if corrupt."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable or not JSON ({e})") from None


def write_curve(path: str | Path, points) -> None:
    """curve.csv from lm.train.CurvePoint objects; val_loss is empty where not evaluated."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for p in points:
        writer.writerow([p.step, p.tokens, repr(float(p.flops)), repr(float(p.train_loss)),
                         "" if p.val_loss is None else repr(float(p.val_loss))])
    atomic_write_text(path, out.getvalue())


# ---- one run ------------------------------------------------------------------------------------

def prepare_run(store: str | Path, spec: ExperimentSpec, *, sweep: str) -> Path:
    """Create the run's folder with spec.json and a pending status.json (kept if one exists); return it.

    An existing spec.json must describe the same spec (a ValueError otherwise: the folder belongs to
    another spec, or the id scheme changed).
    """
    check_name(sweep, "sweep name")
    folder = run_dir(store, spec.run_id)
    saved = read_json(folder / SPEC)
    if saved is None:
        write_json(folder / SPEC, {**spec.to_dict(), "run_id": spec.run_id})
    elif read_spec(store, spec.run_id) != spec:
        raise ValueError(f"{folder / SPEC} holds a different spec than run {spec.run_id}")
    if read_json(folder / STATUS) is None:
        write_json(folder / STATUS, {"run_id": spec.run_id, "sweep": sweep, "status": "pending", "attempts": 0,
                                     "resumed_from_step": [], "error": None})
    return folder


def read_spec(store: str | Path, run_id: str) -> ExperimentSpec:
    """The spec of a stored run; ValueError if its id no longer matches its content."""
    path = run_dir(store, run_id) / SPEC
    data = read_json(path)
    if data is None:
        raise FileNotFoundError(f"{path}: no such run")
    stored_id = data.pop("run_id", None)
    spec = ExperimentSpec.from_dict(data)
    if stored_id != spec.run_id or stored_id != run_id:
        raise ValueError(f"{path}: stored run_id {stored_id!r} does not match the spec's hash {spec.run_id!r}")
    return spec


def read_status(store: str | Path, run_id: str) -> dict | None:
    return read_json(run_dir(store, run_id) / STATUS)


def read_row(store: str | Path, run_id: str) -> dict | None:
    return read_json(run_dir(store, run_id) / ROW)


def read_result(store: str | Path, run_id: str) -> RunResult | None:
    """The run's row as a RunResult, or None if it has no row.json (not done)."""
    path = run_dir(store, run_id) / ROW
    row = read_json(path)
    return None if row is None else RunResult.from_row(row, where=str(path))


def run_state(store: str | Path, run_id: str) -> str | None:
    """The run's status ("pending", "running", ..., see STATUSES), or None if the store has no such run."""
    folder = run_dir(store, run_id)
    for name in (ROW, STATUS):
        data = read_json(folder / name)
        if data is not None:
            return data.get("status")
    return None


def is_done(store: str | Path, run_id: str) -> bool:
    """True iff the run's row.json exists with a terminal status (completed, diverged or failed)."""
    row = read_row(store, run_id)
    return row is not None and row.get("status") in TERMINAL


# ---- the whole store ----------------------------------------------------------------------------

def run_ids(store: str | Path) -> list[str]:
    """Ids of every run folder in the store, sorted (an empty list for a store not yet created)."""
    runs = Path(store) / RUNS_DIR
    if not runs.is_dir():
        return []
    return sorted(p.name for p in runs.iterdir() if p.is_dir() and _SAFE_NAME.fullmatch(p.name))


def run_states(store: str | Path) -> dict[str, str | None]:
    """run_id -> status for every run in the store (what sweeps.schedule.pending_runs takes)."""
    return {run_id: run_state(store, run_id) for run_id in run_ids(store)}


def read_rows(store: str | Path) -> list[dict]:
    """The row of every run that has a row.json, sorted by run id."""
    rows = [read_row(store, run_id) for run_id in run_ids(store)]
    return [row for row in rows if row is not None]


def write_manifest(store: str | Path, sweep: str, run_ids_: list[str], **info) -> Path:
    """Record which runs a sweep asked for in <store>/sweeps/<sweep>.json (runs are shared between
    sweeps, so a row's `sweep` column names only the sweep that trained it). `info` is stored alongside."""
    path = Path(store) / SWEEPS_DIR / f"{check_name(sweep, 'sweep name')}.json"
    for run_id in run_ids_:
        check_name(run_id, "run id")
    write_json(path, {"sweep": sweep, "run_ids": list(run_ids_), **info})
    return path


def read_manifest(store: str | Path, sweep: str) -> dict | None:
    return read_json(Path(store) / SWEEPS_DIR / f"{check_name(sweep, 'sweep name')}.json")
