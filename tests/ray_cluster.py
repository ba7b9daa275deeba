"""A Ray cluster started with `ray start` on 127.0.0.1 for a test: free ports, a private temp dir and token,
and a stop that kills only the processes this cluster made (also when the test failed)."""

import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sweep_helpers import cmdline, descendants

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(os.sys.executable).parent


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def node_ports(ports: list[int]) -> list[str]:
    """A node's own ports, all chosen free (two nodes on one machine must not share any)."""
    names = ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port")
    return [f"{name}={port}" for name, port in zip(names, ports)]


def ray_cli(args: list[str], env: dict, timeout=120) -> subprocess.CompletedProcess:
    done = subprocess.run([str(VENV_BIN / "ray"), *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout)
    assert done.returncode == 0, f"ray {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def private_temp_dir() -> str:
    return tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes


def cluster_env(temp_dir: str, tmp_path: Path) -> dict:
    """The environment of every command against this cluster: token auth with a token of its own."""
    token = Path(temp_dir) / "token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0",
           "SCALING_LAB_CACHE": str(tmp_path / "cache")}
    env.pop("RAY_ADDRESS", None)
    return env


def cluster_processes(temp_dir: str) -> list[int]:
    """The processes of this test's cluster: those naming its temp dir (gcs_server, raylets, agents) and
    everything below them (the workers)."""
    roots = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and temp_dir in cmdline(int(p.name))]
    return sorted({pid for root in roots for pid in (root, *descendants(root))})


def stop_cluster(temp_dir: str) -> None:
    """SIGTERM, a short grace, then SIGKILL for what is left: nothing of a test cluster needs saving, and here
    its gcs_server and dashboard outlived a SIGTERM by more than 10 s."""
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 10.0)):
        for pid in cluster_processes(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while cluster_processes(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
