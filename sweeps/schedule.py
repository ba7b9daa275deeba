"""Scheduling decisions as plain functions: what still needs training, in which order, with what resources.

The Ray layer (sweeps/launch.py) only executes these answers; nothing here imports Ray, so every rule is
tested on its own.
- Done runs (row.json with a terminal status: completed, diverged, failed) are skipped; a diverged run
  would diverge again (same spec, same numbers). Failed runs are retried only when asked, since a
  failure may be the machine's (out of memory, a lost worker) or the spec's. Partial runs (pending,
  running, interrupted) are included: they resume from their checkpoints.
- Longest first: with runs of very different lengths (an IsoFLOP cell's smallest model trains ~16x
  the tokens of its largest), starting the longest first keeps one long run from trailing alone at
  the end (LPT list scheduling: makespan within 4/3 of optimal, Graham 1969).
- GPU sharing: a run's GPU fraction is its memory estimate (lm.accounting.training_memory) times a
  safety factor over the GPU's memory, clamped to [1/16, 1] and rounded up to 1/k, so k small runs
  share one GPU when their estimates fit and big runs get it alone.
- Data-parallel runs (resources.workers_per_run) take one whole GPU per worker and count as that many
  runs against the concurrency cap; a sweep whose runs need more workers than the cluster can ever hold
  at once is refused before anything is written (`workers_placeable`).
"""

from __future__ import annotations

import heapq
import math
from typing import Iterable, Mapping

from experiments.spec import ExperimentSpec
from experiments.store import TERMINAL
from lm.accounting import training_memory

MEMORY_SAFETY = 1.5  # allocator fragmentation, CUDA context and kernels' workspace on top of the estimate
GPU_MEMORY_BYTES = 80e9  # a datacenter GPU: what plans assume, and launches when the driver cannot see one
MAX_RUNS_PER_GPU = 16


def _specs(plan_or_specs) -> list[ExperimentSpec]:
    specs = getattr(plan_or_specs, "specs", plan_or_specs)
    return list(specs)


def pending_runs(plan_or_specs, states: Mapping[str, str | None], *, retry_failed: bool = False) -> list[ExperimentSpec]:
    """The specs that still need training, in plan order, each once.

    states: run_id -> status, as experiments.store.run_states(store) returns (runs absent from it were
    never started). Skipped: runs with a terminal status (completed, diverged; failed unless retry_failed).
    """
    pending, seen = [], set()
    for spec in _specs(plan_or_specs):
        run_id = spec.run_id
        if run_id in seen:
            continue
        seen.add(run_id)
        status = states.get(run_id)
        if status not in TERMINAL or (status == "failed" and retry_failed):
            pending.append(spec)
    return pending


def order_longest_first(specs: Iterable[ExperimentSpec], est_seconds: Mapping[str, float]) -> list[ExperimentSpec]:
    """Specs sorted by estimated seconds, longest first; ties keep their given order.

    est_seconds: run_id -> seconds (SweepPlan.est_seconds()); a KeyError names a run without an estimate.
    """
    specs = list(specs)
    for spec in specs:
        if spec.run_id not in est_seconds:
            raise KeyError(f"no time estimate for run {spec.run_id}")
    return sorted(specs, key=lambda s: -est_seconds[s.run_id])


def memory_estimate(spec: ExperimentSpec, *, device_kind: str) -> int:
    """Training memory in bytes (lm.accounting.training_memory), with precision "auto" resolved for the
    device kind as lm.device does: bf16 on GPU, fp32 on CPU."""
    precision = spec.precision if spec.precision != "auto" else ("bf16" if device_kind == "gpu" else "fp32")
    return training_memory(spec.model_config(), batch_size=spec.batch_size, precision=precision).total


def gpu_fraction(memory_bytes: float, gpu_memory_bytes: float, *, safety: float = MEMORY_SAFETY,
                 max_runs_per_gpu: int = MAX_RUNS_PER_GPU) -> float:
    """clamp(memory·safety / gpu_memory, 1/max_runs_per_gpu, 1), rounded up to the nearest 1/k."""
    if gpu_memory_bytes <= 0:
        raise ValueError(f"gpu_memory_bytes must be positive, got {gpu_memory_bytes!r}")
    need = min(1.0, max(1.0 / max_runs_per_gpu, memory_bytes * safety / gpu_memory_bytes))
    k = math.floor(1.0 / need + 1e-9)  # the most runs of this size one GPU holds
    return 1.0 / k


