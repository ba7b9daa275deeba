"""Starting a run from another run's checkpoint: a WSD cooldown branched off its trunk.

With a warmup-stable-decay schedule the learning rate before the cooldown does not depend on the run's
horizon, so one trunk trained at the stable rate serves every token count: a branch loads the trunk's
checkpoint at its cooldown start and trains only the cooldown (Hägele et al. 2024, "Scaling Laws and
Compute-Optimal Training Beyond Fixed Training Durations", §4). The branch is then the same
computation as an independent WSD run to its token count, provided the trunk took the same steps:
same model, data, seed, optimizer settings and, step for step, the same learning rate. `check_start`
refuses a checkpoint for which any of that fails, naming what differs.
"""

from __future__ import annotations

from pathlib import Path

from lm.checkpoint import CheckpointError, check_matches
from lm.optim import Schedule

# What a trunk and its branch may differ in: the horizon and the schedule's shape after the branch step.
HORIZON_FIELDS = ("tokens", "schedule")


def _steps(config: dict) -> int:
    return config["tokens"] // (config["batch_size"] * config["model"]["context_length"])


def check_start(path: str | Path, saved: dict, current: dict, step: int) -> None:
    """CheckpointError unless a run with config `current` may start from the checkpoint at `path`.

    saved/current: lm.train.TrainConfig.identity() of the checkpoint's run and of this one (JSON form);
    step: the checkpoint's step. The learning-rate multipliers of the two schedules must be equal, as
    floats, at every step before `step`, and the checkpoint's step must lie inside this run.
    """
    rest = lambda d: {k: v for k, v in d.items() if k not in HORIZON_FIELDS}  # noqa: E731
    check_matches(path, "training configuration (outside the horizon)", rest(saved), rest(current))
    ours, theirs = _steps(current), _steps(saved)
    if not 0 < step < ours:
        raise CheckpointError(f"checkpoint {path} is at step {step}, outside this run's 1..{ours - 1}")
    a, b = Schedule(**saved["schedule"]), Schedule(**current["schedule"])
    for s in range(step):
        if a.multiplier(s, theirs) != b.multiplier(s, ours):
            raise CheckpointError(
                f"checkpoint {path}: its run's learning rate at step {s} ({a.multiplier(s, theirs)!r} of peak) "
                f"differs from this run's ({b.multiplier(s, ours)!r}); a branch must follow its trunk's "
                f"schedule up to the branch step (give both the same warmup_steps)")
