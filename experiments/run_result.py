"""RunResult: one run's row of the results table, typed; its fields are the table's columns, declared here once.

run_experiment and record_failure (experiments/runner.py) return it, the sweep driver collects it, the
study reads its attributes; it becomes a flat dict only at the storage edge: `to_row()` is row.json (and
`store.ROW_COLUMNS`, the table's column order, is this class's field order), `from_row()` reads a stored
row back. The row stays flat (no nested objects) because it is one line of a table that analysis reads
without importing this package (analysis/table.py).

Rows are only ever extended: a row.json written before a column existed loads with that column None,
except `role`, "run" (every run before WSD trunks and branches was an independent run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

ROW_STATUSES = ("completed", "diverged", "failed", "interrupted")  # a row is returned or written only once it ended
ROLES = ("run", "trunk", "branch")
_ADDED_WITH_DEFAULT = {"role": "run"}  # columns added later whose old rows have a known value


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """One run's results-table row. N is under `n_convention`; D the tokens actually trained; C the compute
    under the run's own convention (`compute`: "exact" or "6N_<n_convention>", what `budget` counts) and
    C_<convention> under every convention (lm.accounting.FLOP_CONVENTIONS); flops the exact count; loss the
    final validation loss (None unless completed, and for a WSD trunk); resumed_from_step the step the last
    attempt resumed from (status.json lists every resumption). role "run", or for warmup-stable-decay runs
    (experiments/wsd.py) "trunk" (not a point) or "branch" (trunk_id its trunk; branch_tokens the tokens it
    trained on the trunk before its cooldown). Non-finite floats are None (JSON is strict)."""

    run_id: str
    sweep: str
    status: str
    N: int
    N_total: int | None
    N_embedding: int | None
    N_head: int | None
    N_blocks: int | None
    N_norms: int | None
    n_convention: str | None
    D: int | None
    passes: float | None
    C: float | None
    flops: float | None
    budget: float | None
    compute: str | None
    C_exact: float | None
    C_6N_non_embedding: float | None
    C_6N_total: float | None
    C_6N_with_head: float | None
    loss: float | None
    train_loss: float | None
    lr: float | None
    batch_size: int | None
    context_length: int | None
    vocab_size: int | None
    n_layers: int | None
    d_model: int | None
    n_heads: int | None
    seed: int | None
    beta2: float | None
    wall_seconds: float | None
    tokens_per_second: float | None
    mfu: float | None
    device: str | None
    precision: str | None
    attempts: int | None
    resumed_from_step: int | None
    error: str | None
    role: str
    trunk_id: str | None
    branch_tokens: int | None

    def __post_init__(self):
        if self.status not in ROW_STATUSES:
            raise ValueError(f"status: a run's row has one of {ROW_STATUSES}, got {self.status!r}")
        if self.role not in ROLES:
            raise ValueError(f"role: one of {ROLES}, got {self.role!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}: {value} is not finite (a row holds None there)")

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The results table's columns, in order."""
        return tuple(f.name for f in fields(cls))

    @property
    def success(self) -> bool:
        """Whether the run completed (diverged, failed and interrupted runs did not)."""
        return self.status == "completed"

    def to_row(self) -> dict:
        """The flat row, in column order: row.json's content and one line of the results table."""
        return {name: getattr(self, name) for name in self.columns()}

    @classmethod
    def from_row(cls, row: dict, *, where: str = "row") -> RunResult:
        """The result of a stored row (`to_row()`'s inverse). ValueError, naming `where`, for a column this
        version does not know or a value the row may not hold."""
        unknown = sorted(set(row) - set(cls.columns()))
        if unknown:
            raise ValueError(f"{where}: unknown column(s) {unknown}")
        values = {name: row.get(name, _ADDED_WITH_DEFAULT.get(name)) for name in cls.columns()}
        try:
            return cls(**values)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


def finite_or_none(value):
    """A float that is not finite becomes None (strict JSON has no NaN or inf); anything else is kept."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
