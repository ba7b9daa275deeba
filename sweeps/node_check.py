"""Before a launch on a Ray cluster writes anything: every alive node sees the run store and has what the runs need.

Workers write their runs into the store and open the corpus the driver tokenized there, so every node must
see the store at the same path, as one filesystem (NFS, a mounted bucket). A node that does not would train
into a folder nobody reads, or fail on every run. So the driver leaves a probe file with random content in
the store, runs a small task pinned to each alive node (NodeAffinitySchedulingStrategy, soft=False, no CPUs)
that checks the store is a directory holding that file with that content and writes an answer file beside
it, and then reads each answer itself: both directions, as the runs use them. The probe files are removed
afterwards, and on failure so is every folder the check created, so a refused launch leaves nothing in the
store (a driver killed mid-check leaves one hidden `.node-probe-*` file, which nothing reads).

Runs of `resources.workers_per_run > 1` also need Ray Train on every node, which imports only with the
pydantic that the `cluster` extra (`ray[default]`) brings; plain `ray` fails there, run after run.

The local Ray a launch starts itself is this machine alone: it sees the store by construction, so only the
Ray Train import is checked, in this process (the same Python its workers run), without a task.
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

PROBE_PREFIX = ".node-probe-"
CLUSTER_EXTRA = "pip install -e '.[cluster]'"
LOCAL = ""  # the node id of a report on this process's own machine (a local Ray it started)
SHARED = "every node must see the store at the same path (a shared filesystem)"
ANSWER_SECONDS = 120.0  # a fresh node's first worker may take a while to start (and unpack a --working-dir)
LOOKUP_SECONDS = 3.0  # a name just created elsewhere may take an NFS client's attribute cache a moment to show


class NodeCheckError(ValueError):
    """A node of the cluster cannot take this sweep's runs (the store not visible, Ray Train missing)."""


@dataclass(frozen=True)
class NodeReport:
    """What one node answered: each problem is None where that check passed (`task_problem`: the probe
    task itself did not run there, so neither check could)."""

    node_id: str
    ip: str
    hostname: str = ""
    store_problem: str | None = None
    train_problem: str | None = None
    task_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.store_problem is None and self.train_problem is None and self.task_problem is None

    def where(self) -> str:
        if self.node_id == LOCAL:
            return "this machine"
        host = f", {self.hostname}" if self.hostname and self.hostname != self.ip else ""
        return f"node {self.node_id[:12]}… ({self.ip}{host})"


@dataclass(frozen=True)
class NodeCheck:
    """The verdict over every alive node (the pure decision: `judge`)."""

    store: Path
    reports: tuple[NodeReport, ...]
    success: bool
    message: str


def judge(store: Path, reports: list[NodeReport] | tuple[NodeReport, ...]) -> NodeCheck:
    """One line naming each failing node and its reason (the first three in full), or success."""
    bad = [r for r in reports if not r.ok]
    if not reports:
        return NodeCheck(store, (), False, "no Ray node is alive to run the sweep")
    parts = []
    for r in bad[:3]:
        if r.task_problem is not None:
            parts.append(f"the node check's task did not run on {r.where()} ({r.task_problem}); every node needs "
                         f"scaling-lab installed (or `ray job submit --working-dir` of a checkout)")
        if r.store_problem is not None:
            parts.append(f"store {store} is not visible on {r.where()}: {r.store_problem}")
        if r.train_problem is not None:
            parts.append(f"runs of resources.workers_per_run > 1 need Ray Train, which does not import on "
                         f"{r.where()} ({r.train_problem}): install scaling-lab there with the cluster extra, "
                         f"{CLUSTER_EXTRA}")
    if any(r.store_problem is not None for r in bad):
        parts.append(SHARED)
    if len(bad) > 3:
        parts.append(f"and {len(bad) - 3} more nodes like these")
    message = "; ".join(parts) if bad else f"all {len(reports)} nodes see store {store}"
    return NodeCheck(store, tuple(reports), not bad, message)


