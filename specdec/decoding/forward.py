"""Model forward passes over a KV cache, the cache rollback, and a device-synchronised clock.

Shared by the decoding loops and the draft-model drafter; nothing here knows about speculation.
"""

from __future__ import annotations

import time

import torch
from transformers import DynamicCache


def new_cache(model) -> DynamicCache:
    return DynamicCache(config=model.config)


def forward(model, ids: torch.Tensor, cache: DynamicCache, keep: int = 1) -> torch.Tensor:
    """Run ids (n,) through model, appending to cache. Returns float32 logits (keep, V) for the last
    `keep` positions: computing the lm_head only where it is needed matters at a 150k vocabulary.
    """
    out = model(input_ids=ids[None], past_key_values=cache, use_cache=True, logits_to_keep=keep)
    return out.logits[0].float()


def forward_hidden(model, ids: torch.Tensor, cache: DynamicCache, keep: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """forward() that also returns the final hidden states (keep, d) the logits came from (after the
    final norm): what Medusa heads read. Same arithmetic as the CausalLM's own forward."""
    out = model.base_model(input_ids=ids[None], past_key_values=cache, use_cache=True)
    h = out.last_hidden_state[0, -keep:]
    return model.get_output_embeddings()(h).float(), h


def rollback(cache: DynamicCache, length: int) -> None:
    """Drop cached positions ≥ length, keeping the first `length` (no recomputation)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


def clock(device: torch.device) -> float:
    """perf_counter after the device has finished queued work (CUDA/MPS kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    return time.perf_counter()
