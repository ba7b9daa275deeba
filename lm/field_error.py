"""FieldError: a config field that breaks its rule, naming the config, the field and the reason.

Every frozen config of ours validates itself when built. Raising this (a ValueError) instead of a plain
message lets a layer above re-key the error to its own name for the field without restating the rule:
ExperimentSpec reports Schedule's `kind` as its own `schedule`, and a sweep file reports the spec's
`corpus_val_fraction` as `corpus.val_fraction`. The rule stays where the field is declared.
"""

from __future__ import annotations


class FieldError(ValueError):
    """`owner.field: reason`, with the three parts kept for whoever re-keys it."""

    def __init__(self, owner: str, field: str, reason: str):
        self.owner, self.field, self.reason = owner, field, reason
        super().__init__(f"{owner}.{field}: {reason}")
