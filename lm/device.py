"""Device and precision selection, thread control, and the matmul peak that MFU is measured against.

The peak is *measured*, not looked up: a short square-matmul probe at the training dtype, once per
(device, dtype, threads) per process, cached on disk beside the corpus cache. Spec-sheet peaks are
unreachable on CPUs (turbo, AVX clocks) and vary with the GPU's clocks; a measured peak makes MFU on
one machine comparable across runs, and the user can always pass their own.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import atomicio
import torch

from lm.conventions import PRECISION_CHOICES


@dataclass(frozen=True)
class Placement:
    device: torch.device
    precision: str  # "fp32" or "bf16" (bf16 = autocast over fp32 master weights)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"


def select(device: str = "auto", precision: str = "auto") -> Placement:
    """CUDA with bf16 autocast when available, else CPU in fp32; explicit choices are checked."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device {device!r} is not a valid torch device: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return Placement(device=dev, precision=precision)


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads (Ray sets 1 per worker unless told otherwise)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


_PEAKS: dict[tuple, float] = {}


def _cache_file() -> Path:
    root = Path(os.environ.get("SCALING_LAB_CACHE", Path.home() / ".cache" / "scaling-lab"))
    return root / "peak_flops.json"


def measure_peak_flops(placement: Placement, *, size: int | None = None, seconds: float = 0.5,
                       cached: bool = True) -> float:
    """Best sustained FLOP/s of a square matmul at the training dtype on this device.

    cached=False measures afresh (benchmarks compare against a peak measured in the same run).
    """
    dtype = torch.bfloat16 if placement.precision == "bf16" else torch.float32
    key = (placement.name, str(dtype), torch.__version__)
    if cached and key in _PEAKS:
        return _PEAKS[key]
    path = _cache_file()
    text_key = " | ".join(key)
    try:
        on_disk = json.loads(path.read_text())
    except (OSError, ValueError):
        on_disk = {}
    if cached and text_key in on_disk:
        _PEAKS[key] = float(on_disk[text_key])
        return _PEAKS[key]

    sizes = [size] if size else ([4096, 8192] if placement.device.type == "cuda" else [512, 1024])
    sync = torch.cuda.synchronize if placement.device.type == "cuda" else (lambda: None)
    best = 0.0
    for n in sizes:  # the best size differs by cache and core count; take the best of a few
        a = torch.randn(n, n, device=placement.device, dtype=dtype)
        b = torch.randn(n, n, device=placement.device, dtype=dtype)
        a @ b  # warm up kernels and clocks
        sync()
        deadline = time.perf_counter() + seconds / len(sizes)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            a @ b
            sync()
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    _PEAKS[key] = best
    on_disk[text_key] = best
    try:
        atomicio.write_json(path, on_disk)
    except OSError:
        pass  # a read-only cache only costs a re-measurement next time
    return best
