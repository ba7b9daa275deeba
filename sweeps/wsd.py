"""A sweep's WSD runs as trunks and branches: grouping planned runs, and what the sweep then spends.

`branched(runs, config, planned=...)` takes the planned runs of a `schedule: wsd` sweep with a `wsd:`
section (any planner's: IsoFLOP cells, grids, shape families) and turns them into trunks and branches
(experiments/wsd.py): every run becomes a branch, and runs that agree on everything but their token
count and cooldown (model shape, learning rate, batch size, seed, data, ...) share one trunk, trained
at the stable rate to the latest of their cooldown starts (or to `wsd.trunk_tokens`). An IsoFLOP sweep
shares a trunk between budgets exactly where its sizes land on one shape in both, so the sizes should
come from one shared grid (budgets spaced so that their log-spaced sizes coincide, or a shape family).

Compute (Hägele et al. 2024 §4): a trunk's FLOPs are spent once. Each branch is charged its own
cooldown plus a share of the trunk: the trunk's segment between two consecutive branch steps is shared
equally by the branches that need it (those branching at or after its end), and any stretch past the
last branch (trunk_tokens) equally by all; so the branches' charges add up to the sweep's spend exactly
(the Shapley value of the cost "train the trunk to the latest branch"). `flops_if_separate` is the same
branches trained as independent runs, each to its D.

Scheduling (`readiness`): a branch may start once its trunk's checkpoint at its branch step is in the
store, so branches run beside the trunk that is still training past them; a branch whose trunk ended
without that checkpoint (it diverged or failed before, or was trained before the branch was planned) can
never start and is recorded as failed by the launcher rather than waited for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from experiments import store as st, wsd
from experiments.spec import ExperimentSpec
from lm.accounting import training_flops_per_token
from sweeps.config import SweepConfig, SweepConfigError


@dataclass(frozen=True)
class Branching:
    """Which planned runs are trunks and branches, and the compute each is charged."""

    trunks: dict[str, tuple[int, ...]]  # trunk run id -> its branch steps (where it keeps checkpoints), sorted
    trunk_steps: dict[str, int]  # trunk run id -> the steps it trains
    branches: dict[str, ExperimentSpec]  # branch run id -> its spec
    flops_share: dict[str, float]  # branch run id -> its cooldown's FLOPs plus its share of its trunk's
    flops_separate: dict[str, float]  # branch run id -> the FLOPs of the same run trained on its own

    def __post_init__(self):
        for run_id, spec in self.branches.items():
            if spec.trunk_id not in self.trunks:
                raise ValueError(f"branches[{run_id}].trunk_id: trunk {spec.trunk_id} is not in the sweep")
            if spec.branch_step not in self.trunks[spec.trunk_id]:
                raise ValueError(f"branches[{run_id}].branch_step: trunk {spec.trunk_id} keeps no checkpoint at "
                                 f"step {spec.branch_step}")
            if spec.branch_step > self.trunk_steps[spec.trunk_id]:
                raise ValueError(f"branches[{run_id}].branch_step: {spec.branch_step} lies beyond its trunk's "
                                 f"{self.trunk_steps[spec.trunk_id]} steps")

    @property
    def flops_if_separate(self) -> float:
        return sum(self.flops_separate.values())

    def role(self, run_id: str) -> str:
        return "trunk" if run_id in self.trunks else "branch" if run_id in self.branches else "run"

    def row(self, run_id: str) -> dict:
        """The plan-row columns of a run: role, trunk_id, branch_tokens, flops_share, flops_separate."""
        spec = self.branches.get(run_id)
        return {"role": self.role(run_id), "trunk_id": spec.trunk_id if spec else None,
                "branch_tokens": spec.branch_step * spec.tokens_per_step if spec else None,
                "flops_share": self.flops_share.get(run_id), "flops_separate": self.flops_separate.get(run_id)}


def with_warmup(spec: ExperimentSpec, config: SweepConfig) -> ExperimentSpec:
    """The spec with the sweep's fixed warmup (wsd.warmup_tokens in whole steps), checked to end in time."""
    steps = round(config.wsd.warmup_tokens / spec.tokens_per_step)
    out = dataclasses.replace(spec, warmup_steps=steps)
    if steps > wsd.branch_step(out):
        raise SweepConfigError("wsd.warmup_tokens", f"a warmup of {steps} steps ends after the cooldown start "
                               f"(step {wsd.branch_step(out)}) of the run with N={out.n:,}, D={out.tokens:,}")
    return out


