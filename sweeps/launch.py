"""Run a sweep's pending runs as Ray tasks, on a local Ray (the default) or an existing cluster.

The decisions (what is pending, in which order, with which resources) are plain functions in
sweeps/schedule.py; this module only launches, waits, retries and records. Properties it keeps:

- Exactly once. Each pending run is submitted once per launch and a finished run (row.json in the store)
  is never trained again, so a relaunch after any crash, or of a sweep file extended with new budgets,
  trains only what is missing.
- Resumption, not restart. A task whose worker process or node dies is resubmitted (at most
  `max_retries` times) and continues from the run's last checkpoint in the store.
- One tokenization per sweep. The driver prepares the corpus into `<store>/corpora/`; every task opens
  that folder by path. On a cluster the store must be on a filesystem every node sees.
- Few tasks in flight. At most `max_concurrent` runs are submitted at a time, longest first, and results
  are taken in completion order with `ray.wait`, so the driver stays light for thousands of runs.
- A dead local Ray ends the launch with a clear message (relaunching resumes), not with a hang.
- The local default starts Ray without the dashboard (its host, were it on, is 127.0.0.1). Ray's internal
  gRPC services still listen on every interface, guarded by Ray's token authentication (on by default
  in the Ray release we test, 2.60); README "Security" says what that leaves to the user.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from experiments import store as st
from experiments.runner import record_failure
from experiments.spec import ExperimentSpec
from sweeps.config import SweepConfig
from sweeps.plan import SweepPlan, plan
from sweeps.schedule import concurrency_cap, order_longest_first, pending_runs, resources_for


class RayUnavailableError(RuntimeError):
    """The Ray runtime this launch used is gone; the store is consistent and a relaunch resumes."""


@dataclass
class Progress:
    """A snapshot of a launch, passed to the `on_progress` callback after every change."""

    planned: int
    done_before: int  # runs already finished when the launch started
    completed: int = 0
    diverged: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    retries: int = 0
    flops_done: float = 0.0  # exact FLOPs of the runs finished in this launch
    flops_total: float = 0.0  # exact FLOPs of everything this launch set out to train
    started: float = field(default_factory=time.monotonic)

    def record(self, status: str) -> None:
        """Count a run this launch finished, by its terminal status."""
        if status not in ("completed", "diverged", "failed"):
            raise ValueError(f"not a terminal status: {status!r}")
        setattr(self, status, getattr(self, status) + 1)

    @property
    def finished(self) -> int:
        return self.completed + self.diverged + self.failed

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time if the rest goes as fast, in FLOPs per second, as what finished so far."""
        if self.flops_done <= 0:
            return None
        rate = self.flops_done / (time.monotonic() - self.started)
        return (self.flops_total - self.flops_done) / rate


@dataclass(frozen=True)
class LaunchReport:
    sweep: str
    store: Path
    planned: int
    already_done: int
    rows: tuple[dict, ...]  # rows of the runs this launch finished
    retries: int
    interrupted: bool
    message: str

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)


def train_task(spec_dict: dict, store: str, corpus_path: str, sweep: str, threads: int, device: str) -> dict:
    """One run, executed inside a Ray worker. Ray pins a task to one thread unless told; we use its CPUs."""
    import torch  # noqa: PLC0415  (workers import torch on first use)

    from experiments.runner import run_experiment  # noqa: PLC0415

    torch.set_num_threads(threads)
    spec = ExperimentSpec.from_dict(spec_dict)
    return run_experiment(spec, store=store, corpus_path=corpus_path, sweep=sweep, device=device, threads=threads)


def prepare_sweep_corpus(config: SweepConfig, store: Path):
    """Tokenize the sweep's corpus once, into the store, where every worker can open it."""
    from lm.data import prepare_corpus  # noqa: PLC0415

    return prepare_corpus(config.corpus.corpus_config(), cache_dir=store / "corpora")


def start_ray(address: str | None, *, num_cpus: int | None = None) -> tuple[object, bool]:
    """Use the Ray this process is already connected to; else join `address` (or $RAY_ADDRESS, as under
    `ray job submit`); else start a private local Ray. Returns (ray, whether this call started a local one)."""
    import ray  # noqa: PLC0415

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork after HF tokenizers ran
    if ray.is_initialized():
        return ray, False
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=False, logging_level="warning")
        return ray, False
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, dashboard_host="127.0.0.1",
             log_to_driver=False, logging_level="warning")
    return ray, True


def _device_kind(config: SweepConfig, ray) -> str:
    if config.resources.gpus_per_run == 0:
        return "cpu"
    return "gpu" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"


def _gpu_memory_bytes() -> float | None:
    try:
        import torch  # noqa: PLC0415

        if torch.cuda.is_available():
            return float(torch.cuda.get_device_properties(0).total_memory)
    except Exception:  # the driver may sit on a CPU-only head node
        pass
    return 80e9  # a conservative datacenter GPU when the driver cannot see one


