"""Sampling with a KV cache: the prompt is processed once, then each new token costs one position.

With `temperature=0` the output is greedy and equals recomputing the whole sequence at every step
(tests/test_generate.py checks this), which is what makes the cache trustworthy.
"""

from __future__ import annotations

import torch

from lm.model import KVCache, Transformer


@torch.no_grad()
def generate(
    model: Transformer,
    prompt: list[int] | torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    stop_token: int | None = None,
) -> list[int]:
    """Continue `prompt` (token ids) by up to `max_new_tokens`; returns only the new tokens."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    device = next(model.parameters()).device
    ids = torch.as_tensor(prompt, dtype=torch.long, device=device).view(1, -1)
    if ids.shape[1] == 0:
        raise ValueError("prompt must hold at least one token")
    budget = model.config.context_length - ids.shape[1]
    if budget < 0:
        raise ValueError(f"prompt of {ids.shape[1]} tokens exceeds context_length={model.config.context_length}")
    max_new_tokens = min(max_new_tokens, budget)
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    cache = KVCache(model.config, 1, device=device, dtype=next(model.parameters()).dtype)
    out: list[int] = []
    logits, _ = model(ids, cache=cache)
    for _ in range(max_new_tokens):
        next_id = _sample(logits[0, -1].float(), temperature, top_k, generator)
        out.append(next_id)
        if next_id == stop_token or len(out) == max_new_tokens:
            break
        logits, _ = model(torch.tensor([[next_id]], device=device), cache=cache)
    model.train(was_training)
    return out


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> int:
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