def branched(runs: list, config: SweepConfig, *,
             planned: Callable[[ExperimentSpec, float | None], object]) -> tuple[list, Branching]:
    """Trunks first, then branches, as planned runs, with the Branching that links them.

    runs: the sweep's independent WSD runs (sweeps.plan.PlannedRun) in plan order; planned(spec, n_target)
    plans one run. A branch's planned flops and time are its cooldown's (what launching it costs): its
    time is the independent run's with the per-run overhead once and the rest scaled by the cooldown's
    share of the steps. Raises SweepConfigError naming wsd.trunk_tokens
    for a branch beyond the trunk, wsd.warmup_tokens for a warmup that outlasts a stable phase.
    """
    groups: dict[tuple, list[ExperimentSpec]] = {}
    n_targets = {}
    for run in runs:
        spec = with_warmup(run.spec, config)
        n_targets[spec.run_id] = run.n_target
        key = tuple(sorted(dataclasses.replace(wsd.trunk_for(spec, steps=wsd.branch_step(spec)),
                                               tokens=spec.tokens_per_step).to_dict().items()))
        groups.setdefault(key, []).append(spec)
    trunks, trunk_steps, branches, share, separate, out = {}, {}, {}, {}, {}, []
    branch_runs = []
    for members in groups.values():
        steps = max(wsd.branch_step(s) for s in members)
        if config.wsd.trunk_tokens is not None:
            limit = config.wsd.trunk_tokens // members[0].tokens_per_step
            if steps > limit:
                raise SweepConfigError("wsd.trunk_tokens", f"the branch at step {steps} (D={max(s.tokens for s in members):,}) "
                                       f"lies beyond the trunk's {limit} steps ({config.wsd.trunk_tokens:,} tokens)")
            steps = limit
        trunk = wsd.trunk_for(members[0], steps=steps)
        own = [wsd.branch_of(s, trunk) for s in members]
        targets = [n_targets[s.run_id] for s in members]
        trunks[trunk.run_id] = tuple(sorted({b.branch_step for b in own}))
        trunk_steps[trunk.run_id] = steps
        out.append(planned(trunk, None))
        per_step = training_flops_per_token(trunk.model_config()) * trunk.tokens_per_step
        for b, n_target in zip(own, targets):
            branches[b.run_id] = b
            separate[b.run_id] = b.steps * per_step
            share[b.run_id] = (b.steps - b.branch_step) * per_step + _trunk_share(b, own, steps) * per_step
            whole, fraction = planned(b, n_target), (b.steps - b.branch_step) / b.steps
            overhead = config.planning.overhead_seconds
            branch_runs.append(dataclasses.replace(whole, flops=(b.steps - b.branch_step) * per_step,
                                                   est_seconds=overhead + (whole.est_seconds - overhead) * fraction))
    return out + branch_runs, Branching(trunks=trunks, trunk_steps=trunk_steps, branches=branches,
                                         flops_share=share, flops_separate=separate)


def _trunk_share(branch: ExperimentSpec, members: list[ExperimentSpec], trunk_steps: int) -> float:
    """Trunk steps charged to `branch`: each segment between branch steps split among those that need it."""
    points = sorted({m.branch_step for m in members})
    charged, previous = 0.0, 0
    for point in points:
        if point > branch.branch_step:
            break
        needing = sum(1 for m in members if m.branch_step >= point)
        charged += (point - previous) / needing
        previous = point
    return charged + (trunk_steps - points[-1]) / len(members)


READY, BLOCKED, ORPHANED = "ready", "blocked", "orphaned"


def readiness(spec: ExperimentSpec, store: str | Path) -> str:
    """READY (not a branch, or its trunk's checkpoint at the branch step exists), BLOCKED (its trunk has not
    reached the branch step yet) or ORPHANED (its trunk is done without that checkpoint: it never will)."""
    if not wsd.is_branch(spec) or wsd.trunk_checkpoint(store, spec).exists():
        return READY
    return ORPHANED if st.is_done(store, spec.trunk_id) else BLOCKED


def orphan_reason(spec: ExperimentSpec, store: str | Path) -> str:
    row = st.read_row(store, spec.trunk_id) or {}
    return (f"its trunk {spec.trunk_id} ended {row.get('status')!r} without a checkpoint at the branch step "
            f"{spec.branch_step} ({row.get('error') or 'it was trained before this branch was planned'})")
