"""run_experiment: train one ExperimentSpec into the run store, resumably, and return its row (a RunResult).

Notable choices:
- The corpus is opened by path (`TokenizedCorpus.load`): the sweep driver tokenizes once per sweep and
  every run only maps the prepared arrays. The corpus must be the one the spec names (its recorded
  CorpusConfig must equal `spec.corpus_config()`), else ValueError before anything is written.
- The run's folder is lm.train's checkpoint_dir, so a retried or relaunched run resumes from its last
  checkpoint; checkpoints are taken every ~10% of the run's steps by default (`checkpoint_every`).
  A run that ends done (completed or diverged) deletes its checkpoint after row.json is written: the
  weights of thousands of sweep runs are rarely wanted and would dominate the disk
  (`keep_checkpoint=True` keeps them). A failed run keeps it, so a retry resumes.
- A run that fails on its own is recorded, never raised: divergence -> status "diverged"; any
  exception (out of memory, bad data, an unusable checkpoint) -> status "failed" with the error.
  KeyboardInterrupt and SystemExit propagate after marking the run "interrupted", leaving it resumable.
- Calling it for a run that is already completed or diverged returns the stored row without training
  (the same spec always gives the same numbers); a failed run is trained again (a new attempt).
- status.json is refreshed at most every `PROGRESS_SECONDS` with the step reached, so a driver or
  `scaling sweep status` can show progress from the store alone.
- `record_failure` lets a driver record a run whose worker never returned (a lost process) as failed,
  with the same row columns.
- WSD trunks and branches (experiments/wsd.py): a trunk keeps a checkpoint at its last step, never
  deleted with the run's own, and may start from a shorter trunk of its line (`start_from`); a branch
  starts from its trunk's checkpoint; either starting checkpoint must be in the store when the run
  starts. A trunk's row has no loss (its stable-phase losses are in its curve; its branches are the
  points); a branch's row names its trunk (`trunk_id`) and the tokens it trained on trunks before its
  cooldown (`branch_tokens`), and its D, C and flops are those of the whole run to D, as for an
  independent run.
- Two processes must not run the same run id into one store at once: the sweep driver holds the run's
  lease (experiments/lease.py) while its task runs. A data-parallel run is one run trained by k ranks
  in step (lm/parallel.py): rank 0 calls run_experiment and writes everything; the other ranks call
  `follow_experiment`, which trains alongside and writes nothing.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from experiments import provenance, store as st, wsd
from experiments.run_result import RunResult, finite_or_none
from experiments.spec import ExperimentSpec
from lm import checkpoint
from lm.accounting import compute_columns, compute_per_token, flop_convention
from lm.data import TokenizedCorpus
from lm.parallel import DataParallel
from lm.train import CurvePoint, TrainResult, train

PROGRESS_SECONDS = 10.0
CHECKPOINTS_PER_RUN = 10


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_corpus(spec: ExperimentSpec, corpus: TokenizedCorpus) -> None:
    """ValueError unless `corpus` was prepared from exactly the spec's CorpusConfig."""
    wanted = asdict(spec.corpus_config())
    recorded = corpus.meta.get("config")
    if recorded != wanted:
        diffs = sorted(k for k in set(wanted) | set(recorded or {}) if (recorded or {}).get(k) != wanted.get(k))
        raise ValueError(f"corpus at {corpus.path} was prepared from a different CorpusConfig than run "
                         f"{spec.run_id} asks for (fields differing: {diffs})")


