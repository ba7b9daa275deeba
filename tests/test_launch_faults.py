"""Sweeps survive a node leaving a multi-node Ray cluster, and a local Ray that dies under the launcher
ends the launch with a clear message from which a relaunch resumes."""

import os
import signal
import subprocess
import sys
import threading
import time

import ray
from ray.cluster_utils import Cluster

from analysis.table import read_table
from experiments import store as st
from sweeps.config import load_sweep
from sweeps.launch import launch
from sweep_helpers import assert_every_run_completed_once, cmdline, descendants, sweep_file, wait_for


def test_removing_a_node_mid_sweep_still_completes_every_run_once(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="warning")
        cluster.wait_for_nodes()
        config = load_sweep(sweep_file(tmp_path, name="cluster", budgets="[4.0e10]", sizes=2))
        reports = []
        thread = threading.Thread(target=lambda: reports.append(
            launch(config, store=tmp_path, address=cluster.address, poll_seconds=0.2)))
        thread.start()

        def both_checkpointed():
            ids = st.run_ids(tmp_path)
            return len(ids) == 2 and all((st.run_dir(tmp_path, i) / "checkpoint.pt").exists() for i in ids)

        wait_for(both_checkpointed)
        cluster.remove_node(worker)
        table = assert_every_run_completed_once(thread, reports, tmp_path, config)
        resumed = table[table["resumed_from_step"].notna()]
        assert len(resumed) >= 1 and (resumed["resumed_from_step"] > 0).all()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_dead_local_ray_ends_the_launch_clearly_and_a_relaunch_resumes(tmp_path):
    """SIGKILL of the local raylet and its workers under `scaling sweep launch` (a killed ray::DashboardAgent
    took the raylet and every task in flight down with it on such a machine)."""
    path = sweep_file(tmp_path, name="crash", budgets="[4.0e10]", sizes=2)  # ~320 steps: killed at ~10% of them
    store = tmp_path / "store"
    command = [sys.executable, "-m", "scaling", "sweep", "launch", str(path), "--store", str(store)]
    # The launcher's verdict waits for Ray's GCS to declare the killed node dead; by default that takes 5 s
    # plus 5 missed 3 s health checks, here 3 missed 0.5 s ones (Ray's own settings, read from the environment
    # by the Ray this launcher starts; what the launcher does once the node is dead is the same).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_health_check_initial_delay_ms": "0",
           "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3"}
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for(lambda: any((st.run_dir(store, i) / "checkpoint.pt").exists() for i in st.run_ids(store)))
        processes = descendants(launcher.pid)
        raylets = [p for p in processes if "raylet/raylet" in cmdline(p)]
        assert raylets, "the launcher started no local raylet"
        for pid in raylets + [p for p in processes if cmdline(p).startswith("ray::")]:
            os.kill(pid, signal.SIGKILL)
        output, _ = launcher.communicate(timeout=180)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 3, output
    assert "relaunch the same command to resume" in output
    for pid in descendants(os.getpid()):  # leave no stray Ray processes behind
        if "ray" in cmdline(pid):
            os.kill(pid, signal.SIGKILL)
    time.sleep(1)

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    table = read_table(store)
    assert len(table) == 2 and (table["status"] == "completed").all()
    assert table["resumed_from_step"].notna().any()
