"""Two drivers on one store, each `scaling sweep launch` with its own local Ray: every run is trained exactly
once, and a driver killed with SIGKILL leaves a lease that a later driver takes over once it expires,
resuming the run from its checkpoint."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from analysis.table import read_table
from experiments import lease, store as st
from sweeps.config import load_sweep
from sweeps.plan import plan
from sweep_helpers import cmdline, descendants, sweep_file, wait_for


def _launch(path: Path, store: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "scaling", "sweep", "launch", str(path), "--store", str(store),
               "--max-concurrent", "1", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _leased(store: Path):
    """A run whose lease is held (not released) and whose training has begun."""
    for run_id in st.run_ids(store):
        held = lease.read_lease(store, run_id)
        if isinstance(held, lease.Lease) and not held.released and st.run_state(store, run_id) == "running":
            return run_id, held
    return None


def _finish(process: subprocess.Popen, timeout=240) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return output


def test_two_launches_of_one_sweep_on_one_store_train_every_run_exactly_once(tmp_path):
    path = sweep_file(tmp_path, name="two", budgets="[1.3e10, 2.6e10]", sizes=2)
    store = tmp_path / "store"
    first = _launch(path, store)
    second = None
    try:
        wait_for(lambda: _leased(store), timeout=120)  # the first driver is training a run
        second = _launch(path, store)
        outputs = [_finish(first), _finish(second)]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
    assert first.returncode == 0 and second.returncode == 0, outputs
    table = read_table(store)
    planned = plan(load_sweep(path))
    assert sorted(table["run_id"]) == sorted(set(planned.run_ids)) and (table["status"] == "completed").all()
    assert (table["attempts"] == 1).all(), table[["run_id", "attempts"]]  # no run was trained twice
    for run_id in planned.run_ids:
        assert st.read_status(store, run_id)["attempts"] == 1
        assert lease.read_lease(store, run_id).released
    # Between them the drivers trained each run once, and the second waited for the first's run.
    completed = [int(out.rsplit("sweep two: ", 1)[1].split(" completed")[0]) for out in outputs]
    assert sum(completed) == len(set(planned.run_ids)), outputs
    assert "finished by another driver" in outputs[1], outputs[1]


def test_a_driver_killed_with_sigkill_leaves_a_lease_a_later_driver_takes_over_after_it_expires(tmp_path):
    path = sweep_file(tmp_path, name="kill", budgets="[2.0e10]", sizes=2)  # ~160 steps: killed at ~10% of them
    store = tmp_path / "store"
    victim = _launch(path, store, "--lease-seconds", "3")
    try:
        def checkpointed():
            found = _leased(store)
            return found if found and (st.run_dir(store, found[0]) / "checkpoint.pt").exists() else None

        run_id, held = wait_for(checkpointed, timeout=120)
        assert held.pid == victim.pid and held.host
        its_ray = [p for p in descendants(victim.pid) if "ray" in cmdline(p)]
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    time.sleep(2)  # Ray's own agents outlive a SIGKILLed driver: stop those this test started
    for pid in its_ray:
        if "ray" in cmdline(pid):
            os.kill(pid, signal.SIGKILL)
    orphan = lease.read_lease(store, run_id)
    assert not orphan.released and orphan.driver == held.driver  # left behind, never released

    started = time.monotonic()
    later = _launch(path, store)
    output = _finish(later)
    assert later.returncode == 0, output
    assert time.monotonic() - started >= 3  # it watched the orphaned lease for a whole ttl first
    table = read_table(store).set_index("run_id")
    assert len(table) == 2 and (table["status"] == "completed").all()
    assert table.loc[run_id, "attempts"] == 2  # the killed attempt and the resumed one, nothing more
    assert table.loc[run_id, "resumed_from_step"] > 0
    taken = lease.read_lease(store, run_id)
    assert taken.driver != held.driver and taken.released