def resources_for(
    spec: ExperimentSpec,
    *,
    device_kind: str,
    gpu_memory_bytes: float | None = None,
    cpus_per_run: int = 1,
    gpus_per_run: float | str = "auto",
    safety: float = MEMORY_SAFETY,
) -> dict:
    """Ray resources for one run: {"num_cpus", "num_gpus", "memory"} (splat into `.options(**r)`).

    device_kind "cpu": no GPU; memory = the training-memory estimate × safety (the run lives in host RAM).
    device_kind "gpu": num_gpus = gpus_per_run, or with "auto" `gpu_fraction` of gpu_memory_bytes (required
    then); host memory = the checkpoint (fp32 parameters and AdamW moments, staged in host memory by
    torch.save) × safety. A run estimated larger than the GPU still gets one whole GPU: the estimate is
    conservative, and if it really does not fit the run fails with out-of-memory, recorded in the store.
    """
    if device_kind not in ("cpu", "gpu"):
        raise ValueError(f"device_kind must be 'cpu' or 'gpu', got {device_kind!r}")
    if not isinstance(cpus_per_run, int) or cpus_per_run < 1:
        raise ValueError(f"cpus_per_run must be an integer >= 1, got {cpus_per_run!r}")
    memory = memory_estimate(spec, device_kind=device_kind)
    if device_kind == "cpu":
        return {"num_cpus": cpus_per_run, "num_gpus": 0, "memory": int(memory * safety)}
    if gpus_per_run == "auto":
        if gpu_memory_bytes is None:
            raise ValueError("gpu_memory_bytes is required to size gpus_per_run='auto'")
        num_gpus = gpu_fraction(memory, gpu_memory_bytes, safety=safety)
    elif isinstance(gpus_per_run, (int, float)) and 0 <= gpus_per_run <= 1:
        num_gpus = float(gpus_per_run)
    else:
        raise ValueError(f"gpus_per_run must be 'auto' or a number in [0, 1], got {gpus_per_run!r}")
    counts = spec.param_counts()
    checkpoint_bytes = 12 * counts.total  # fp32 weights + two fp32 AdamW moments
    return {"num_cpus": cpus_per_run, "num_gpus": num_gpus, "memory": int(checkpoint_bytes * safety)}


def concurrency_cap(*, total_cpus: int, cpus_per_run: int, max_concurrent: int | None = None) -> int:
    """How many runs may be in flight at once: whole runs that fit the CPUs, capped by max_concurrent;
    at least 1 (a run asking for more CPUs than exist still runs, alone)."""
    if cpus_per_run < 1 or total_cpus < 1:
        raise ValueError(f"total_cpus and cpus_per_run must be >= 1, got {total_cpus}, {cpus_per_run}")
    cap = total_cpus // cpus_per_run
    if max_concurrent is not None:
        cap = min(cap, max_concurrent)
    return max(1, cap)


def makespan_seconds(est_seconds: Iterable[float], slots: int) -> float:
    """Wall time of running jobs of these lengths longest first on `slots` parallel slots, each job
    starting on the first slot to free up (the order order_longest_first gives the launcher)."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    loads = [0.0] * slots
    for seconds in sorted(est_seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + seconds)
    return max(loads)


def workers_placeable(nodes: Iterable[Mapping[str, float]], *, cpus_per_worker: int, gpus_per_worker: int) -> int:
    """How many data-parallel workers the nodes hold at once, each worker whole on one node.

    nodes: each alive node's total resources ({"CPU": 16, "GPU": 8, ...}, as ray.nodes() gives them).
    """
    if cpus_per_worker < 1 or gpus_per_worker < 0:
        raise ValueError(f"cpus_per_worker must be >= 1 and gpus_per_worker >= 0, got {cpus_per_worker}, "
                         f"{gpus_per_worker}")
    total = 0
    for node in nodes:
        fit = int(node.get("CPU", 0) // cpus_per_worker)
        if gpus_per_worker:
            fit = min(fit, int(node.get("GPU", 0) // gpus_per_worker))
        total += fit
    return total
