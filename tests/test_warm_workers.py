"""The launcher's local Ray warms its workers as they start (sweeps/warm.py): a run's first task finds
torch, our training code and torch._dynamo (which torch's first optimizer imports) already imported."""

import ray

from sweeps.launch import start_ray


@ray.remote(num_cpus=1)
def imported() -> dict:
    import sys

    return {name: name in sys.modules for name in ("torch", "torch._dynamo", "experiments.runner", "sweeps.warm")}


def test_workers_of_the_launchers_local_ray_start_warm():
    ray_, started = start_ray(None, num_cpus=1)
    try:
        assert started
        assert ray_.get(imported.remote(), timeout=180) == dict.fromkeys(
            ("torch", "torch._dynamo", "experiments.runner", "sweeps.warm"), True)
    finally:
        ray_.shutdown()
