"""A sweep's WSD runs as trunks and branches: grouping planned runs, and what the sweep then spends.

`branched(runs, config, planned=...)` takes the planned runs of a `schedule: wsd` sweep with a `wsd:`
section (any planner's: IsoFLOP cells, grids, shape families) and turns them into trunks and branches
(experiments/wsd.py): every run becomes a branch, and runs that agree on everything but their token
count and cooldown (model shape, learning rate, batch size, seed, data, ...) share one line of trunks
trained at the stable rate: one trunk per distinct branch step, each starting from the one before
(`wsd.trunk_tokens`, when given, caps how far a line may go). An IsoFLOP sweep shares a line between
budgets exactly where its sizes land on one shape in both, so the sizes should come from one shared
grid (budgets spaced so that their log-spaced sizes coincide, or a shape family).

Compute (Hägele et al. 2024 §4): a line's trunks are trained once, each from the one before. Each branch
is charged its own cooldown plus a share of its line: the stretch between two consecutive branch steps
is shared equally by the branches that need it (those branching at or after its end), so the branches'
charges add up to the sweep's spend exactly (the Shapley value of the cost "train the line to the
latest branch"). `flops_if_separate` is the same branches trained as independent runs, each to its D.

Scheduling (`readiness`): a run that starts from a trunk's checkpoint (a branch from its trunk, a trunk
from the one before it in its line) may start once that checkpoint is in the store, so branches run
beside the longer trunks still training; one whose trunk ended without it (diverged or failed) can
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
    """Which planned runs are trunks and branches, where each starts, and the compute each is charged."""

    trunks: dict[str, ExperimentSpec]  # trunk run id -> its spec (one per branch step of a line)
    branches: dict[str, ExperimentSpec]  # branch run id -> its spec
    starts: dict[str, tuple[str, int]]  # run id -> (the trunk whose checkpoint it starts from, at that step)
    flops_share: dict[str, float]  # branch run id -> its cooldown's FLOPs plus its share of its line's trunks
    flops_separate: dict[str, float]  # branch run id -> the FLOPs of the same run trained on its own

    def __post_init__(self):
        for run_id, spec in self.branches.items():
            if spec.trunk_id not in self.trunks:
                raise ValueError(f"branches[{run_id}].trunk_id: trunk {spec.trunk_id} is not in the sweep")
            if self.starts.get(run_id) != (spec.trunk_id, spec.branch_step):
                raise ValueError(f"branches[{run_id}].branch_step: it must start from its trunk {spec.trunk_id} "
                                 f"at step {spec.branch_step}")
        for run_id, (source, step) in self.starts.items():
            if source not in self.trunks or self.trunks[source].steps != step:
                raise ValueError(f"starts[{run_id}]: {source} is not a trunk of the sweep that ends at step {step}")

    @property
    def flops_if_separate(self) -> float:
        return sum(self.flops_separate.values())

    def role(self, run_id: str) -> str:
        return "trunk" if run_id in self.trunks else "branch" if run_id in self.branches else "run"

    def row(self, run_id: str) -> dict:
        """The plan-row columns of a run: role, trunk_id, branch_tokens, starts_from, flops_share, flops_separate."""
        spec = self.branches.get(run_id)
        return {"role": self.role(run_id), "trunk_id": spec.trunk_id if spec else None,
                "branch_tokens": spec.branch_step * spec.tokens_per_step if spec else None,
                "starts_from": self.starts.get(run_id, (None,))[0],
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
    """Trunks first (each line in order of length), then branches, as planned runs, with their Branching.

    runs: the sweep's independent WSD runs (sweeps.plan.PlannedRun) in plan order; planned(spec, n_target)
    plans one run. A trunk's or branch's planned flops and time are those of what it trains itself (a
    trunk from the one before it, a branch its cooldown): its time is the independent run's with the
    per-run overhead once and the rest scaled by its share of the steps. Raises SweepConfigError naming
    wsd.trunk_tokens for a branch beyond the trunks' limit, wsd.warmup_tokens for a warmup that
    outlasts a stable phase.
    """
    lines: dict[tuple, list[tuple[ExperimentSpec, float | None]]] = {}
    for run in runs:
        spec = wsd.branch_of(with_warmup(run.spec, config))
        lines.setdefault(wsd.line_of(spec), []).append((spec, run.n_target))
    trunks, branches, starts, share, separate = {}, {}, {}, {}, {}
    trunk_runs, branch_runs = [], []
    for members in lines.values():
        _check_limit(members, config)
        steps = sorted({b.branch_step for b, _ in members})
        per_step = training_flops_per_token(members[0][0].model_config()) * members[0][0].tokens_per_step
        previous = None
        for step in steps:
            trunk = wsd.trunk_for(members[0][0], steps=step)
            trunks[trunk.run_id] = trunk
            if previous is not None:
                starts[trunk.run_id] = (previous.run_id, previous.steps)
            trunk_runs.append(_own_part(planned(trunk, None), trunk.steps - (previous.steps if previous else 0),
                                        trunk.steps, per_step, config))
            previous = trunk
        for b, n_target in members:
            branches[b.run_id] = b
            starts[b.run_id] = (b.trunk_id, b.branch_step)
            separate[b.run_id] = b.steps * per_step
            share[b.run_id] = (b.steps - b.branch_step + _trunk_share(b, [m for m, _ in members])) * per_step
            branch_runs.append(_own_part(planned(b, n_target), b.steps - b.branch_step, b.steps, per_step, config))
    return trunk_runs + branch_runs, Branching(trunks=trunks, branches=branches, starts=starts,
                                               flops_share=share, flops_separate=separate)


def _check_limit(members, config: SweepConfig) -> None:
    if config.wsd.trunk_tokens is None:
        return
    spec = max((m for m, _ in members), key=lambda m: m.branch_step)
    limit = config.wsd.trunk_tokens // spec.tokens_per_step
    if spec.branch_step > limit:
        raise SweepConfigError("wsd.trunk_tokens", f"the branch at step {spec.branch_step} (N={spec.n:,}, "
                               f"D={spec.tokens:,}) lies beyond the trunks' limit of {limit} steps "
                               f"({config.wsd.trunk_tokens:,} tokens)")


def _own_part(whole, own_steps: int, steps: int, per_step: float, config: SweepConfig):
    """A planned run charged only for the `own_steps` of its `steps` that it trains itself."""
    overhead = config.planning.overhead_seconds
    return dataclasses.replace(whole, flops=own_steps * per_step,
                               est_seconds=overhead + (whole.est_seconds - overhead) * own_steps / steps)


def _trunk_share(branch: ExperimentSpec, members: list[ExperimentSpec]) -> float:
    """Trunk steps charged to `branch`: each stretch between branch steps split among the branches needing it."""
    charged, previous = 0.0, 0
    for point in sorted({m.branch_step for m in members}):
        if point > branch.branch_step:
            break
        charged += (point - previous) / sum(1 for m in members if m.branch_step >= point)
        previous = point
    return charged


READY, BLOCKED, ORPHANED = "ready", "blocked", "orphaned"


def readiness(spec: ExperimentSpec, branching: Branching | None, store: str | Path) -> str:
    """READY (it starts from nothing, or its starting checkpoint is in the store), BLOCKED (the trunk it
    starts from has not got there yet) or ORPHANED (that trunk is done without the checkpoint: never)."""
    start = branching.starts.get(spec.run_id) if branching else None
    if start is None or wsd.final_checkpoint(store, *start).exists():
        return READY
    return ORPHANED if st.is_done(store, start[0]) else BLOCKED


def start_checkpoint(spec: ExperimentSpec, branching: Branching | None, store: str | Path) -> Path | None:
    """The checkpoint a run starts from (a trunk's, the one before it in its line; a branch's, its trunk's)."""
    start = branching.starts.get(spec.run_id) if branching else None
    return wsd.final_checkpoint(store, *start) if start else None


def orphan_reason(spec: ExperimentSpec, branching: Branching, store: str | Path) -> str:
    source, step = branching.starts[spec.run_id]
    row = st.read_result(store, source)  # orphaned: the trunk is done, so its row is there
    return (f"the trunk it starts from, {source}, ended {row.status!r} without its checkpoint at step "
            f"{step} ({row.error or 'no error recorded'})")
