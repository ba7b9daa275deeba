"""prediction.json: the study's validation, written down before any of its runs trains.

`scaling study` designs its validation runs from the fit and then records, atomically, what it predicts:
for each run its budget, N, D, learning rate, batch size, seed, shape and run id, and every predictor's
loss with its prediction interval at that N and D; which predictor leads (the headline) and why; a hash
of the fit (sha256 of the fit's canonical JSON, `fit_sha256`) and the UTC time. Only then do the runs
train, so their start times in the store (status.json `started_at`) can be checked against it, and the
report shows the time and hash beside the outcome. This is pre-registration: a prediction recorded
before the data exist cannot have been adjusted to them.

A rerun of the study on the same store refits the same runs to the same fit (the fits are deterministic,
bootstrap seed 0), designs the same runs, and keeps the file as it is, time included. A changed fit (new
runs in the sweep) or a changed design (other multiples, another predictor) writes a new file that names
the one it replaces, and the study says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import atomicio
from analysis.prediction import Estimate, Headline
from analysis.serialize import from_tree, to_tree
from analysis.study_fit import StudyFit

FILENAME = "prediction.json"


def fit_sha256(fit: StudyFit) -> str:
    """sha256 of the fit's canonical JSON: `StudyFit.to_dict`, strict (NaN as null), keys sorted, no spaces."""
    canonical = json.dumps(atomicio.strict_json(fit.to_dict()), sort_keys=True, separators=(",", ":"),
                           allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PlannedValidation:
    """One validation run as designed, and each predictor's loss for it (its N and D, before it trains)."""

    multiple: float  # × the sweep's largest budget
    budget: float
    run_id: str
    N: int
    D: int
    lr: float
    batch_size: int
    seed: int
    n_layers: int
    d_model: int
    n_heads: int
    predicted: tuple[tuple[str, Estimate], ...]  # (predictor, loss with its prediction interval)


@dataclass(frozen=True)
class PredictionRecord:
    """The content of prediction.json. `replaces` is (fit_sha256, created_at) of the file it replaced."""

    fit_sha256: str
    created_at: str  # UTC, ISO 8601 with microseconds
    headline: Headline
    runs: tuple[PlannedValidation, ...]
    replaces: tuple[str, str] | None = None

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def same_test(self, other: PredictionRecord) -> bool:
        """The same fit, headline and runs with the same predictions (times aside)."""
        return (self.fit_sha256 == other.fit_sha256 and to_tree(self.headline) == to_tree(other.headline)
                and to_tree(self.runs) == to_tree(other.runs))


@dataclass(frozen=True)
class FixedPrediction:
    """What `fix_prediction` did: `action` is "written" (no file before), "kept" (the same test was already
    recorded) or "replaced"; `message` says so (and why) in a sentence."""

    record: PredictionRecord
    path: str
    action: str
    message: str


def read_record(path: str | Path) -> PredictionRecord | None:
    """The record in `path`, None if there is no file; ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        tree = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable or not JSON ({e}); move it away to record a new prediction") from None
    try:
        return from_tree(PredictionRecord, tree)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a prediction record ({e}); move it away to record a new prediction") from None


def fix_prediction(path: str | Path, *, fit: StudyFit, headline: Headline, runs: tuple[PlannedValidation, ...],
                   now: datetime | None = None) -> FixedPrediction:
    """Record the validation in `path` (atomically) unless the same test is already recorded there."""
    path = Path(path)
    now = now or datetime.now(timezone.utc)
    new = PredictionRecord(fit_sha256=fit_sha256(fit), created_at=now.isoformat(timespec="microseconds"),
                           headline=headline, runs=tuple(runs))
    old = read_record(path)
    if old is not None and old.same_test(new):
        return FixedPrediction(old, str(path), "kept", f"the same prediction, recorded {old.created_at} "
                                                       f"(fit {old.fit_sha256[:12]}), is kept")
    if old is None:
        action, message = "written", "prediction recorded before the validation runs train"
    else:
        new = dataclasses.replace(new, replaces=(old.fit_sha256, old.created_at))
        why = ("the fit changed" if old.fit_sha256 != new.fit_sha256
               else "the validation design changed (budgets, predictor or runs)")
        action, message = "replaced", (f"{why}: the prediction of {old.created_at} (fit "
                                       f"{old.fit_sha256[:12]}) is replaced by a new one (fit {new.fit_sha256[:12]})")
    atomicio.write_json(path, to_tree(new))
    return FixedPrediction(new, str(path), action, message)
