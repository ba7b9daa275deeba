"""Runs bigger than one device: one run trained data-parallel by k Ray Train workers (TorchTrainer, DDP).

A sweep run with `resources.workers_per_run: k` (for runs of N >= `resources.workers_from_N`) is launched
as a Ray task, `ddp_task`, that holds no resources itself and starts a `ray.train.torch.TorchTrainer` of
k workers (gloo on CPU, NCCL on GPU, one whole GPU per worker: NCCL cannot put two ranks on one device).
What stays the same as a one-worker run:
- Numbers. Each worker trains its block of the same global batch (lm/parallel.py), so the loss curve is
  the 1-worker curve up to floating-point summation order (tests/test_distributed.py: within 1e-4);
  FLOPs are those of the global batch (the sum over workers); MFU is per device.
- The store. Rank 0 runs experiments.runner.run_experiment and writes the spec, status, curve, row and
  its atomic checkpoints; ranks > 0 only read the checkpoint to resume with it (follow_experiment).
  The row is the same row a one-worker run writes.
- Leases and retries. The sweep driver holds the run's lease while this task runs, exactly as for a
  one-worker run. Ray Train's own restarts are off (max_failures=0): a lost worker fails the task, and
  the driver resubmits it, resuming from the checkpoint, counted against --max-retries.
- A run that fails on its own is recorded by rank 0, which then raises so that Ray Train stops the other
  ranks (they would otherwise wait in a collective); the task returns the recorded row.
Ray Train keeps its run state (a storage marker, no checkpoints) in `<store>/runs/<id>/ray_train/`, a
path every node sees when the store is shared, as Ray Train requires.
"""

from __future__ import annotations

from experiments import store as st
from experiments.run_result import RunResult
from experiments.runner import follow_experiment, run_experiment
from experiments.spec import ExperimentSpec
from lm.parallel import DataParallel
from sweeps.config import SweepConfigError
from sweeps.schedule import workers_placeable

RAY_TRAIN_DIR = "ray_train"


class RunFailedOnRankZero(RuntimeError):
    """Rank 0 recorded the run as failed; raised to end the other ranks."""


def ddp_task(spec_dict: dict, store: str, corpus_path: str, sweep: str, threads: int, device: str,
             workers: int) -> RunResult:
    """One run on `workers` Ray Train workers of `threads` CPUs (and one GPU each when device is "cuda");
    returns its row. A lost worker raises (the driver retries); a run's own failure returns its row."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig  # noqa: PLC0415
    from ray.train.torch import TorchTrainer  # noqa: PLC0415

    spec = ExperimentSpec.from_dict(spec_dict)
    use_gpu = device == "cuda"
    per_worker = {"CPU": threads, **({"GPU": 1} if use_gpu else {})}
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=dict(spec=spec_dict, store=store, corpus_path=corpus_path, sweep=sweep, threads=threads,
                               use_gpu=use_gpu),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        run_config=RunConfig(storage_path=str(st.run_dir(store, spec.run_id)), name=RAY_TRAIN_DIR,
                             failure_config=FailureConfig(max_failures=0)),
    )
    try:
        trainer.fit()
    except Exception:
        row = st.read_result(store, spec.run_id)
        if row is not None and row.status == "failed":
            return row  # recorded by rank 0 in this attempt (run_experiment removes an older row first)
        raise
    row = st.read_result(store, spec.run_id)
    if row is None:
        raise RuntimeError(f"run {spec.run_id}: Ray Train finished but rank 0 left no row in {store}")
    return row


def _worker_loop(cfg: dict) -> None:
    """Ray Train's per-worker function: rank 0 runs the run into the store, the others follow it."""
    import torch  # noqa: PLC0415
    from ray.train.torch import get_device  # noqa: PLC0415

    torch.set_num_threads(cfg["threads"])
    parallel = DataParallel.from_process_group()
    spec = ExperimentSpec.from_dict(cfg["spec"])
    args = dict(store=cfg["store"], corpus_path=cfg["corpus_path"], threads=cfg["threads"], parallel=parallel,
                device=str(get_device()) if cfg["use_gpu"] else "cpu")
    if not parallel.is_writer:
        follow_experiment(spec, **args)
        return
    row = run_experiment(spec, sweep=cfg["sweep"], **args)
    if row.status == "failed":
        raise RunFailedOnRankZero(f"run {spec.run_id} failed: {row.error}")


def check_placeable(runs, *, cpus_per_worker: int, device: str, nodes: list[dict], source: str | None) -> None:
    """SweepConfigError (resources.workers_per_run) if a run needs more workers than the alive `nodes`
    (ray.nodes()) can ever hold at once: Ray Train would wait for them forever."""
    need = max((r.workers for r in runs), default=1)
    if need <= 1:
        return
    gpus = 1 if device == "cuda" else 0
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    fits = workers_placeable(alive, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus)
    if fits < need:
        what = f"{cpus_per_worker} CPU{'s' * (cpus_per_worker > 1)}" + (" and 1 GPU" if gpus else "")
        held = ", ".join(f"{n.get('CPU', 0):g} CPUs" + (f" {n.get('GPU', 0):g} GPUs" if gpus else "") for n in alive)
        raise SweepConfigError("resources.workers_per_run", f"a run needs {need} workers of {what} each, but this "
                               f"Ray cluster can hold at most {fits} at once (alive nodes: {held or 'none'})",
                               source=source)
