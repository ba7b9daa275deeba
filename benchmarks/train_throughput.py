"""Training throughput against the device's measured matmul peak, for models from 10^5 to 10^7 parameters.

For each size: tokens/s of full optimisation steps (forward, backward, clipping, AdamW), the FLOP/s
that implies under the exact count (lm/accounting.py), and its ratio to the matmul peak measured in the
same run on the same device (lm/device.py). Random token ids stand in for data: the data loader is
not what is measured, and it keeps the benchmark free of corpus preparation.

    python benchmarks/train_throughput.py                       # CPU, fp32
    python benchmarks/train_throughput.py --device cuda --precision bf16 --compile --sizes 1.2e8
"""

from __future__ import annotations

import argparse
import time

import torch

from lm.accounting import param_counts, training_flops_per_token
from lm.device import measure_peak_flops, select, set_threads
from lm.model import Transformer
from lm.optim import make_optimizer
from lm.shapes import shape_for_params


def measure(cfg, placement, *, batch_size: int, steps: int, warmup: int, compile: bool) -> float:
    """Tokens per second over `steps` timed optimisation steps."""
    torch.manual_seed(0)
    model = Transformer(cfg).to(placement.device)
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    run = torch.compile(model) if compile else model
    x = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length), device=placement.device)
    sync = torch.cuda.synchronize if placement.device.type == "cuda" else (lambda: None)

    def step():
        with torch.autocast(placement.device.type, dtype=placement.autocast_dtype,
                            enabled=placement.autocast_dtype is not None):
            _, loss = run(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch_size * cfg.context_length / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 3e6, 1e7], help="non-embedding parameter targets")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--tokens-per-step", type=int, default=8192)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int)
    args = p.parse_args()

    set_threads(args.threads)
    placement = select(args.device, args.precision)
    peak = measure_peak_flops(placement, seconds=3.0, cached=False)
    print(f"device {placement.name}, {placement.precision}, compile={args.compile}; "
          f"measured matmul peak {peak / 1e9:,.1f} GFLOP/s")
    print(f"{'target N':>10} {'layers':>6} {'width':>6} {'N non-emb':>11} {'N total':>11} "
          f"{'tokens/s':>11} {'GFLOP/s':>9} {'of peak':>8}")
    for target in args.sizes:
        cfg = shape_for_params(target, vocab_size=args.vocab_size, context_length=args.context)
        counts = param_counts(cfg)
        batch = max(1, args.tokens_per_step // args.context)
        tps = measure(cfg, placement, batch_size=batch, steps=args.steps, warmup=args.warmup, compile=args.compile)
        flops = tps * training_flops_per_token(cfg)
        print(f"{target:>10.0e} {cfg.n_layers:>6} {cfg.d_model:>6} {counts.non_embedding:>11,} {counts.total:>11,} "
              f"{tps:>11,.0f} {flops / 1e9:>9,.1f} {flops / peak:>8.2f}")


if __name__ == "__main__":
    main()
