"""Run a sweep's pending runs as Ray tasks, on a local Ray (the default) or an existing cluster.

The decisions (what is pending, in which order, with which resources) are plain functions in
sweeps/schedule.py; this module only launches, waits, retries and records. Properties it keeps:

- Exactly once. Each pending run is submitted once per launch and a finished run (row.json in the store)
  is never trained again, so a relaunch after any crash, or of a sweep file extended with new budgets,
  trains only what is missing.
- One driver per run. The driver takes a run's lease (experiments/lease.py) before submitting it and its
  heartbeat renews it until the run ends. A second driver on the same store waits for runs leased by a
  live driver, counts those it finishes, and takes over (resuming from the checkpoint) those whose lease
  is released or expires. The lease is the driver's, not the worker's: Ray ends a dead driver's tasks,
  and a retried task stays under the same lease.
- Resumption, not restart. A task whose worker process or node dies is resubmitted (at most
  `max_retries` times) and continues from the run's last checkpoint in the store.
- One tokenization per sweep. The driver prepares the corpus into `<store>/corpora/` (or is handed it
  prepared, with the plan, by a study that needs both again); every task opens that folder by path. On a
  cluster the store must be on a filesystem every node sees.
- Runs bigger than one device (resources.workers_per_run) are one task each that trains the run on
  Ray Train workers (sweeps/distributed.py), under the same lease, retries and store; a sweep whose runs
  need more workers than the cluster can ever hold ends before anything is written.
- Warm workers. The local Ray this module starts has its worker processes import torch and our training
  code as they start (sweeps/warm.py, Ray's preload_python_modules), while the driver plans and tokenizes.
- Few tasks in flight. At most `max_concurrent` runs are submitted at a time, longest first, and results
  are taken in completion order with `ray.wait`, so the driver stays light for thousands of runs.
- WSD trunks and branches (sweeps/wsd.py). Trunks and branches are runs like any other (leased, never
  trained twice); one that starts from a trunk's checkpoint (a branch from its trunk, a trunk from the
  shorter one before it) is submitted once that checkpoint is in the store, beside the trunks still
  training; one whose trunk ended without it is recorded as failed, naming why.
- A dead local Ray ends the launch with a clear message (relaunching resumes), not with a hang; so does an
  unreachable --address, before anything is written to the store; so does a node that does not see the
  store at the same path, or lacks Ray Train for runs that need it (sweeps/node_check.py).
- The local default starts Ray without the dashboard (its host, were it on, is 127.0.0.1). Ray's internal
  gRPC services still listen on every interface, guarded by Ray's token authentication (on by default
  in the Ray release we test, 2.60); README "Security" says what that leaves to the user.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from experiments import lease, store as st
from experiments.run_result import RunResult
from experiments.runner import check_corpus, record_failure
from experiments.spec import ExperimentSpec
from lm.data import TokenizedCorpus
from sweeps import wsd
from sweeps.config import SweepConfig
from sweeps.distributed import check_placeable, ddp_task
from sweeps.node_check import require_nodes_ready
from sweeps.plan import SweepPlan, plan
from sweeps.schedule import GPU_MEMORY_BYTES, concurrency_cap, order_longest_first, pending_runs, resources_for

WARM_MODULE = "sweeps.warm"  # imported by every worker of the local Ray as it starts


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
    elsewhere: int = 0  # runs another live driver is training now; this launch waits for them
    done_elsewhere: int = 0  # runs another driver finished during this launch
    flops_done: float = 0.0  # exact FLOPs of the runs finished in this launch
    flops_total: float = 0.0  # exact FLOPs of everything this launch set out to train
    trunks_planned: int = 0  # a WSD sweep's trunks (sweeps/wsd.py), counted in `planned` too
    trunks_done: int = 0  # of them, finished before or by this launch
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
    rows: tuple[RunResult, ...]  # rows of the runs this launch finished
    retries: int
    interrupted: bool
    message: str
    done_elsewhere: int = 0  # runs another driver finished while this launch waited for them
    corpus: TokenizedCorpus | None = None  # what the runs trained on; None when nothing was trained or given

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)


def train_task(spec_dict: dict, store: str, corpus_path: str, sweep: str, threads: int, device: str,
               start_from: str | None = None) -> RunResult:
    """One run, executed inside a Ray worker. Ray pins a task to one thread unless told; we use its CPUs."""
    import torch  # noqa: PLC0415  (workers import torch on first use)

    from experiments.runner import run_experiment  # noqa: PLC0415

    torch.set_num_threads(threads)
    spec = ExperimentSpec.from_dict(spec_dict)
    return run_experiment(spec, store=store, corpus_path=corpus_path, sweep=sweep, device=device, threads=threads,
                          start_from=start_from)


def prepare_sweep_corpus(config: SweepConfig, store: Path) -> TokenizedCorpus:
    """Tokenize the sweep's corpus once, into the store, where every worker can open it."""
    from lm.data import prepare_corpus  # noqa: PLC0415

    return prepare_corpus(config.corpus.corpus_config(), cache_dir=store / "corpora")


