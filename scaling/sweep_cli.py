"""`scaling sweep plan|launch|status` and `scaling runs`: sweep files in, a run store out, one table back.

The store defaults to ./runs (or $SCALING_LAB_STORE). Runs are shared between sweeps by spec id, so one
store can hold many sweeps; each sweep's manifest (<store>/sweeps/<name>.json) says which runs it asked for.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

TABLE_FORMATS = ("table", "csv", "json", "parquet")


def default_store() -> str:
    return os.environ.get("SCALING_LAB_STORE", "runs")


def register(sub) -> None:
    sweep = sub.add_parser("sweep", help="plan, launch and follow sweeps of training runs",
                           description="Plan, launch and follow sweeps of training runs.")
    sweep_sub = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", required=True)

    p = sweep_sub.add_parser("plan", help="list a sweep's runs with N, D, C, memory and time estimates",
                             description="List a sweep file's runs with N, D, C, estimated memory and time, and totals.")
    p.add_argument("file", help="sweep file (YAML), or the name of a preset in sweeps/ (tiny, demo, gpu, cluster)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = sweep_sub.add_parser("launch", help="train a sweep's pending runs on Ray (local by default)",
                             description="Train every run of a sweep that is not yet done in the store, on a local Ray "
                                         "(default) or an existing cluster. Ctrl-C stops cleanly; relaunching resumes.")
    p.add_argument("file", help="sweep file (YAML) or preset name")
    p.add_argument("--address", help="join an existing Ray cluster: 'auto', HOST:PORT or ray://HOST:PORT "
                                     "(default: start a private local Ray; $RAY_ADDRESS is honoured)")
    p.add_argument("--store", default=default_store(), help="run store directory (default ./runs or $SCALING_LAB_STORE)")
    p.add_argument("--max-concurrent", type=int, help="at most this many runs at once (default: as CPUs allow)")
    p.add_argument("--max-retries", type=int, default=3, help="resubmissions of a run whose worker died (default 3)")
    p.add_argument("--retry-failed", action="store_true", help="train again the runs recorded as failed")
    p.add_argument("--lease-seconds", type=float, default=60.0,
                   help="a run this launch trains is leased to it, renewed every quarter of this; another launch "
                        "on the same store waits for it and takes it over only after seeing its lease unrenewed "
                        "this long (default 60)")
    p.set_defaults(func=cmd_launch)

    p = sweep_sub.add_parser("status", help="runs done, running, failed and pending, per sweep in a store",
                             description="Summarise a store: per sweep, runs completed, running, failed, pending.")
    p.add_argument("--store", default=default_store(), help="run store directory (default ./runs)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("runs", help="the results table: one row per run in a store",
                       description="Print or write the results table (one row per run) that analysis reads.")
    p.add_argument("--store", default=default_store(), help="run store directory (default ./runs)")
    p.add_argument("--sweep", help="only the runs this sweep asked for")
    p.add_argument("--format", choices=TABLE_FORMATS, default="table")
    p.add_argument("--out", help="write to this file instead of standard output (required for parquet)")
    p.set_defaults(func=cmd_runs)


def _load(file: str):
    from sweeps.config import load_sweep  # noqa: PLC0415

    return load_sweep(file)


def cmd_plan(args) -> int:
    from sweeps.plan import plan  # noqa: PLC0415

    sweep_plan = plan(_load(args.file))
    if args.json:
        print(sweep_plan.to_json())
        return 0
    config = sweep_plan.config
    print(f"sweep {sweep_plan.name} ({config.kind}, N = {config.n_convention} parameters, C = "
          f"{'exact FLOPs' if config.compute == 'exact' else '6·N·D'}, shapes: {config.family.describe()});"
          f" estimates assume {sweep_plan.device_kind} at {sweep_plan.flops_per_second:.2g} FLOP/s")
    header = (f"{'run id':<16} {'budget':>9} {'layers':>6} {'width':>5} {'heads':>5} {'N':>11} {'D':>13} {'D/N':>6} "
              f"{'C':>9} {'exact':>9} {'lr':>8} {'seed':>4} {'memory':>9} {'est s':>7} {'workers':>7}")
    print(header)
    for r in sweep_plan.to_rows():
        budget = f"{r['budget']:.2e}" if r["budget"] else "-"
        print(f"{r['run_id']:<16} {budget:>9} {r['n_layers']:>6} {r['d_model']:>5} {r['n_heads']:>5} {r['N']:>11,}"
              f" {r['D']:>13,} {r['tokens_per_param']:>6.1f} {r['C']:>9.2e} {r['flops_exact']:>9.2e} {r['lr']:>8.1e}"
              f" {r['seed']:>4} {_bytes(r['memory_bytes']):>9} {r['est_seconds']:>7.0f} {r['workers']:>7}"
              + (f"  {r['role']}" if "role" in r else ""))
    print(f"{len(sweep_plan.runs)} runs, {sweep_plan.spend()}, about {sweep_plan.serial_seconds / 60:.1f} min one "
          f"after another")
    if big := sweep_plan.oversized():
        print(f"{len(big)} runs (N up to {max(r.N for r in big):,}) need more memory than one 80 GB GPU holds with "
              f"the scheduler's safety factor: raise resources.workers_per_run or lower workers_from_N")
    if sweep_plan.branching is not None:
        b = sweep_plan.branching
        print(f"wsd: {len(b.trunks)} trunks, {len(b.branches)} branches; exact FLOPs {sweep_plan.total_flops:.3e} "
              f"against {sweep_plan.flops_if_separate:.3e} as separate runs: "
              f"{sweep_plan.total_flops / sweep_plan.flops_if_separate:.2f} of it")
    return 0


def launch_progress_printer(name: str):
    """A progress callback: one refreshing line on a terminal, a line every 10 s in a log file."""
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(p):
        now = time.monotonic()
        if not tty and now - last[0] < 10 and p.running:
            return
        last[0] = now
        eta = f"ETA {p.eta_seconds / 60:.1f} min" if p.eta_seconds is not None else "ETA -"
        line = (f"[{name}] done {p.done_before + p.completed}/{p.planned}  running {p.running}  "
                f"failed {p.failed + p.diverged}  pending {p.pending}  elsewhere {p.elsewhere}  retries {p.retries}  "
                f"FLOPs {p.flops_done:.2e}/{p.flops_total:.2e}  {eta}"
                + (f"  (trunks {p.trunks_done}/{p.trunks_planned})" if p.trunks_planned else ""))
        if tty:
            print("\r" + line.ljust(120), end="" if p.running or p.pending or p.elsewhere else "\n", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return show


def cmd_launch(args) -> int:
    from sweeps.launch import RayUnavailableError, launch  # noqa: PLC0415

    config = _load(args.file)
    if not args.lease_seconds > 0:
        raise ValueError(f"--lease-seconds must be positive, got {args.lease_seconds}")
    signal.signal(signal.SIGTERM, _interrupt)  # `ray job stop` and kill: stop as cleanly as Ctrl-C
    try:
        report = launch(config, store=args.store, address=args.address, max_concurrent=args.max_concurrent,
                        max_retries=args.max_retries, retry_failed=args.retry_failed,
                        on_progress=launch_progress_printer(config.name), lease_seconds=args.lease_seconds)
    except RayUnavailableError as e:
        print(f"\nscaling sweep launch: error: {e}", file=sys.stderr)
        return 3
    print(f"sweep {report.sweep}: {report.message}; store {report.store}")
    if report.interrupted:
        return 130
    return 0 if report.count("failed") == 0 else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_status(args) -> int:
    from experiments import lease, store as st  # noqa: PLC0415

    store = Path(args.store)
    if not (store / st.RUNS_DIR).is_dir():
        raise FileNotFoundError(f"{store} is not a run store (no {st.RUNS_DIR}/ folder)")
    states = st.run_states(store)
    manifests = sorted((store / st.SWEEPS_DIR).glob("*.json"))
    print(f"store {store.resolve()}: {len(states)} runs")
    for path in manifests:
        manifest = json.loads(path.read_text())
        ids = manifest["run_ids"]
        counts: dict[str, int] = {}
        for run_id in ids:
            status = states.get(run_id) or "pending"
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{counts[k]} {k}" for k in sorted(counts))
        print(f"  sweep {manifest['sweep']}: {len(ids)} runs: {summary}")
    for run_id, state in states.items():
        if state == "running":
            status = st.read_status(store, run_id) or {}
            held = lease.read_lease(store, run_id)
            driver = (f", leased to driver {held.driver} (host {held.host}, pid {held.pid}, renewed {held.renewals}"
                      f" times, every {held.ttl_seconds / 4:g} s)") if isinstance(held, lease.Lease) and not held.released else ""
            print(f"  running {run_id}: step {status.get('step', 0)}/{status.get('steps', '?')} "
                  f"on {status.get('host')} (updated {status.get('updated_at')}){driver}")
    return 0


def cmd_runs(args) -> int:
    import pandas as pd  # noqa: PLC0415

    from experiments import store as st  # noqa: PLC0415

    store = Path(args.store)
    if not (store / st.RUNS_DIR).is_dir():
        raise FileNotFoundError(f"{store} is not a run store (no {st.RUNS_DIR}/ folder)")
    rows = st.read_rows(store)
    if args.sweep:
        manifest = st.read_manifest(store, args.sweep)
        if manifest is None:
            raise ValueError(f"--sweep {args.sweep!r}: no such sweep in {store}")
        wanted = set(manifest["run_ids"])
        rows = [r for r in rows if r["run_id"] in wanted]
    table = pd.DataFrame(rows, columns=list(st.ROW_COLUMNS))
    if args.format == "parquet":
        if not args.out:
            raise ValueError("--format parquet needs --out FILE")
        _atomic(args.out, lambda stream: table.to_parquet(stream, index=False))
        return 0
    if args.format == "csv":
        text = table.to_csv(index=False)
    elif args.format == "json":
        text = table.to_json(orient="records", indent=1)
    else:
        cols = ["run_id", "status", "N", "D", "C", "loss", "lr", "batch_size", "wall_seconds", "error"]
        text = table[cols].to_string(index=False) if len(table) else "(no finished runs)"
    if args.out:
        _atomic(args.out, lambda stream: stream.write((text + "\n").encode("utf-8")))
    else:
        print(text)
    return 0


def _atomic(path: str, write) -> None:
    """Run `write(file object)` into a temp file that atomically replaces `path`."""
    import atomicio  # noqa: PLC0415

    with atomicio.writing(path) as stream:
        write(stream)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} PiB"