def run_experiment(
    spec: ExperimentSpec,
    *,
    store: str | Path,
    corpus_path: str | Path,
    sweep: str,
    device: str = "auto",
    threads: int | None = None,
    compile: bool = False,
    checkpoint_every: int | None = None,
    keep_checkpoint: bool = False,
    on_progress: Callable[[CurvePoint, int], None] | None = None,
    stop_after_step: int | None = None,
    peak_flops: float | None = None,
    parallel: DataParallel | None = None,
    start_from: str | Path | None = None,
) -> RunResult:
    """Train `spec` into `<store>/runs/<spec.run_id>/` and return its results-table row as a RunResult.

    corpus_path: a prepared corpus folder (lm.data.prepare_corpus(spec.corpus_config()).path).
    sweep: the name recorded in the row's `sweep` column (validated as a safe name).
    checkpoint_every: steps between checkpoints; None = every ~10% of the run's steps; 0 = only at the end.
    stop_after_step: stop after this many steps as an interruption would (status "interrupted", resumable;
        the row is returned but not written, since the run is not done).
    peak_flops: the device's peak FLOP/s for MFU; measured (and cached) when None.
    parallel: rank 0 of a data-parallel run (the other ranks call follow_experiment).
    start_from: a WSD trunk's checkpoint to start from (a shorter trunk's of its line); a branch always
        starts from its own trunk's (experiments.wsd.trunk_checkpoint).
    Raises ValueError, before writing anything, for a bad sweep name, a corpus that is not the spec's, or
    a starting checkpoint that is not in the store (unless the run has its own to resume from).
    """
    st.check_name(sweep, "sweep name")
    corpus = TokenizedCorpus.load(corpus_path)
    check_corpus(spec, corpus)
    start_from = _starting_checkpoint(spec, store, start_from)
    folder = st.prepare_run(store, spec, sweep=sweep)
    existing = st.read_result(store, spec.run_id)
    if existing is not None and existing.status in ("completed", "diverged"):
        return existing

    status = _begin_attempt(folder, st.read_status(store, spec.run_id), sweep)
    started = time.perf_counter()
    try:
        config = spec.train_config(device=device, threads=threads, compile=compile)
        result = train(config, corpus, checkpoint_dir=folder, checkpoint_every=checkpoint_interval(spec, checkpoint_every),
                       on_progress=_progress_writer(folder, status, on_progress), stop_after_step=stop_after_step,
                       peak_flops=peak_flops, parallel=parallel, start_from=start_from,
                       checkpoint_steps=(spec.steps,) if spec.trunk else ())
    except (KeyboardInterrupt, SystemExit) as e:
        status.update(status="interrupted", error=f"{type(e).__name__} during attempt {status['attempts']}",
                      updated_at=_now())
        try:
            st.write_json(folder / st.STATUS, status)
        except OSError:
            pass  # interrupted while the disk is unwritable: the run stays resumable either way
        raise
    except Exception as e:  # the run's own failure: recorded, not raised
        status.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=20),
                      updated_at=_now(), finished_at=_now())
        return _record(folder, status, run_result(spec, sweep, status, trained=None,
                                                  wall_seconds=time.perf_counter() - started))
    return _record_trained(folder, spec, sweep, status, result, keep_checkpoint=keep_checkpoint)


def _starting_checkpoint(spec: ExperimentSpec, store: str | Path, start_from: str | Path | None) -> Path | None:
    """The checkpoint the run starts from (a branch: its trunk's, whatever was asked); ValueError if it is not
    in the store and the run has no checkpoint of its own to resume from (nor is done)."""
    if wsd.is_branch(spec):
        start_from = wsd.trunk_checkpoint(store, spec)
    if start_from is not None and not Path(start_from).exists() and not st.is_done(store, spec.run_id) and \
            not (st.run_dir(store, spec.run_id) / checkpoint.FILENAME).exists():
        raise ValueError(f"run {spec.run_id} cannot start: its starting checkpoint {start_from} is not in the store")
    return None if start_from is None else Path(start_from)


def _begin_attempt(folder: Path, status: dict, sweep: str) -> dict:
    """Mark a new attempt running in status.json (and provenance.json); a retried failed run is no longer done."""
    status.pop("traceback", None)  # of an earlier failed attempt
    status.update(sweep=sweep, status="running", attempts=status.get("attempts", 0) + 1, error=None,
                  host=socket.gethostname(), pid=os.getpid(), started_at=_now(), updated_at=_now(),
                  finished_at=None)
    (folder / st.ROW).unlink(missing_ok=True)
    st.write_json(folder / st.PROVENANCE, provenance.collect())
    st.write_json(folder / st.STATUS, status)
    return status


def _progress_writer(folder: Path, status: dict, on_progress) -> Callable[[CurvePoint, int], None]:
    """lm.train's progress callback: call `on_progress`, and refresh status.json every PROGRESS_SECONDS."""
    last_write = [time.monotonic()]

    def progress(point: CurvePoint, total_steps: int) -> None:
        if on_progress is not None:
            on_progress(point, total_steps)
        if time.monotonic() - last_write[0] >= PROGRESS_SECONDS:
            status.update(step=point.step, steps=total_steps, train_loss=point.train_loss, updated_at=_now())
            st.write_json(folder / st.STATUS, status)
            last_write[0] = time.monotonic()

    return progress


def _record_trained(folder: Path, spec: ExperimentSpec, sweep: str, status: dict, result: TrainResult, *,
                    keep_checkpoint: bool) -> RunResult:
    """Write what training returned: curve and status; and unless interrupted, result.json and the row."""
    if result.resumed_from_step is not None:
        status["resumed_from_step"] = [*status.get("resumed_from_step", []), result.resumed_from_step]
    status.update(status=result.status, step=result.steps, steps=spec.steps, updated_at=_now(),
                  error=None if result.status == "completed" else result.message)
    st.write_curve(folder / st.CURVE, result.curve)
    row = run_result(spec, sweep, status, trained=result, wall_seconds=result.wall_seconds)
    if result.status == "interrupted":
        st.write_json(folder / st.STATUS, status)
        return row
    status["finished_at"] = _now()
    result_dict = result.to_dict()
    result_dict.pop("curve")
    st.write_json(folder / st.RESULT, result_dict)
    _record(folder, status, row)
    if not keep_checkpoint:
        (folder / checkpoint.FILENAME).unlink(missing_ok=True)
    return row


