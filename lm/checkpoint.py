"""Atomic checkpoints: model, optimizer, step, RNG, loss curve so far, and the configs that made them.

A checkpoint is one file written to a temporary name in the same directory, flushed to disk, then
renamed over the old one, so a crash at any moment leaves either the previous checkpoint or the new
one, never half of one. Loading uses `torch.load(weights_only=True)`: a checkpoint cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import atomicio
import torch

FORMAT = 1
FILENAME = "checkpoint.pt"
STEP_FILENAME = "checkpoint-step{step}.pt"  # kept at a given step (a WSD trunk's branch steps)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, or made by a different configuration."""


def save(path: str | Path, state: dict) -> None:
    with atomicio.writing(path) as f:
        torch.save({"format": FORMAT, **state}, f)


def step_path(folder: str | Path, step: int) -> Path:
    """Where a run in `folder` keeps its checkpoint at `step` (lm.train's checkpoint_steps)."""
    return Path(folder) / STEP_FILENAME.format(step=step)


def load(path: str | Path) -> dict:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # torch raises many kinds for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a scaling-lab checkpoint of format {FORMAT}")
    return state


def check_matches(path: str | Path, what: str, saved: dict, current: dict) -> None:
    """Raise CheckpointError naming every field where the checkpoint's config differs from this run's."""
    keys = sorted(set(saved) | set(current))
    diffs = [f"{k}: checkpoint has {saved.get(k)!r}, this run has {current.get(k)!r}"
             for k in keys if saved.get(k) != current.get(k)]
    if diffs:
        raise CheckpointError(f"checkpoint {path} was made with a different {what}: " + "; ".join(diffs))
