"""Data parallelism for lm.train: one run's global batch split across the ranks of a torch process group.

Choices that keep a k-rank run's numbers those of the 1-rank run (tests/test_distributed.py):
- Every rank draws the same global batch (lm/batches.py: a pure function of (seed, step)) and keeps its
  own contiguous block of batch_size/k rows, so the k ranks together see exactly the 1-rank batch.
- DDP averages the gradients over ranks; each rank's loss is a mean over an equal number of tokens, so
  the average is the global batch's mean gradient, and clipping the averaged gradient is the 1-rank clip.
- The curve's training loss is the mean over ranks of the ranks' losses (all-reduced once per logging
  window, not per step), so every rank takes the same divergence decision at the same step.
- Evaluation is not sharded: every rank evaluates the whole fixed validation set on its own copy of the
  model (identical on every rank), which needs no collective and gives the 1-rank number.
- Rank 0 is the writer: only it saves checkpoints and reports progress; every rank reads the checkpoint
  when resuming.
The process group (gloo on CPU, NCCL on GPU) is set up by whoever starts the ranks (Ray Train's
TorchTrainer in sweeps/distributed.py, or torch.multiprocessing in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True, kw_only=True)
class DataParallel:
    """This process's place in the process group: rank in [0, world_size)."""

    rank: int
    world_size: int

    def __post_init__(self):
        if not isinstance(self.world_size, int) or self.world_size < 1:
            raise ValueError(f"DataParallel.world_size must be a positive integer, got {self.world_size!r}")
        if not isinstance(self.rank, int) or not 0 <= self.rank < self.world_size:
            raise ValueError(f"DataParallel.rank must be in [0, {self.world_size}), got {self.rank!r}")

    @classmethod
    def from_process_group(cls) -> DataParallel:
        """The rank and size of the default process group, which must be initialised."""
        if not dist.is_initialized():
            raise RuntimeError("DataParallel.from_process_group: torch.distributed is not initialised")
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size())

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ValueError(f"batch_size {batch_size} does not split evenly over {self.world_size} data-parallel "
                             "workers; choose a batch size divisible by workers_per_run")

    def shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's contiguous block of the global batch's rows."""
        rows = x.shape[0] // self.world_size
        block = slice(self.rank * rows, (self.rank + 1) * rows)
        return x[block], y[block]

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """DistributedDataParallel around `model`; buffers (RoPE tables) are equal on every rank, so none
        are broadcast."""
        ids = [device] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The elementwise mean of `values` over ranks (an all-reduce)."""
        out = values.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / self.world_size
