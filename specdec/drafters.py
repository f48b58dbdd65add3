"""Drafters: who proposes the γ tokens the target verifies.

A drafter has two methods, the shape of Hugging Face's candidate generators:

    propose(seq, γ) -> Proposal     seq: (L,) committed token ids; at most γ tokens back
    rollback(length)                the first `length` tokens of seq are committed; forget the rest

plus `start(prompt)` for prefill work. A new method (layer-skip, Medusa heads) is one new class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from specdec import sampling as S
from specdec.config import PROMPT_LOOKUP_MAX_NGRAM, PROMPT_LOOKUP_MIN_NGRAM, SamplingConfig
from specdec.forward import forward, new_cache, rollback


@dataclass
class Proposal:
    """x: (γ',) drafted ids with γ' ≤ γ; q: (γ', V) draft distributions, or None for a deterministic drafter."""

    x: torch.Tensor
    q: torch.Tensor | None


class DraftModelDrafter:
    """A smaller model with its own KV cache drafts autoregressively (Leviathan et al. 2023; Chen et al. 2023).

    The cache holds a prefix of the committed sequence. After a round in which all γ drafts were
    accepted it lacks x_γ (never fed), so the next round feeds two tokens in one forward instead of
    spending an extra draft step on x_γ, as gpt-fast does.
    """

    def __init__(self, model, sampling: SamplingConfig, generator: torch.Generator | None, vocab_size: int):
        self.model, self.sampling, self.generator = model, sampling, generator
        self.vocab_size = vocab_size  # the target's: draft rows are cut or zero-padded to match
        self.cache = None

    def start(self, prompt: torch.Tensor) -> None:
        self.cache = new_cache(self.model)
        forward(self.model, prompt, self.cache, keep=1)

    def propose(self, seq: torch.Tensor, gamma: int) -> Proposal:
        if gamma == 0:
            return Proposal(seq[:0], torch.empty(0, self.vocab_size, device=seq.device))
        pending = seq[self.cache.get_seq_length():]
        xs, qs = [], []
        logits = forward(self.model, pending, self.cache, keep=1)[-1]
        for i in range(gamma):
            q = S.warp(self._match_vocab(logits), self.sampling)
            x = int(q.argmax()) if self.sampling.greedy else S.sample(q, self.generator)
            xs.append(x)
            qs.append(q)
            if i + 1 < gamma:
                logits = forward(self.model, seq.new_tensor([x]), self.cache, keep=1)[-1]
        return Proposal(seq.new_tensor(xs), torch.stack(qs))

    def rollback(self, length: int) -> None:
        rollback(self.cache, length)

    def _match_vocab(self, logits: torch.Tensor) -> torch.Tensor:
        # Same tokenizer, but embedding matrices may be padded to different sizes.
        v = logits.shape[-1]
        if v == self.vocab_size:
            return logits
        if v > self.vocab_size:
            return logits[: self.vocab_size]
        return torch.cat([logits, logits.new_full((self.vocab_size - v,), float("-inf"))])


class PromptLookupDrafter:
    """Prompt-lookup decoding (Saxena 2023; HF `prompt_lookup_num_tokens`, vLLM `ngram`).

    Finds the most recent earlier occurrence of the sequence's last n tokens (n from max_ngram down
    to min_ngram) and proposes the tokens that followed it. No model, so q is one-hot (None).
    """

    def __init__(self, max_ngram: int = PROMPT_LOOKUP_MAX_NGRAM, min_ngram: int = PROMPT_LOOKUP_MIN_NGRAM):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def start(self, prompt: torch.Tensor) -> None:
        pass

    def propose(self, seq: torch.Tensor, gamma: int) -> Proposal:
        return Proposal(lookup(seq, gamma, self.max_ngram, self.min_ngram), None)

    def rollback(self, length: int) -> None:
        pass


def lookup(seq: torch.Tensor, gamma: int, max_ngram: int, min_ngram: int) -> torch.Tensor:
    """Continuation (≤ γ tokens) of the latest earlier match of seq's trailing n-gram; empty if none."""
    length = seq.shape[0]
    for n in range(min(max_ngram, length - 1), min_ngram - 1, -1):
        windows = seq[: length - 1].unfold(0, n, 1)  # (L-n, n); excludes the trailing n-gram itself
        hits = (windows == seq[length - n:]).all(-1).nonzero()
        if hits.numel():
            start = int(hits[-1]) + n
            return seq[start: start + gamma]
    return seq[:0]
