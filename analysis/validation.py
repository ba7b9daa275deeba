"""A validation run as the plots draw it: its compute, N, D and actual loss, and what each predictor said
for it before it trained (the study's prediction.json, scaling/prediction_file.py).

The study builds these from its outcomes; analysis itself never trains a run or reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.prediction import Estimate


@dataclass(frozen=True)
class ValidationPoint:
    compute: float  # the run's C, as the results table counts it
    N: int
    D: int
    actual: float  # final validation loss
    predicted: tuple[tuple[str, Estimate], ...]  # (predictor, loss with its prediction interval)
    headline: str | None  # the predictor that led; None where no loss law led (the headline was Approach 1)

    def __post_init__(self):
        if not self.compute > 0:
            raise ValueError(f"compute must be positive, got {self.compute!r}")
        if self.headline is not None and self.headline not in dict(self.predicted):
            raise ValueError(f"headline {self.headline!r} is not among the predictors {[p for p, _ in self.predicted]}")

    def estimate(self, predictor: str) -> Estimate | None:
        return dict(self.predicted).get(predictor)
