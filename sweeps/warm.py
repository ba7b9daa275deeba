"""Imported by each worker process of the launcher's local Ray as it starts: the imports every run needs.

A worker's first run used to pay, outside its own training time, for importing torch and our training
code (~3 s on a loaded 2-core machine) and for its first optimizer, whose construction imports
torch._dynamo (torch/optim/optimizer.py, ~2.7 s; measured with cProfile, docs/performance.md). With short
runs that was most of the scheduling overhead. `sweeps.launch.start_ray` names this module in Ray's
`preload_python_modules`, so Ray's prestarted workers import it while `ray.init` returns and the driver
plans and tokenizes, and Ray reuses the warmed workers for every run of the sweep. A cluster we did not
start keeps its own worker settings: there each worker's first run still pays these imports.
Importing it has that effect on purpose and nothing else: no state is kept.
"""

from __future__ import annotations

import torch

import experiments.runner  # noqa: F401  (what train_task imports: lm.train, lm.data, the store)
from experiments import provenance
from lm.optim import make_optimizer

make_optimizer(torch.nn.Linear(2, 2, bias=False), lr=1e-3, weight_decay=0.0)  # imports torch._dynamo
provenance.collect()  # git and package versions, computed once per process
