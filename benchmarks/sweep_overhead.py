"""Scheduling overhead of a sweep on the local Ray: makespan against the ideal, and the cost per run.

A grid of many short, equal runs (one model size, one token count, a learning-rate axis of `--runs`
values) is launched on an already-started local Ray, so Ray's own start-up is not counted. Then

    ideal     = Σ busy time of the runs (each run's own wall time in `train`) ÷ slots
    makespan  = wall time of `launch` (planning, submission, worker processes, results, store writes)
    overhead per run = (makespan · slots − Σ busy) ÷ runs

Target: makespan ÷ ideal ≤ 1.05 (Ray Tune's own 10,000-trial release test reaches about 1.14).

    python benchmarks/sweep_overhead.py                # 40 runs, 2 slots
    python benchmarks/sweep_overhead.py --runs 80 --tokens 400000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray

from sweeps.config import parse_sweep
from sweeps.launch import launch, prepare_sweep_corpus


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--tokens", type=int, default=200_000, help="training tokens per run")
    p.add_argument("--slots", type=int, default=2, help="runs at a time (one CPU each)")
    args = p.parse_args()

    config = sweep(args.runs, args.tokens, args.slots)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        prepare_sweep_corpus(config, store)  # tokenization is per sweep, not scheduling: done beforehand
        ray.init(address="local", num_cpus=args.slots, include_dashboard=False, log_to_driver=False,
                 logging_level="warning")
        try:
            start = time.perf_counter()
            report = launch(config, store=store, poll_seconds=0.05)
            makespan = time.perf_counter() - start
        finally:
            ray.shutdown()
    busy = sum(r["wall_seconds"] for r in report.rows)
    ideal = busy / args.slots
    print(f"{len(report.rows)} runs ({report.count('completed')} completed) on {args.slots} slots, "
          f"{args.tokens:,} tokens each")
    print(f"busy time of the runs  {busy:8.1f} s   (mean {busy / len(report.rows):.2f} s per run)")
    print(f"ideal makespan         {ideal:8.1f} s   (busy ÷ slots)")
    print(f"measured makespan      {makespan:8.1f} s")
    print(f"makespan ÷ ideal       {makespan / ideal:8.3f}    (target ≤ 1.05)")
    print(f"overhead per run       {(makespan * args.slots - busy) / len(report.rows):8.3f} s   "
          "(worker start, corpus open, store writes, scheduling)")


if __name__ == "__main__":
    main()
