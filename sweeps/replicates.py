"""Seed replicates: `training.seeds: k` trains every cell of a sweep k times, with seeds seed .. seed+k-1.

A run's seed sets both its initialisation (`torch.manual_seed` before the model is built, lm/train.py) and
its data order (the per-pass permutations of lm/batches.py are seeded by (seed, pass)), so replicates differ
in both and in nothing else: the same shape, tokens, batch size and learning rate. The seed is a field of
the spec, so each replicate has its own run id, and seeds 0 .. k-1 of a sweep extended from `seeds: 1` to
`seeds: 3` keep seed 0's ids: only the new replicates train.

Why replicates: every interval the fits give rests on the run-to-run noise, and with one seed per cell that
noise is only inferred from the residuals of a fitted curve, never measured. How the fits use them is in
docs/methods.md ("Seeds"); the spread they measure is `analysis.replicates.noise_floor`.
"""

from __future__ import annotations

import dataclasses

from experiments.spec import ExperimentSpec


def replicate_seeds(seed: int, seeds: int) -> range:
    """The seeds of a cell's replicates: seed, seed + 1, ..., seed + seeds - 1."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds!r}")
    return range(seed, seed + seeds)


def replicates(spec: ExperimentSpec, seeds: int) -> list[ExperimentSpec]:
    """`spec` once per replicate seed, starting from its own seed (seeds = 1: the spec itself)."""
    return [spec if s == spec.seed else dataclasses.replace(spec, seed=s) for s in replicate_seeds(spec.seed, seeds)]