def start_ray(address: str | None, *, num_cpus: int | None = None) -> tuple[object, bool]:
    """Use the Ray this process is already connected to; else join `address` (or $RAY_ADDRESS, as under
    `ray job submit`); else start a private local Ray. Returns (ray, whether this call started a local one).
    RayUnavailableError, in one line, if the cluster named cannot be reached."""
    import ray  # noqa: PLC0415

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork after HF tokenizers ran
    if ray.is_initialized():
        return ray, False
    named = address or os.environ.get("RAY_ADDRESS")
    if named:
        where = f"--address {address}" if address else f"$RAY_ADDRESS={named}"
        check_reachable(named, where=where)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="warning")
        except (ConnectionError, RuntimeError) as e:  # ray.init says "ConnectionError" for most of these
            raise RayUnavailableError(f"cannot join the Ray cluster at {where}: {str(e).splitlines()[0]}") from None
        return ray, False
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, dashboard_host="127.0.0.1",
             log_to_driver=False, logging_level="warning", _system_config={"preload_python_modules": [WARM_MODULE]})
    return ray, True


def check_reachable(address: str, *, where: str, timeout: float = 5.0) -> None:
    """RayUnavailableError unless HOST:PORT in `address` accepts a TCP connection within `timeout` seconds.

    ray.init retries an unreachable GCS for minutes with log lines but no clear answer, so we ask first.
    "auto" (the cluster started on this machine, found by Ray itself) is left to ray.init.
    """
    if address == "auto":
        return
    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RayUnavailableError(f"{where}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise RayUnavailableError(f"cannot reach a Ray cluster at {where} ({e.strerror or e}); is `ray start --head`"
                                  " running there and is its port open to this machine?") from None


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
    return GPU_MEMORY_BYTES  # a conservative datacenter GPU when the driver cannot see one


