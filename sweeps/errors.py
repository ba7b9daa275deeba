"""SweepConfigError: a sweep file or config that cannot be run, naming the file, the key path and the reason.

Keys are dotted paths from the file's top (`training.batch_size`, `grid.shapes[1].n_heads`): a section
raises its error under its own field name and the reader that built it re-keys it under the section's
key (`located`), so every message names the key exactly as the file spells it.
"""

from __future__ import annotations


class SweepConfigError(ValueError):
    """A sweep file or config that cannot be run: `source` (file), `key` (dotted path) and `reason`."""

    def __init__(self, key: str | None, reason: str, *, source: str | None = None):
        self.key, self.reason, self.source = key, reason, source
        super().__init__(": ".join(str(p) for p in (source, key, reason) if p))

    def located(self, *, prefix: str | None = None, source: str | None = None) -> SweepConfigError:
        """The same error with its key under `prefix` and/or its file named."""
        key = self.key
        if prefix:
            key = prefix if not key else f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"
        return SweepConfigError(key, self.reason, source=source or self.source)


def require(ok: bool, key: str, reason: str) -> None:
    if not ok:
        raise SweepConfigError(key, reason)


def require_each(values, key: str, ok, reason: str) -> None:
    """`ok(v)` for every value, an error naming `key[i]` (or `key` for a single value) otherwise."""
    for i, v in enumerate(values):
        require(ok(v), f"{key}[{i}]" if len(values) > 1 else key, f"{reason}, got {v!r}")
