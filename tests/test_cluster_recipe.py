"""The README's "Running on a Ray cluster" recipe, as written: a head and a second node started with
`ray start` on 127.0.0.1 (free ports, a private temp dir, token authentication with a private token), a
sweep submitted with `ray job submit --working-dir .`, stopped mid-sweep with `ray job stop` and
submitted again. Every run finishes exactly once, nothing finished is retrained, and the cluster is
stopped afterwards, also on failure, by killing only the processes this test's `ray start` made."""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from analysis.table import read_table
from experiments import store as st
from sweeps.config import load_sweep
from sweeps.plan import plan
from sweep_helpers import cmdline, descendants, sweep_file, wait_for

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(os.sys.executable).parent


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _node_ports(ports: list[int]) -> list[str]:
    """A node's own ports, all chosen free (two nodes on one machine must not share any)."""
    names = ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port")
    return [f"{name}={port}" for name, port in zip(names, ports)]


def _ray(args: list[str], env: dict, timeout=120) -> subprocess.CompletedProcess:
    done = subprocess.run([str(VENV_BIN / "ray"), *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout)
    assert done.returncode == 0, f"ray {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _cluster_processes(temp_dir: str) -> list[int]:
    """The processes of this test's cluster: those naming its temp dir (gcs_server, raylets, agents) and
    everything below them (the workers)."""
    roots = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and temp_dir in cmdline(int(p.name))]
    return sorted({pid for root in roots for pid in (root, *descendants(root))})


def _stop_cluster(temp_dir: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _cluster_processes(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while _cluster_processes(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path):
    """A head and a second node on 127.0.0.1 with token auth; yields (job server address, env)."""
    pytest.importorskip("aiohttp", reason="the cluster extra is not installed: pip install -e '.[cluster]'")
    temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    token = Path(temp_dir) / "token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0",
           "SCALING_LAB_CACHE": str(tmp_path / "cache")}
    env.pop("RAY_ADDRESS", None)
    gcs, dashboard, client, *ports = _free_ports(15)
    try:
        _ray(["start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=1",
              "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
              f"--temp-dir={temp_dir}", "--disable-usage-stats", *_node_ports(ports[:6])], env)
        _ray(["start", f"--address=127.0.0.1:{gcs}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
              *_node_ports(ports[6:12])], env)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _submit(address: str, env: dict, sweep: Path, store: Path) -> str:
    out = _ray(["job", "submit", "--address", address, "--working-dir", ".", "--no-wait", "--",
                "scaling", "sweep", "launch", str(sweep), "--store", str(store)], env).stdout
    return re.search(r"Job '([^']+)' submitted successfully", out).group(1)


def _job_status(address: str, env: dict, job: str) -> str:
    done = _ray(["job", "status", "--address", address, job], env)
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
    _ray(["job", "stop", "--address", address, first], env)
    assert _job_status(address, env, first) == "STOPPED"
    rows_before = {i: st.read_row(store, i) for i in planned if st.is_done(store, i)}

    second = _submit(address, env, sweep, store)
    wait_for(lambda: _job_status(address, env, second) in ("SUCCEEDED", "FAILED"), timeout=240, interval=1)
    logs = _ray(["job", "logs", "--address", address, second], env).stdout
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
    (port,) = _free_ports(1)  # nothing listens there
    store = tmp_path / "store"
    for address, expected in ((f"127.0.0.1:{port}", "cannot reach a Ray cluster at --address 127.0.0.1"),
                              ("no-port-here", "expected HOST:PORT")):
        started = time.monotonic()
        done = subprocess.run([str(VENV_BIN / "scaling"), "sweep", "launch", "tiny", "--store", str(store),
                               "--address", address], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "SCALING_LAB_CACHE": str(tmp_path / "cache")})
        assert done.returncode == 3, done.stdout + done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], done.stderr
        assert time.monotonic() - started < 60
        assert not store.exists()