def launch(
    config: SweepConfig,
    *,
    store: str | Path,
    address: str | None = None,
    max_concurrent: int | None = None,
    max_retries: int = 3,
    retry_failed: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    poll_seconds: float = 1.0,
) -> LaunchReport:
    """Train every run of `config` not yet done in `store`; return what this launch finished."""
    store = Path(store).resolve()
    sweep_plan: SweepPlan = plan(config)
    corpus = prepare_sweep_corpus(config, store)
    st.write_manifest(store, sweep_plan.name, sweep_plan.run_ids, kind=config.kind, source=config.source)
    todo = pending_runs(sweep_plan, st.run_states(store), retry_failed=retry_failed)
    done_before = len(set(sweep_plan.run_ids)) - len(todo)
    if not todo:
        return LaunchReport(sweep=sweep_plan.name, store=store, planned=len(sweep_plan.runs), already_done=done_before,
                            rows=(), retries=0, interrupted=False, message="nothing to train: every run is done")
    flops = {r.run_id: r.flops for r in sweep_plan.runs}
    queue = order_longest_first(todo, sweep_plan.est_seconds())

    ray, started_here = start_ray(address)
    device_kind = _device_kind(config, ray)
    res = config.resources
    cpus = int(ray.cluster_resources().get("CPU", 1))
    cap = concurrency_cap(total_cpus=cpus, cpus_per_run=res.cpus_per_run, max_concurrent=max_concurrent or res.max_concurrent)
    gpu_memory = _gpu_memory_bytes() if device_kind == "gpu" else None
    remote = ray.remote(max_retries=0)(train_task)  # retries are ours: they resume and are counted

    progress = Progress(planned=len(sweep_plan.runs), done_before=done_before, pending=len(queue),
                        flops_total=sum(flops[s.run_id] for s in queue))
    in_flight: dict = {}  # ObjectRef -> spec
    attempts: dict[str, int] = {}
    rows: list[dict] = []

    def submit(spec: ExperimentSpec):
        resources = resources_for(spec, device_kind=device_kind, gpu_memory_bytes=gpu_memory,
                                  cpus_per_run=res.cpus_per_run, gpus_per_run=res.gpus_per_run)
        device = "cuda" if device_kind == "gpu" else "cpu"
        ref = remote.options(**resources, name=f"run-{spec.run_id}").remote(
            spec.to_dict(), str(store), str(corpus.path), sweep_plan.name, res.cpus_per_run, device)
        in_flight[ref] = spec
        attempts[spec.run_id] = attempts.get(spec.run_id, 0) + 1

    def report_progress():
        progress.running, progress.pending = len(in_flight), len(queue)
        if on_progress is not None:
            on_progress(progress)

    interrupted, message = False, ""
    try:
        while queue or in_flight:
            while queue and len(in_flight) < cap:
                submit(queue.pop(0))
            report_progress()
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=poll_seconds)
            for ref in ready:
                spec = in_flight.pop(ref)
                try:
                    row = ray.get(ref)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # the worker, its node or Ray itself failed, not the run
                    _check_ray_alive(ray, e)
                    if attempts[spec.run_id] > max_retries:
                        reason = (f"worker lost {attempts[spec.run_id]} times; last: {type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:300]}")
                        row = record_failure(spec, store=store, sweep=sweep_plan.name, error=reason)
                    else:
                        progress.retries += 1
                        queue.insert(0, spec)  # resumes from its checkpoint
                        continue
                rows.append(row)
                progress.record(row["status"])
                progress.flops_done += flops[spec.run_id]
        report_progress()
    except KeyboardInterrupt:
        interrupted = True
        message = "interrupted: runs in flight were stopped and will resume from their checkpoints on relaunch"
        for ref in in_flight:
            ray.cancel(ref, force=True)
    finally:
        if started_here:
            ray.shutdown()
    if not interrupted:
        message = (f"{progress.completed} completed, {progress.diverged} diverged, {progress.failed} failed"
                   f" ({done_before} were already done)")
    return LaunchReport(sweep=sweep_plan.name, store=store, planned=len(sweep_plan.runs), already_done=done_before,
                        rows=tuple(rows), retries=progress.retries, interrupted=interrupted, message=message)


def _check_ray_alive(ray, error: Exception) -> None:
    """Raise RayUnavailableError if the cluster itself (not one worker) is gone."""
    try:
        alive = [n for n in ray.nodes() if n.get("Alive")]
    except Exception as e:
        raise RayUnavailableError(
            f"the Ray runtime stopped responding ({type(error).__name__}: {error}; then {type(e).__name__}: {e})."
            " Finished runs are saved in the store; relaunch the same command to resume the rest.") from None
    if not alive:
        raise RayUnavailableError(
            f"no Ray node is alive ({type(error).__name__}: {error}). Finished runs are saved in the store;"
            " relaunch the same command to resume the rest.")
