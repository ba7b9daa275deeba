"""The fields a sweep file gives every one of its runs: each ExperimentSpec field and the sweep key it is read from.

ExperimentSpec (and the lm configs behind it) declare these fields' defaults and rules once. The sweep's
sections take their defaults from the spec; `shared_fields` copies the values into every run's spec; and
`check_shared_fields` applies the spec's rules by building a stand-in run, naming a field the spec rejects
by its sweep key (`training.warmup_fraction`, `corpus.val_fraction`).
"""

from __future__ import annotations

from functools import reduce

from experiments.spec import ExperimentSpec
from lm.field_error import FieldError
from sweeps.errors import SweepConfigError

# ExperimentSpec field -> sweep key
SWEEP_KEYS = {
    "n_convention": "n_convention", "compute": "compute",
    "context_length": "training.context_length", "tie_embeddings": "training.tie_embeddings",
    "schedule": "training.schedule", "warmup_fraction": "training.warmup_fraction",
    "min_lr_ratio": "training.min_lr_ratio", "cooldown_fraction": "training.cooldown_fraction",
    "weight_decay": "training.weight_decay", "grad_clip": "training.grad_clip", "seed": "training.seed",
    "beta2": "training.beta2", "precision": "training.precision", "eval_tokens": "training.eval_tokens",
    "corpus_source": "corpus.source", "vocab_size": "corpus.vocab_size", "corpus_max_bytes": "corpus.max_bytes",
    "corpus_text_field": "corpus.text_field", "corpus_val_fraction": "corpus.val_fraction",
    "corpus_seed": "corpus.seed",
}
# a wsd sweep's `training.cooldown:` section, when it has one, gives the cooldown instead
COOLDOWN_KEYS = {"cooldown_fraction": "training.cooldown.fraction", "cooldown_shape": "training.cooldown.shape"}


def sweep_keys(config) -> dict[str, str]:
    """ExperimentSpec field -> the key of `config` (a SweepConfig) it is read from."""
    return {**SWEEP_KEYS, **COOLDOWN_KEYS} if config.training.cooldown is not None else SWEEP_KEYS


def shared_fields(config) -> dict:
    """The ExperimentSpec fields every run of the sweep shares, read from their keys."""
    fields = {name: reduce(getattr, key.split("."), config) for name, key in sweep_keys(config).items()}
    if fields["beta2"] == "auto":
        fields["beta2"] = None  # the spec's default: lm.optim.beta2_for_batch of each run's batch
    return fields


def check_shared_fields(config) -> None:
    """SweepConfigError naming the sweep key of a shared field the spec rejects. The stand-in run (one step
    of one sequence through the smallest shape) is valid for every valid sweep, so only the sweep's fields
    can fail."""
    stand_in = dict(n_layers=1, d_model=2, n_heads=1, batch_size=1, lr=1.0)
    try:
        ExperimentSpec(**stand_in, tokens=config.training.context_length, **shared_fields(config))
    except FieldError as e:
        key = sweep_keys(config).get(e.field)
        raise SweepConfigError(key, e.reason) if key else SweepConfigError(None, str(e)) from None
