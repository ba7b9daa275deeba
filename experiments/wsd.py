"""WSD trunks and branches as runs: which trunk a warmup-stable-decay run branches from, and where.

A WSD run to D tokens (warmup, stable, then a cooldown over its last `cooldown_fraction` of steps) is,
up to its cooldown start, the same computation for every D: the stable phase trained once (as
*trunks*) serves them all, and each *branch* trains only its cooldown from the trunk's checkpoint at
its own cooldown start (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations", §4; MiniCPM and OLMo do the same).

- `trunk_for(spec, steps=...)` is the stable phase of a WSD spec's line trained to `steps`: the spec with
  schedule "constant", `trunk=True`, and the fields that only shape the cooldown (cooldown fraction and
  shape, min_lr_ratio, warmup_fraction, budget) at their defaults, so runs that differ only in their
  cooldowns share it. Its id is its own spec's hash, as for every run; it keeps one checkpoint, at its
  last step.
- One trunk run per branch step: the trunk of a branch is `trunk_of(spec)`, its line trained exactly to
  the branch step, so a branch's id never depends on which other branches a sweep holds. The trunks of
  one line are trained as a chain, each starting from the checkpoint of the one before it (the state
  at a step is the same whichever run reached it, bit for bit on CPU: lm/branch.py), so the line is
  trained once, and a sweep extended with a new branch step adds one trunk, which starts from the
  nearest shorter one, and retrains no existing run (a step between two old ones trains the stretch
  from the shorter one again, inside the new trunk).
- `branch_of(spec)` is the WSD spec as a branch: it names its trunk's id and its branch step, so it has
  an id of its own, different from the independent run's, and trains the same numbers
  (lm/branch.py checks it at start; tests/test_wsd_branch.py checks bit for bit).
- The warmup is fixed in steps (`warmup_steps`): with a warmup proportional to each run's length, the
  learning rates of runs to different D would differ from the first step and no trunk could be shared.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from experiments import store as st
from experiments.spec import ExperimentSpec
from lm import checkpoint

# Fields that shape only the cooldown (or nothing, once warmup_steps is fixed): a trunk keeps their defaults.
_COOLDOWN_ONLY = ("cooldown_fraction", "cooldown_shape", "min_lr_ratio", "warmup_fraction", "budget")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ExperimentSpec)}


def branch_step(spec: ExperimentSpec) -> int:
    """The step at which a WSD run's cooldown starts (where it leaves its trunk)."""
    if spec.schedule != "wsd":
        raise ValueError(f"ExperimentSpec.schedule: only a wsd run has a branch step, got {spec.schedule!r}")
    return spec.schedule_config().cooldown_start(spec.steps)


def trunk_for(spec: ExperimentSpec, *, steps: int) -> ExperimentSpec:
    """The trunk that `spec` (a wsd run with warmup_steps, or a branch) branches from, trained `steps` steps."""
    if spec.schedule != "wsd" or spec.warmup_steps is None:
        raise ValueError("ExperimentSpec.warmup_steps: a trunk is shared by wsd runs with a fixed warmup_steps")
    if steps < branch_step(spec):
        raise ValueError(f"trunk of {steps} steps ends before the branch step {branch_step(spec)}")
    return dataclasses.replace(spec, schedule="constant", tokens=steps * spec.tokens_per_step, trunk=True,
                               trunk_id=None, branch_step=None, **{k: _DEFAULTS[k] for k in _COOLDOWN_ONLY})


def trunk_of(spec: ExperimentSpec) -> ExperimentSpec:
    """The trunk a wsd run (with warmup_steps) or branch starts from: its line trained to its branch step."""
    return trunk_for(spec, steps=branch_step(spec))


def branch_of(spec: ExperimentSpec) -> ExperimentSpec:
    """`spec` (a wsd run with warmup_steps) as a branch of `trunk_of(spec)`."""
    return dataclasses.replace(spec, trunk_id=trunk_of(spec).run_id, branch_step=branch_step(spec))


def line_of(spec: ExperimentSpec) -> tuple:
    """What the trunks of one line share (everything but their length): a hashable key."""
    return tuple(sorted(dataclasses.replace(trunk_of(spec) if not spec.trunk else spec,
                                            tokens=spec.tokens_per_step).to_dict().items()))


def is_branch(spec: ExperimentSpec) -> bool:
    return spec.trunk_id is not None


def final_checkpoint(store: str | Path, trunk_id: str, step: int) -> Path:
    """Where a trunk of `step` steps keeps its last state in the store."""
    return checkpoint.step_path(st.run_dir(store, trunk_id), step)


def trunk_checkpoint(store: str | Path, branch: ExperimentSpec) -> Path:
    """Where a branch's starting checkpoint lies in the store: its trunk's checkpoint at the branch step."""
    return final_checkpoint(store, branch.trunk_id, branch.branch_step)
