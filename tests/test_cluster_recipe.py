"""The README's "Running on a Ray cluster" recipe, as written: a head and a second node started with
`ray start` on 127.0.0.1 (free ports, a private temp dir, token authentication with a private token), a
sweep submitted with `ray job submit --working-dir .`, stopped mid-sweep with `ray job stop` and
submitted again. Every run finishes exactly once, nothing finished is retrained, and the cluster is
stopped afterwards, also on failure, by killing only the processes this test's `ray start` made."""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from analysis.table import read_table
from experiments import store as st
from sweeps.config import load_sweep
from sweeps.plan import plan
from ray_cluster import VENV_BIN, cluster_env, free_ports, node_ports, private_temp_dir, ray_cli, stop_cluster
from sweep_helpers import sweep_file, wait_for


@pytest.fixture
def cluster(tmp_path):
    """A head and a second node on 127.0.0.1 with token auth; yields (job server address, env)."""
    pytest.importorskip("aiohttp", reason="the cluster extra is not installed: pip install -e '.[cluster]'")
    temp_dir = private_temp_dir()
    env = cluster_env(temp_dir, tmp_path)
    gcs, dashboard, client, *ports = free_ports(15)
    try:
        ray_cli(["start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=1",
                 "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
                 f"--temp-dir={temp_dir}", "--disable-usage-stats", *node_ports(ports[:6])], env)
        ray_cli(["start", f"--address=127.0.0.1:{gcs}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                 *node_ports(ports[6:12])], env)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _submit(address: str, env: dict, sweep: Path, store: Path) -> str:
    out = ray_cli(["job", "submit", "--address", address, "--working-dir", ".", "--no-wait", "--",
                   "scaling", "sweep", "launch", str(sweep), "--store", str(store)], env).stdout
    return re.search(r"Job '([^']+)' submitted successfully", out).group(1)


def _job_status(address: str, env: dict, job: str) -> str:
    done = ray_cli(["job", "status", "--address", address, job], env)
    out = (done.stdout + done.stderr).lower()  # "Job '...' was stopped", "... succeeded", "... failed"
    for status in ("succeeded", "failed", "stopped", "running", "pending"):
        if status in out:
            return status.upper()
    return out


def test_the_readme_recipe_a_stopped_and_resubmitted_job_finishes_every_run_once(cluster, tmp_path):
    address, env = cluster
    sweep = sweep_file(tmp_path, name="recipe", budgets="[1.3e10, 4.0e10]", sizes=2)
    store = tmp_path / "store"
    planned = set(plan(load_sweep(sweep)).run_ids)

    first = _submit(address, env, sweep, store)

    def one_done_one_checkpointed():
        ids = st.run_ids(store)
        done = [i for i in ids if st.is_done(store, i)]
        partial = [i for i in ids if not st.is_done(store, i) and (st.run_dir(store, i) / "checkpoint.pt").exists()]
        return (done, partial) if done and partial else None

    done_before, _ = wait_for(one_done_one_checkpointed, timeout=240)
    ray_cli(["job", "stop", "--address", address, first], env)
    assert _job_status(address, env, first) == "STOPPED"
    rows_before = {i: st.read_row(store, i) for i in planned if st.is_done(store, i)}

    second = _submit(address, env, sweep, store)
    wait_for(lambda: _job_status(address, env, second) in ("SUCCEEDED", "FAILED"), timeout=240, interval=1)
    logs = ray_cli(["job", "logs", "--address", address, second], env).stdout
    assert _job_status(address, env, second) == "SUCCEEDED", logs
    assert "were already done" in logs

    table = read_table(store).set_index("run_id")
    assert set(table.index) == planned and (table["status"] == "completed").all()
    for run_id, row in rows_before.items():  # finished before the stop: never trained again
        assert st.read_row(store, run_id) == row and row["attempts"] == 1
    resumed = table[table["resumed_from_step"].notna()]
    assert len(resumed) >= 1 and (resumed["resumed_from_step"] > 0).all() and (resumed["attempts"] == 2).all()
    assert (table["attempts"] <= 2).all()
    assert json.loads((store / "sweeps" / "recipe.json").read_text())["sweep"] == "recipe"


def test_an_unreachable_address_is_one_clear_line_and_writes_nothing(tmp_path):
    (port,) = free_ports(1)  # nothing listens there
    store = tmp_path / "store"
    for command, address, expected in (
            (["sweep", "launch", "tiny"], f"127.0.0.1:{port}", "cannot reach a Ray cluster at --address 127.0.0.1"),
            (["sweep", "launch", "tiny"], "no-port-here", "expected HOST:PORT"),
            (["study", "tiny", "--out", str(tmp_path / "study")], f"127.0.0.1:{port}", "cannot reach a Ray cluster")):
        started = time.monotonic()
        done = subprocess.run([str(VENV_BIN / "scaling"), *command, "--store", str(store),
                               "--address", address], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "SCALING_LAB_CACHE": str(tmp_path / "cache")})
        assert done.returncode == 3, done.stdout + done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("sweep tiny: ")]
        assert len(lines) == 1 and expected in lines[0], done.stderr
        assert time.monotonic() - started < 60
        assert not store.exists() and not (tmp_path / "study").exists()
