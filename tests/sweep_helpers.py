"""Small sweep files and polling for the Ray tests."""

import time
from pathlib import Path

from analysis.table import read_table
from sweeps.plan import plan

SWEEP = """
name: {name}
kind: isoflop
compute: 6N                 # these machinery tests keep the budgets (and run times) they were written with
family: {{depth: 2, head_size: 4}}
corpus: {{source: stdlib, vocab_size: 257, max_bytes: 300000}}
training: {{context_length: 64, batch_size: 16, lr: 1.0e-2, precision: fp32, eval_tokens: 4096}}
isoflop: {{budgets: {budgets}, sizes_per_budget: {sizes}, span: 1.5, center: {{tokens_per_param: 6}}}}
resources: {{cpus_per_run: 1, gpus_per_run: 0}}
planning: {{device: cpu, min_steps: 50}}
"""


def sweep_file(tmp_path: Path, *, name="t", budgets="[6.5e9]", sizes=2) -> Path:
    path = tmp_path / f"{name}-{len(budgets)}-{sizes}.yaml"
    path.write_text(SWEEP.format(name=name, budgets=budgets, sizes=sizes))
    return path


def wait_for(predicate, timeout=120.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def assert_every_run_completed_once(thread, reports, store, config):
    """After a fault mid-launch: the launch finished, retried, and left one completed row per planned run."""
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert reports[0].retries >= 1
    table = read_table(store)
    assert len(table) == len(plan(config).runs) == table["run_id"].nunique()
    assert (table["status"] == "completed").all()
    return table


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (read from /proc), to stop the Ray processes a test started."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
