"""A hand-built language model with a real KV cache, for exact-distribution tests.

Its next-token logits are a fixed random function of the whole context read through the cache:

    logits(x_1..x_t) = A[x_t] + B[x_{t-1}] + C[t]        (A, B: (V, V); C: (T, V))

so a draft cache holding the wrong tokens (a skipped rollback) changes the logits. The "KV cache"
stores the token ids themselves (as float keys in a transformers DynamicCache), so crop/rollback work
exactly as for a real model. One forward costs ~0.1 ms instead of a few ms for a tiny HF model,
which buys the thousands of samples a joint-distribution test needs.

`logits_of(contexts)` computes the same function without any cache: the independent side a test
enumerates the exact distribution from.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn
from transformers import LlamaConfig

MAX_LEN = 64


class TableLM(nn.Module):
    def __init__(self, vocab_size: int, seed: int, scale: float = 1.5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.V = vocab_size
        self.A = torch.randn(vocab_size, vocab_size, generator=g) * scale
        self.B = torch.randn(vocab_size, vocab_size, generator=g) * scale * 0.5
        self.C = torch.randn(MAX_LEN, vocab_size, generator=g) * scale * 0.5
        # DynamicCache(config=...) needs a decoder config: one cache layer holds the ids.
        self.config = LlamaConfig(vocab_size=vocab_size, hidden_size=8, num_hidden_layers=1,
                                  num_attention_heads=1, num_key_value_heads=1, intermediate_size=8)
        self.lm_head = nn.Linear(1, vocab_size)  # only for vocab-size lookups (weight.shape[0])

    def get_output_embeddings(self):
        return self.lm_head

    def logits_of(self, contexts: torch.Tensor) -> torch.Tensor:
        """contexts (B, t) full token ids, t ≥ 1 → logits (B, V) of the next token. No cache."""
        t = contexts.shape[1]
        prev = self.B[contexts[:, -2]] if t >= 2 else torch.zeros(contexts.shape[0], self.V)
        return self.A[contexts[:, -1]] + prev + self.C[t - 1]

    def forward(self, input_ids, past_key_values=None, use_cache=True, logits_to_keep=1):
        ids = input_ids[0]
        layer = past_key_values.layers[0]
        past = layer.keys[0, 0, :, 0].long() if layer.is_initialized else ids[:0]
        new = ids.float()[None, None, :, None]
        past_key_values.update(new, new, 0)
        full = torch.cat([past, ids])
        n = full.shape[0]
        rows = [self.logits_of(full[None, : n - k]) for k in range(logits_to_keep - 1, -1, -1)]
        return SimpleNamespace(logits=torch.cat(rows)[None])
