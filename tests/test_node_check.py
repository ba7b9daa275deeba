"""Before a cluster launch writes anything, every alive node must see the store at the same path: real Ray
nodes probed by pinned tasks, a second node whose view of the store's folder is hidden by a private mount
namespace named with the path in one line and a non-zero exit, and a refused launch leaving nothing behind."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ray_cluster import VENV_BIN, cluster_env, free_ports, node_ports, private_temp_dir, ray_cli, stop_cluster
from sweeps.node_check import NodeCheckError, NodeReport, check_nodes, judge, require_nodes_ready


def test_judge_names_each_failing_node_its_address_the_path_and_the_reason():
    store = Path("/x/runs")
    fine = NodeReport("a" * 56, "10.0.0.4", "head")
    hidden = NodeReport("3f2a" + "b" * 52, "10.0.0.5", "w1", store_problem="no such directory")
    no_train = NodeReport("c" * 56, "10.0.0.6", "w2", train_problem="ImportError: pydantic")
    assert judge(store, [fine]).success
    check = judge(store, [fine, hidden, no_train])
    assert not check.success and "\n" not in check.message
    assert ("store /x/runs is not visible on node 3f2abbbbbbbb… (10.0.0.5, w1): no such directory" in check.message)
    assert "every node must see the store at the same path (a shared filesystem)" in check.message
    assert "need Ray Train, which does not import on node cccccccccccc… (10.0.0.6, w2) (ImportError" in check.message
    assert "pip install -e '.[cluster]'" in check.message
    assert "10.0.0.4" not in check.message
    no_code = NodeReport("d" * 56, "10.0.0.7", task_problem="ModuleNotFoundError: No module named 'sweeps'")
    message = judge(store, [fine, no_code]).message
    assert "task did not run on node dddddddddddd… (10.0.0.7) (ModuleNotFoundError: No module named 'sweeps')" in message
    assert "every node needs scaling-lab installed" in message and "shared filesystem" not in message
    many = judge(store, [NodeReport(f"{i:056x}", f"10.0.1.{i}", store_problem="no such directory") for i in range(5)])
    assert many.message.endswith("and 2 more nodes like these")
    assert not judge(store, []).success


def test_every_node_of_a_running_ray_sees_the_store_and_the_probe_leaves_nothing(local_ray, tmp_path):
    store = tmp_path / "new" / "runs"
    check = check_nodes(local_ray, store, need_train=True)
    assert check.success, check.message
    assert len(check.reports) == len([n for n in local_ray.nodes() if n["Alive"]]) >= 1
    assert all(r.ok and r.ip for r in check.reports)
    assert store.is_dir() and list(store.iterdir()) == []  # the probe and answer files are gone


def test_a_store_path_that_is_a_file_is_refused_and_left_as_it_was(local_ray, tmp_path):
    store = tmp_path / "runs"
    store.write_text("not a folder")
    with pytest.raises(NodeCheckError, match="cannot write to store .*runs from this driver"):
        require_nodes_ready(local_ray, store, need_train=False, local=False)
    assert store.read_text() == "not a folder" and sorted(tmp_path.iterdir()) == [store]


def _can_hide(folder: Path) -> bool:
    """Whether this machine lets us start a process in a private mount namespace (root, no seccomp veto)."""
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               f"mount -t tmpfs none {folder}"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _alive_nodes(gcs: int, env: dict) -> list[tuple[str, int]]:
    code = ("import json, ray; ray.init(address='127.0.0.1:%d', logging_level='error'); print(json.dumps("
            "[(n['NodeID'], n['NodeManagerPort']) for n in ray.nodes() if n['Alive']]))" % gcs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return [tuple(n) for n in json.loads(done.stdout.strip().splitlines()[-1])]


def test_a_node_that_does_not_see_the_store_is_named_with_the_path_and_nothing_is_written(tmp_path):
    """A real second node, started by `ray start --address` inside a private mount namespace where the store's
    parent folder is an empty tmpfs: the driver sees the store, that node does not (as a node without the
    NFS mount would). `scaling sweep launch` and `scaling study` refuse with one line naming that node."""
    shared = tmp_path / "shared"
    shared.mkdir()
    if not _can_hide(shared):
        pytest.skip("this machine does not permit a private mount namespace (unshare --mount, mount -t tmpfs)")
    store = shared / "runs"
    temp_dir = private_temp_dir()
    env = cluster_env(temp_dir, tmp_path)
    gcs, client, *ports = free_ports(14)
    hidden_port = ports[6]
    log = open(tmp_path / "hidden-node.log", "w")
    hidden = None
    try:
        ray_cli(["start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=1",
                 "--include-dashboard=false", f"--ray-client-server-port={client}", f"--temp-dir={temp_dir}",
                 "--disable-usage-stats", *node_ports(ports[:6])], env)
        start = " ".join([str(VENV_BIN / "ray"), "start", f"--address=127.0.0.1:{gcs}", "--node-ip-address=127.0.0.1",
                          "--num-cpus=1", *node_ports(ports[6:12]), "--block"])
        hidden = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                   f"mount -t tmpfs none {shared} && exec {start}"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while len(nodes := _alive_nodes(gcs, env)) < 2:
            assert hidden.poll() is None and time.monotonic() < deadline, (tmp_path / "hidden-node.log").read_text()
            time.sleep(1)
        hidden_id = next(node_id for node_id, port in nodes if port == hidden_port)
        head_id = next(node_id for node_id, port in nodes if port != hidden_port)

        for command in (["sweep", "launch", "tiny"], ["study", "tiny", "--out", str(tmp_path / "study")]):
            done = subprocess.run([str(VENV_BIN / "scaling"), *command, "--store", str(store),
                                   "--address", f"127.0.0.1:{gcs}"], capture_output=True, text=True, env=env,
                                  timeout=300)
            assert done.returncode == 2, done.stdout + done.stderr
            errors = [line for line in done.stderr.splitlines() if "error:" in line]
            assert len(errors) == 1, done.stderr
            assert re.search(rf"store {re.escape(str(store))} is not visible on node {hidden_id[:12]}… \([^)]+\): "
                             r"no such directory; every node must see the store at the same path \(a shared "
                             r"filesystem\)$", errors[0]), errors[0]
            assert head_id[:12] not in errors[0]
            assert not store.exists() and list(shared.iterdir()) == []  # nothing written, nothing left
            assert not (tmp_path / "study").exists()
    finally:
        if hidden is not None and hidden.poll() is None:
            os.killpg(hidden.pid, 15)
            hidden.wait(timeout=30)
        stop_cluster(temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


DDP_SWEEP = """
name: ddp
kind: grid
corpus: {source: stdlib, vocab_size: 257, max_bytes: 300000}
training: {context_length: 32, batch_size: 8, lr: 1.0e-2, precision: fp32, eval_tokens: 1024}
grid: {shapes: [{n_layers: 1, d_model: 16, n_heads: 2}], D: [6144]}
resources: {cpus_per_run: 1, gpus_per_run: 0, workers_per_run: 2}
planning: {device: cpu, min_steps: 10}
"""


def test_runs_on_ray_train_without_the_cluster_extra_are_refused_in_one_line_naming_it(tmp_path):
    """Plain `ray` lacks the pydantic that Ray Train imports (ray[default], our `cluster` extra, brings it):
    a 2-worker run used to fail on every retry and be recorded as failed. Here pydantic is made unimportable
    in the launching process (sys.modules[name] = None, Python's own way to mark a module absent); the local
    Ray's workers run that same Python, so the launch refuses before anything is written."""
    sweep, store = tmp_path / "ddp.yaml", tmp_path / "store"
    sweep.write_text(DDP_SWEEP)
    code = ("import sys; sys.modules['pydantic'] = None; from scaling.cli import main; "
            f"sys.exit(main(['sweep', 'launch', {str(sweep)!r}, '--store', {str(store)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SCALING_LAB_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    assert "runs of resources.workers_per_run > 1 need Ray Train, which does not import on this machine" in errors[0]
    assert "pydantic" in errors[0] and errors[0].endswith("pip install -e '.[cluster]'")
    assert not store.exists()
