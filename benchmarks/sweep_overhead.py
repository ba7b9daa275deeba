"""Scheduling overhead of a sweep on the local Ray: makespan against the ideal, and the cost per run.

A grid of many short, equal runs (one model size, one token count, a learning-rate axis of `--runs`
values) is launched twice in one process, each time on a freshly started local Ray whose worker
processes are up before the clock starts (one probe task per slot), so Ray's own start-up is not counted:

    cold  a plain `ray.init`: each worker's first run imports torch, our code and torch._dynamo (which
          torch's first optimizer imports) on the clock
    warm  the launcher's own local Ray (sweeps.launch.start_ray): workers import sweeps/warm.py as they
          start, which is what a launch overlaps with its planning and tokenizing

For each,
    ideal     = Σ busy time of the runs (each run's own wall time in `train`) ÷ slots
    makespan  = wall time of `launch` (planning, submission, worker processes, results, store writes)
    overhead per run = (makespan · slots − Σ busy) ÷ runs

Target: makespan ÷ ideal ≤ 1.05 (Ray Tune's own 10,000-trial release test reaches about 1.14).

    python benchmarks/sweep_overhead.py                # 40 runs, 2 slots, cold then warm
    python benchmarks/sweep_overhead.py --runs 80 --tokens 400000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray

from sweeps.config import parse_sweep
from sweeps.launch import launch, prepare_sweep_corpus, start_ray


def sweep(runs: int, tokens: int, slots: int):
    lrs = [float(f"{x:.6g}") for x in [3e-3 * (1.02**i) for i in range(runs)]]
    return parse_sweep({
        "name": "overhead", "kind": "grid",
        "corpus": {"source": "stdlib", "vocab_size": 257, "max_bytes": 300_000},
        "training": {"context_length": 64, "batch_size": 16, "lr": lrs, "precision": "fp32", "eval_tokens": 2048},
        "grid": {"N": [2.0e4], "D": [tokens]},
        "resources": {"cpus_per_run": 1, "gpus_per_run": 0, "max_concurrent": slots},
        "planning": {"device": "cpu", "min_steps": 10},
    }, source="benchmarks/sweep_overhead.py")


def measure(config, slots: int, *, warm: bool) -> dict:
    """One launch on a fresh local Ray with its workers up; makespan, ideal and overhead per run."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        prepare_sweep_corpus(config, store)  # tokenization is per sweep, not scheduling: done beforehand
        if warm:
            start_ray(None, num_cpus=slots)
        else:
            ray.init(address="local", num_cpus=slots, include_dashboard=False, log_to_driver=False,
                     logging_level="warning")
        try:
            ray.get([_probe.remote() for _ in range(slots)])  # the worker processes are up (and, if warm, warmed)
            start = time.perf_counter()
            report = launch(config, store=store, poll_seconds=0.05)
            makespan = time.perf_counter() - start
        finally:
            ray.shutdown()
    busy = sum(r.wall_seconds for r in report.rows)
    return {"runs": len(report.rows), "completed": report.count("completed"), "busy": busy, "ideal": busy / slots,
            "makespan": makespan, "per_run": (makespan * slots - busy) / len(report.rows)}


@ray.remote(num_cpus=1)
def _probe() -> int:
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--tokens", type=int, default=200_000, help="training tokens per run")
    p.add_argument("--slots", type=int, default=2, help="runs at a time (one CPU each)")
    args = p.parse_args()

    config = sweep(args.runs, args.tokens, args.slots)
    print(f"{args.runs} runs on {args.slots} slots, {args.tokens:,} tokens each")
    print(f"{'workers':<6} {'completed':>9} {'busy s':>8} {'ideal s':>8} {'makespan s':>10} {'ratio':>6} "
          f"{'overhead/run s':>14}")
    for warm in (False, True):
        m = measure(config, args.slots, warm=warm)
        print(f"{'warm' if warm else 'cold':<6} {m['completed']:>9} {m['busy']:>8.1f} {m['ideal']:>8.1f} "
              f"{m['makespan']:>10.1f} {m['makespan'] / m['ideal']:>6.3f} {m['per_run']:>14.3f}", flush=True)
    print("ratio = makespan ÷ ideal (target ≤ 1.05); overhead = worker start, corpus open, store writes, scheduling")


if __name__ == "__main__":
    main()