def launch(
    config: SweepConfig,
    *,
    store: str | Path,
    sweep_plan: SweepPlan | None = None,
    corpus: TokenizedCorpus | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    max_retries: int = 3,
    retry_failed: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    poll_seconds: float = 1.0,
    lease_seconds: float = lease.DEFAULT_TTL_SECONDS,
) -> LaunchReport:
    """Train every run of `config` not yet done in `store`; return what this launch finished.

    sweep_plan: `plan(config)` when the caller has built it already (a study), so a sweep is planned once;
    planned here when None.
    corpus: the sweep's corpus when the caller has prepared it already (`prepare_sweep_corpus`; on a cluster
    it must lie where every node sees it, as the store's corpora/ does); prepared here when None, once Ray
    is reached and only if something is left to train.
    lease_seconds: this driver renews the lease of each run it trains every lease_seconds/4, and another
    driver takes a run over once it has seen that lease unrenewed for lease_seconds (experiments/lease.py).
    Raises ValueError for a plan or corpus that is not the sweep's; RayUnavailableError, before writing
    anything to the store, if the Ray cluster cannot be reached; and NodeCheckError (a ValueError), before
    writing anything either, if one of its nodes does not see the store or lacks Ray Train for runs that
    need it (sweeps/node_check.py). The report carries the corpus the runs trained on (prepared here unless
    given), so a caller that trains more runs on it (the study's validation) prepares it only once.
    """
    store = Path(store).resolve()
    sweep_plan = plan(config) if sweep_plan is None else check_plan(config, sweep_plan)
    if corpus is not None and sweep_plan.runs:
        check_corpus(sweep_plan.runs[0].spec, corpus)  # one corpus per sweep: else every run would fail
    todo = pending_runs(sweep_plan, st.run_states(store), retry_failed=retry_failed)
    done_before = len(set(sweep_plan.run_ids)) - len(todo)
    if not todo:
        st.write_manifest(store, sweep_plan.name, sweep_plan.run_ids, kind=config.kind, source=config.source)
        return LaunchReport(sweep=sweep_plan.name, store=store, planned=len(sweep_plan.runs), already_done=done_before,
                            rows=(), retries=0, interrupted=False, message="nothing to train: every run is done",
                            corpus=corpus)
    ray, started_here = start_ray(address)  # first: an unreachable cluster leaves the store untouched
    keeper = None
    try:
        planned = {r.run_id: r for r in sweep_plan.runs}
        _check_cluster(ray, config, [planned[s.run_id] for s in todo], store, local=started_here)
        if corpus is None:
            corpus = prepare_sweep_corpus(config, store)
        st.write_manifest(store, sweep_plan.name, sweep_plan.run_ids, kind=config.kind, source=config.source)
        keeper = lease.LeaseKeeper(store, ttl_seconds=lease_seconds)
        driver = _Driver(ray, config, sweep_plan, store=store, corpus_path=str(corpus.path), keeper=keeper,
                         retry_failed=retry_failed, max_concurrent=max_concurrent, on_progress=on_progress)
        driver.progress = progress = _start_progress(sweep_plan, todo, done_before, driver.flops)
        interrupted, message = driver.run(order_longest_first(todo, sweep_plan.est_seconds()),
                                          max_retries=max_retries, poll_seconds=poll_seconds)
    finally:
        if keeper is not None:
            keeper.close()  # releases every lease still held, so another driver takes those runs at once
        if started_here:
            ray.shutdown()
    if not interrupted:
        message = _summary(progress, done_before)
    return LaunchReport(sweep=sweep_plan.name, store=store, planned=len(sweep_plan.runs), already_done=done_before,
                        rows=tuple(driver.rows), retries=progress.retries, interrupted=interrupted, message=message,
                        done_elsewhere=progress.done_elsewhere, corpus=corpus)


def _check_cluster(ray, config: SweepConfig, runs: list, store: Path, *, local: bool) -> None:
    """Before anything is written to the store: every run to train fits on some node (sweeps/distributed.py), and
    every node sees the store and has Ray Train where a run needs it (sweeps/node_check.py)."""
    check_placeable(runs, cpus_per_worker=config.resources.cpus_per_run,
                    device="cuda" if _device_kind(config, ray) == "gpu" else "cpu", nodes=ray.nodes(),
                    source=config.source)
    require_nodes_ready(ray, store, need_train=any(run.workers > 1 for run in runs), local=local)


def _summary(progress: Progress, done_before: int) -> str:
    """A finished launch's message: what its runs ended as, and what was done before it or elsewhere."""
    elsewhere = f", {progress.done_elsewhere} finished by another driver" if progress.done_elsewhere else ""
    return (f"{progress.completed} completed, {progress.diverged} diverged, {progress.failed} failed"
            f" ({done_before} were already done{elsewhere})")


def check_plan(config: SweepConfig, sweep_plan: SweepPlan) -> SweepPlan:
    """`sweep_plan` if it is a plan of `config` (by the sweep's name: planning again is what it saves); else
    ValueError."""
    if sweep_plan.name != config.name:
        raise ValueError(f"sweep_plan: a plan of sweep {sweep_plan.name!r}, not of {config.name!r}")
    return sweep_plan


def _start_progress(sweep_plan: SweepPlan, todo: list[ExperimentSpec], done_before: int,
                    flops: dict[str, float]) -> Progress:
    """The launch's progress before its first run starts (a WSD sweep's trunks counted apart too)."""
    progress = Progress(planned=len(sweep_plan.runs), done_before=done_before, pending=len(todo),
                        flops_total=sum(flops[s.run_id] for s in todo))
    if sweep_plan.branching is not None:
        progress.trunks_planned = len(sweep_plan.branching.trunks)
        progress.trunks_done = progress.trunks_planned - sum(1 for s in todo if s.trunk)
    return progress


