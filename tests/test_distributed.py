"""Runs bigger than one device: a 2-worker data-parallel run (gloo on CPU) reproduces the 1-worker loss
curve within 1e-4 relative, with the same FLOPs and the same row, resumes from its checkpoint in the store,
runs on real Ray Train from a sweep file under the driver's lease, and a sweep needing more workers than
the cluster can ever hold is refused before anything is written."""

import math
import os
import socket

import pandas as pd
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from experiments import lease, store as st
from experiments.runner import follow_experiment, run_experiment
from experiments.spec import ExperimentSpec
from lm import checkpoint
from lm.parallel import DataParallel
from sweeps.config import ResourcesSection, SweepConfigError, parse_sweep
from sweeps.launch import launch
from sweeps.plan import plan
from sweeps.schedule import workers_placeable

RUN = dict(threads=1, device="cpu", peak_flops=1e11)
REL = 1e-4
TIMING = {"wall_seconds", "tokens_per_second", "mfu", "attempts", "resumed_from_step"}


def tiny_spec() -> ExperimentSpec:
    """30 steps of a 1-layer, width-16 model, 8 sequences per step, on the session corpus (conftest.py)."""
    return ExperimentSpec(n_layers=1, d_model=16, n_heads=2, tokens=30 * 8 * 32, batch_size=8, context_length=32,
                          lr=1e-2, eval_tokens=1024, corpus_source="stdlib", vocab_size=512, corpus_max_bytes=400_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, spec_dict: dict, store: str, corpus_path: str) -> None:
    """One of two gloo ranks: stop after 12 steps (as an interruption would), then resume to the end."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        parallel = DataParallel.from_process_group()
        spec = ExperimentSpec.from_dict(spec_dict)
        for stop in (12, None):
            args = dict(store=store, corpus_path=corpus_path, parallel=parallel, stop_after_step=stop, **RUN)
            if parallel.is_writer:
                run_experiment(spec, sweep="ddp", keep_checkpoint=stop is not None, **args)
            else:
                follow_experiment(spec, **args)
            dist.barrier()  # the second pass opens the checkpoint rank 0 wrote in the first
    finally:
        dist.destroy_process_group()


def curve(store, run_id: str) -> pd.DataFrame:
    return pd.read_csv(st.run_dir(store, run_id) / st.CURVE)


def assert_same_curve(a, b):
    assert list(a["step"]) == list(b["step"]) and list(a["flops"]) == list(b["flops"])
    for column in ("train_loss", "val_loss"):
        for x, y in zip(a[column], b[column]):
            assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= REL * abs(y), (column, x, y)


def assert_same_row(a: dict, b: dict):
    for key in set(a) - TIMING:
        if isinstance(a[key], float) and key in ("loss", "train_loss"):
            assert a[key] == pytest.approx(b[key], rel=REL), key
        else:
            assert a[key] == b[key], key


def test_two_gloo_ranks_reproduce_one_worker_and_resume_from_the_store(stdlib_corpus, tmp_path):
    spec = tiny_spec()
    one = run_experiment(spec, store=tmp_path / "one", corpus_path=stdlib_corpus.path, sweep="ddp", **RUN)
    two_store = tmp_path / "two"
    mp.spawn(_rank_main, args=(free_port(), spec.to_dict(), str(two_store), str(stdlib_corpus.path)), nprocs=2)
    two = st.read_row(two_store, spec.run_id)
    assert (two["status"], two["resumed_from_step"]) == ("completed", 12)
    assert two["flops"] == one.flops and two["D"] == one.D  # FLOPs of the global batch: summed over ranks
    assert_same_row(two, one.to_row())
    assert_same_curve(curve(two_store, spec.run_id), curve(tmp_path / "one", spec.run_id))
    result = st.read_json(st.run_dir(two_store, spec.run_id) / st.RESULT)
    assert result["workers"] == 2
    assert not (st.run_dir(two_store, spec.run_id) / checkpoint.FILENAME).exists()  # removed when done


def test_a_batch_that_does_not_split_over_the_workers_is_refused():
    with pytest.raises(ValueError, match="divisible by workers_per_run"):
        DataParallel(rank=0, world_size=3).check_batch(8)
    with pytest.raises(ValueError, match="rank"):
        DataParallel(rank=2, world_size=2)
    data = sweep_dict(workers=3)
    with pytest.raises(SweepConfigError, match=r"resources\.workers_per_run.*batch_size 8"):
        plan(parse_sweep(data))


def test_workers_apply_from_their_size_and_split_the_memory_estimate():
    r = ResourcesSection(workers_per_run=4, workers_from_N=1e6)
    assert (r.workers_for(9e5), r.workers_for(1e6)) == (1, 4)
    with pytest.raises(SweepConfigError, match="workers_per_run"):
        ResourcesSection(workers_per_run=0)
    one, two = plan(parse_sweep(sweep_dict(workers=1))).runs[0], plan(parse_sweep(sweep_dict(workers=2))).runs[0]
    assert (one.workers, two.workers) == (1, 2) and one.run_id == two.run_id  # where it trains is not what
    assert two.memory_bytes < one.memory_bytes and two.est_seconds < one.est_seconds


def test_workers_are_placed_whole_on_a_node():
    nodes = [{"CPU": 3.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 4.0}]
    assert workers_placeable(nodes, cpus_per_worker=2, gpus_per_worker=0) == 1 + 4
    assert workers_placeable(nodes, cpus_per_worker=2, gpus_per_worker=1) == 1 + 4
    assert workers_placeable(nodes, cpus_per_worker=4, gpus_per_worker=1) == 0 + 2


def sweep_dict(*, workers: int, name: str = "ddp") -> dict:
    return {
        "name": name, "kind": "grid",
        "corpus": {"source": "stdlib", "vocab_size": 257, "max_bytes": 300_000},
        "training": {"context_length": 32, "batch_size": 8, "lr": 1e-2, "precision": "fp32", "eval_tokens": 1024},
        "grid": {"shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}], "D": [24 * 8 * 32]},
        "resources": {"cpus_per_run": 1, "gpus_per_run": 0, "workers_per_run": workers},
        "planning": {"device": "cpu", "min_steps": 10},
    }


def test_a_sweep_run_on_two_ray_train_workers_equals_one_worker(local_ray, tmp_path, monkeypatch):
    one, two = parse_sweep(sweep_dict(workers=1)), parse_sweep(sweep_dict(workers=2))
    taken, real_take = [], lease.LeaseKeeper.try_take

    def recording_take(self, run_id, verdict):  # a real acquisition, recorded: in the driver's process
        taken.append((run_id, real_take(self, run_id, verdict)))
        return taken[-1][1]

    monkeypatch.setattr(lease.LeaseKeeper, "try_take", recording_take)
    report = launch(two, store=tmp_path / "two", poll_seconds=0.2)
    run_id = plan(two).runs[0].run_id
    assert taken == [(run_id, True)] and report.count("completed") == 1  # one lease, the driver's
    held = lease.read_lease(tmp_path / "two", run_id)
    assert held.released and held.pid == os.getpid()  # the driver's lease, released when the run ended
    assert st.read_json(st.run_dir(tmp_path / "two", run_id) / st.RESULT)["workers"] == 2
    launch(one, store=tmp_path / "one", poll_seconds=0.2)
    assert_same_row(st.read_row(tmp_path / "two", run_id), st.read_row(tmp_path / "one", run_id))
    assert_same_curve(curve(tmp_path / "two", run_id), curve(tmp_path / "one", run_id))


def test_more_workers_than_the_cluster_holds_is_refused_before_writing(local_ray, tmp_path):
    store = tmp_path / "store"
    with pytest.raises(SweepConfigError, match=r"resources\.workers_per_run: a run needs 4 workers .* at most 2"):
        launch(parse_sweep(sweep_dict(workers=4)), store=store)
    assert not store.exists()