def require_nodes_ready(ray, store: Path, *, need_train: bool, local: bool) -> None:
    """NodeCheckError, before anything is left in the store, unless every alive node can take the runs.
    `local`: the Ray is the one this process started here (only the Ray Train import is checked)."""
    if local:
        problem = train_import_problem() if need_train else None
        reports = [NodeReport(node_id=LOCAL, ip="127.0.0.1", hostname=socket.gethostname(), train_problem=problem)]
        check = judge(store, reports)
    else:
        check = check_nodes(ray, store, need_train=need_train)
    if not check.success:
        raise NodeCheckError(check.message)


def check_nodes(ray, store: Path, *, need_train: bool, answer_seconds: float = ANSWER_SECONDS) -> NodeCheck:
    """Probe every alive node of the Ray this process is connected to; see the module docstring."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

    store = Path(store)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    created = _missing_dirs(store)
    name, token = f"{PROBE_PREFIX}{secrets.token_hex(8)}", secrets.token_hex(16)
    try:
        store.mkdir(parents=True, exist_ok=True)
        (store / name).write_text(token)
    except OSError as e:
        _remove(created)
        raise NodeCheckError(f"cannot write to store {store} from this driver ({e.strerror or e})") from None
    check = None
    try:
        task = ray.remote(num_cpus=0, max_retries=0)(probe_node)
        refs = {task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            str(store), name, token, n["NodeID"], need_train): n for n in nodes}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=answer_seconds) if refs else ([], [])
        check = judge(store, [_report(ray, ref, node, ready, store, name, token, answer_seconds)
                              for ref, node in refs.items()])
        for ref in set(refs) - set(ready):
            ray.cancel(ref, force=True)
    finally:
        for path in [store / name, *(store / f"{name}.{n['NodeID']}" for n in nodes)]:
            path.unlink(missing_ok=True)
        if check is None or not check.success:
            _remove(created)
    return check


def _remove(created: list[Path]) -> None:
    """Remove the folders this check created, deepest first; rmdir keeps any that something else wrote into."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def _report(ray, ref, node: dict, ready: list, store: Path, name: str, token: str, answer_seconds: float) -> NodeReport:
    node_id, ip = node["NodeID"], node.get("NodeManagerAddress", "?")
    hostname = node.get("NodeManagerHostname", "")
    if ref not in ready:
        return NodeReport(node_id, ip, hostname, task_problem=f"no answer within {answer_seconds:g} s")
    try:
        store_problem, train_problem = ray.get(ref)
    except Exception as e:  # the task itself failed there (scaling-lab not installed on that node, say)
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]  # a RayTaskError ends with the cause
        return NodeReport(node_id, ip, hostname, task_problem=last)
    if store_problem is None:
        answer = store / f"{name}.{node_id}"
        if _read_within(answer, LOOKUP_SECONDS) != token:
            store_problem = f"the file it wrote there ({answer.name}) is not visible to this driver"
    return NodeReport(node_id, ip, hostname, store_problem=store_problem, train_problem=train_problem)


def probe_node(store: str, name: str, token: str, node_id: str, need_train: bool) -> tuple[str | None, str | None]:
    """Runs on one node: (what is wrong with the store there, why Ray Train does not import), None where fine."""
    return _store_problem(Path(store), name, token, node_id), (train_import_problem() if need_train else None)


def _store_problem(store: Path, name: str, token: str, node_id: str) -> str | None:
    content = _read_within(store / name, LOOKUP_SECONDS)
    if content is None:
        if not store.exists():
            return "no such directory"
        if not store.is_dir():
            return "a file, not a directory"
        return f"a different folder is at that path (the driver's probe file {name} is not in it)"
    if content != token:
        return f"a different folder is at that path (its {name} holds other content)"
    try:
        (store / f"{name}.{node_id}").write_text(token)
    except OSError as e:
        return f"not writable there ({e.strerror or e})"
    return None


def train_import_problem() -> str | None:
    """Why `ray.train.torch` (TorchTrainer) does not import in this Python, or None."""
    try:
        import ray.train.torch  # noqa: F401, PLC0415
    except Exception as e:  # ImportError without pydantic; a mismatched version of it fails otherwise
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None


def _read_within(path: Path, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return path.read_text()
        except OSError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.25)


def _missing_dirs(path: Path) -> list[Path]:
    """The folders, outermost first, that mkdir(parents=True) of `path` would create."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing[::-1]