class _Driver:
    """One launch's loop: claim a run's lease, submit it, take results in completion order, retry lost
    workers, and wait for runs that another driver holds (taking them over if their lease expires)."""

    def __init__(self, ray, config: SweepConfig, sweep_plan: SweepPlan, *, store: Path, corpus_path: str,
                 keeper: lease.LeaseKeeper, retry_failed: bool, max_concurrent: int | None, on_progress):
        self.ray, self.sweep_plan, self.store, self.corpus_path = ray, sweep_plan, store, corpus_path
        self.keeper, self.watch, self.retry_failed, self.on_progress = keeper, lease.LeaseWatch(), retry_failed, on_progress
        self.device_kind = _device_kind(config, ray)
        self.res = config.resources
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.cap = concurrency_cap(total_cpus=cpus, cpus_per_run=self.res.cpus_per_run,
                                   max_concurrent=max_concurrent or self.res.max_concurrent)
        self.gpu_memory = _gpu_memory_bytes() if self.device_kind == "gpu" else None
        self.remote = ray.remote(max_retries=0)(train_task)  # retries are ours: they resume and are counted
        self.ddp_remote = ray.remote(max_retries=0, num_cpus=0)(ddp_task)  # its Ray Train workers hold the resources
        self.workers = {r.run_id: r.workers for r in sweep_plan.runs}
        self.flops = {r.run_id: r.flops for r in sweep_plan.runs}
        self.in_flight: dict = {}  # ObjectRef -> spec
        self.waiting: dict[str, ExperimentSpec] = {}  # runs another driver holds
        self.attempts: dict[str, int] = {}
        self.rows: list[RunResult] = []
        self.progress: Progress | None = None

    def run(self, queue: list[ExperimentSpec], *, max_retries: int, poll_seconds: float) -> tuple[bool, str]:
        """Train `queue` (longest first); return (interrupted, message)."""
        try:
            while queue or self.in_flight or self.waiting:
                while (spec := self.next_runnable(queue)) is not None:
                    if self.claim(spec):
                        self.submit(spec)
                self.report(queue)
                if self.in_flight:
                    ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=poll_seconds)
                else:
                    ready = []
                    time.sleep(poll_seconds)
                for ref in ready:
                    self.collect(ref, queue, max_retries=max_retries)
                self.drop_lost_leases()
                queue[:0] = self.takeable_waiting()
            self.report(queue)
        except KeyboardInterrupt:
            for ref in self.in_flight:
                self.ray.cancel(ref, force=True)
            return True, "interrupted: runs in flight were stopped and will resume from their checkpoints on relaunch"
        return False, ""

    def has_room(self, spec: ExperimentSpec) -> bool:
        """Whether `spec` may start: its workers fit under the cap beside those in flight (alone, it always may)."""
        busy = sum(self.workers[s.run_id] for s in self.in_flight.values())
        return not self.in_flight or busy + self.workers[spec.run_id] <= self.cap

    def next_runnable(self, queue: list[ExperimentSpec]) -> ExperimentSpec | None:
        """Take the first queued run that may start now (a WSD branch waits for its trunk's checkpoint; the
        first ready run waits for room, so the longest go first); record as failed the branches whose trunk
        ended without theirs."""
        for i, spec in enumerate(queue):
            state = wsd.readiness(spec, self.sweep_plan.branching, self.store)
            if state == wsd.ORPHANED and st.is_done(self.store, spec.run_id):  # finished by another driver
                del queue[i]
                self.progress.done_elsewhere += 1
                return self.next_runnable(queue)
            if state == wsd.ORPHANED and self.keeper.try_take(spec.run_id, self.watch.verdict(self.store, spec.run_id)):
                del queue[i]
                row = record_failure(spec, store=self.store, sweep=self.sweep_plan.name,
                                     error=wsd.orphan_reason(spec, self.sweep_plan.branching, self.store))
                self.keeper.give_up(spec.run_id)
                self.rows.append(row)
                self.progress.record(row.status)
                return self.next_runnable(queue)
            if state == wsd.READY:
                return queue.pop(i) if self.has_room(spec) else None
        return None

    def claim(self, spec: ExperimentSpec) -> bool:
        """Take the run's lease; False if another driver holds it (it waits) or finished it meanwhile."""
        run_id = spec.run_id
        if self.keeper.holds(run_id):  # a retry of our own run
            return True
        if not self.keeper.try_take(run_id, self.watch.verdict(self.store, run_id)):
            self.waiting[run_id] = spec
            return False
        if not pending_runs([spec], {run_id: st.run_state(self.store, run_id)}, retry_failed=self.retry_failed):
            self.keeper.give_up(run_id)  # done by the driver that held it before us
            self.progress.done_elsewhere += 1
            return False
        return True

    def submit(self, spec: ExperimentSpec) -> None:
        resources = resources_for(spec, device_kind=self.device_kind, gpu_memory_bytes=self.gpu_memory,
                                  cpus_per_run=self.res.cpus_per_run, gpus_per_run=self.res.gpus_per_run)
        device = "cuda" if self.device_kind == "gpu" else "cpu"
        start = wsd.start_checkpoint(spec, self.sweep_plan.branching, self.store)
        args = (spec.to_dict(), str(self.store), self.corpus_path, self.sweep_plan.name, self.res.cpus_per_run, device)
        if self.workers[spec.run_id] > 1:  # WSD sweeps train on one worker (SweepConfig refuses both)
            ref = self.ddp_remote.options(name=f"run-{spec.run_id}").remote(*args, self.workers[spec.run_id])
        else:
            ref = self.remote.options(**resources, name=f"run-{spec.run_id}").remote(*args, str(start) if start else None)
        self.in_flight[ref] = spec
        self.attempts[spec.run_id] = self.attempts.get(spec.run_id, 0) + 1

    def collect(self, ref, queue: list[ExperimentSpec], *, max_retries: int) -> None:
        """Record a finished task, or requeue its run (it resumes from its checkpoint) if its worker died."""
        spec = self.in_flight.pop(ref)
        try:
            row = self.ray.get(ref)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # the worker, its node or Ray itself failed, not the run
            _check_ray_alive(self.ray, e)
            if self.attempts[spec.run_id] <= max_retries:
                self.progress.retries += 1
                queue.insert(0, spec)  # still leased by us
                return
            reason = (f"worker lost {self.attempts[spec.run_id]} times; last: {type(e).__name__}: "
                      f"{str(e).splitlines()[0][:300]}")
            row = record_failure(spec, store=self.store, sweep=self.sweep_plan.name, error=reason)
        self.keeper.give_up(spec.run_id)
        self.rows.append(row)
        self.progress.record(row.status)
        self.progress.flops_done += self.flops[spec.run_id]
        if spec.trunk:
            self.progress.trunks_done += 1

    def drop_lost_leases(self) -> None:
        """Stop the runs whose lease another driver took over (ours went unrenewed for a whole ttl)."""
        lost = self.keeper.lost()
        for ref, spec in list(self.in_flight.items()):
            if spec.run_id in lost:
                self.ray.cancel(ref, force=True)
                del self.in_flight[ref]
                self.waiting[spec.run_id] = spec

    def takeable_waiting(self) -> list[ExperimentSpec]:
        """Waiting runs whose lease is now free or expired (to claim again); forget those finished elsewhere."""
        takeable = []
        for run_id, spec in list(self.waiting.items()):
            if not pending_runs([spec], {run_id: st.run_state(self.store, run_id)}, retry_failed=False):
                del self.waiting[run_id]
                self.progress.done_elsewhere += 1
            elif self.watch.verdict(self.store, run_id).state != "held":
                takeable.append(self.waiting.pop(run_id))
        return takeable

    def report(self, queue: list[ExperimentSpec]) -> None:
        p = self.progress
        p.running, p.elsewhere, p.pending = len(self.in_flight), len(self.waiting), len(queue)
        if self.on_progress is not None:
            self.on_progress(p)


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