def _record(folder: Path, status: dict, row: RunResult) -> RunResult:
    """Write status.json, then row.json: from the row on, the run is done."""
    st.write_json(folder / st.STATUS, status)
    st.write_json(folder / st.ROW, row.to_row())
    return row


def checkpoint_interval(spec: ExperimentSpec, checkpoint_every: int | None) -> int:
    """Steps between checkpoints: checkpoint_every, or every ~1/CHECKPOINTS_PER_RUN of the run when None."""
    return max(1, spec.steps // CHECKPOINTS_PER_RUN) if checkpoint_every is None else checkpoint_every


def follow_experiment(
    spec: ExperimentSpec,
    *,
    store: str | Path,
    corpus_path: str | Path,
    parallel: DataParallel,
    device: str = "auto",
    threads: int | None = None,
    compile: bool = False,
    checkpoint_every: int | None = None,
    stop_after_step: int | None = None,
    peak_flops: float | None = None,
) -> None:
    """Rank `parallel.rank` > 0 of a data-parallel run whose rank 0 calls run_experiment with the same
    arguments: trains in step with it (resuming from the same checkpoint) and writes nothing to the store."""
    if parallel.is_writer:
        raise ValueError("follow_experiment is for ranks > 0; rank 0 calls run_experiment")
    corpus = TokenizedCorpus.load(corpus_path)
    check_corpus(spec, corpus)
    existing = st.read_result(store, spec.run_id)
    if existing is not None and existing.status in ("completed", "diverged"):
        return  # rank 0 returns the stored row without training too
    config = spec.train_config(device=device, threads=threads, compile=compile)
    train(config, corpus, checkpoint_dir=st.run_dir(store, spec.run_id),
          checkpoint_every=checkpoint_interval(spec, checkpoint_every), stop_after_step=stop_after_step,
          peak_flops=peak_flops, parallel=parallel)


def record_failure(spec: ExperimentSpec, *, store: str | Path, sweep: str, error: str) -> RunResult:
    """Mark a run failed from outside it (e.g. its worker process kept dying) and return its row.

    For a driver whose task never returned: the row has every column run_experiment would write for a
    failure (N and shape from the spec, D/loss/flops None), so analysis sees one consistent table.
    """
    folder = st.prepare_run(store, spec, sweep=sweep)
    status = st.read_status(store, spec.run_id)
    status.update(sweep=sweep, status="failed", error=error, updated_at=_now(), finished_at=_now())
    return _record(folder, status, run_result(spec, sweep, status, trained=None, wall_seconds=None))


def run_result(spec: ExperimentSpec, sweep: str, status: dict, *, trained: TrainResult | None,
               wall_seconds: float | None) -> RunResult:
    """The run's row from its spec, its status.json and what training returned (None: it never trained).
    Loss is the final validation loss, None unless completed (and for a WSD trunk)."""
    model = spec.model_config()
    counts = spec.param_counts()
    tokens = trained.tokens if trained else None
    branch = wsd.is_branch(spec)
    columns = dict(
        run_id=spec.run_id, sweep=sweep, status=status["status"],
        N=counts.n(spec.n_convention), N_total=counts.total, N_embedding=counts.embedding, N_head=counts.head,
        N_blocks=counts.blocks, N_norms=counts.norms, n_convention=spec.n_convention,
        D=tokens, passes=trained.passes if trained else None,
        C=tokens * compute_per_token(model, spec.compute, spec.n_convention) if trained else None,
        flops=trained.flops if trained else None,
        budget=spec.budget, compute=flop_convention(spec.compute, spec.n_convention),
        **{c: (v if trained else None) for c, v in compute_columns(model, tokens or 0).items()},
        loss=trained.final_val_loss if trained and trained.status == "completed" and not spec.trunk else None,
        train_loss=trained.final_train_loss if trained else None,
        lr=spec.lr, batch_size=spec.batch_size, context_length=spec.context_length, vocab_size=spec.vocab_size,
        n_layers=model.n_layers, d_model=model.d_model, n_heads=model.n_heads, seed=spec.seed, beta2=spec.beta2,
        wall_seconds=wall_seconds,
        tokens_per_second=trained.tokens_per_second if trained else None,
        mfu=trained.mfu if trained else None,
        device=trained.device if trained else None,
        precision=trained.precision if trained else spec.precision,
        attempts=status["attempts"],
        resumed_from_step=(status.get("resumed_from_step") or [None])[-1],  # the last; status.json lists them all
        error=status.get("error"),
        role="trunk" if spec.trunk else "branch" if branch else "run", trunk_id=spec.trunk_id,
        branch_tokens=spec.branch_step * spec.tokens_per_step if branch else None,
    )
    return RunResult(**{k: finite_or_none(v) for k, v in columns.items()})
