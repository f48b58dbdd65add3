"""Drafters: who proposes the γ tokens the target verifies.

A drafter (the `Drafter` protocol) has the shape of Hugging Face's candidate generators:

    start(prompt)                   prefill work; prompt: (P,) ids
    propose(seq, γ) -> Proposal     seq: (L,) committed token ids; at most γ tokens back
    rollback(length)                the first `length` tokens of seq are committed; forget the rest

and declares its optional capabilities as class attributes, so callers test a flag, never an attribute:

    observes_hidden   the loop hands observe(h) the target's final hidden state (d,) that produced the
                      last committed token (Medusa heads)
    learns_responses  the runner hands learn(tokens) each finished response of the workload, in order, so
                      later prompts can draft from earlier answers (suffix decoding)
    replayable        proposals are a function of the committed ids (and the responses learned) alone: traced
                      mode scores it by replaying propose() along the target's own trace (prompt lookup)

Layer-skip is a draft model made of the target's own first layers (layer_skip_model).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import nn

from specdec.decoding import sampling as S
from specdec.config import PROMPT_LOOKUP_MAX_NGRAM, PROMPT_LOOKUP_MIN_NGRAM, SamplingConfig
from specdec.decoding.forward import forward, new_cache, rollback


@dataclass
class Proposal:
    """x: (γ',) drafted ids with γ' ≤ γ; q: (γ', V) draft distributions, or None for a deterministic drafter."""

    x: torch.Tensor
    q: torch.Tensor | None


class Drafter(Protocol):
    """What the loops call. Optional capabilities are declared by the flags; a drafter declaring one
    implements its method (observe / learn)."""

    observes_hidden: ClassVar[bool]
    learns_responses: ClassVar[bool]
    replayable: ClassVar[bool]

    def start(self, prompt: torch.Tensor) -> None: ...

    def propose(self, seq: torch.Tensor, gamma: int) -> Proposal: ...

    def rollback(self, length: int) -> None: ...

    def observe(self, h: torch.Tensor) -> None:
        """(observes_hidden) h: (d,) the target's final hidden state that produced seq[-1]."""

    def learn(self, tokens: list[int]) -> None:
        """(learns_responses) a finished response of an earlier prompt of the same workload."""


class DraftModelDrafter:
    """A smaller model with its own KV cache drafts autoregressively (Leviathan et al. 2023; Chen et al. 2023).

    The cache holds a prefix of the committed sequence. After a round in which all γ drafts were
    accepted it lacks x_γ (never fed), so the next round feeds two tokens in one forward instead of
    spending an extra draft step on x_γ, as gpt-fast does.
    """

    observes_hidden = learns_responses = replayable = False

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


def layer_skip_model(target, layers: int):
    """The target's first `layers` decoder layers + its final norm + lm_head, as a CausalLM that shares
    every weight with the target (no copy, no extra weight memory): the draft of self-speculative
    decoding (Draft & Verify, Zhang et al. 2023; LayerSkip's early exit, Elhoushi et al. 2024).

    Drafted by DraftModelDrafter with its own KV cache of `layers` layers. A model never trained for
    early exit (LayerSkip's recipe) drafts poorly from shallow layers: that is what a sweep over L shows.
    """
    n = target.config.get_text_config().num_hidden_layers
    if not 1 <= layers < n:
        raise ValueError(f"layer-skip needs 1 ≤ L < {n} (the target's layers), got {layers}")
    cfg = copy.deepcopy(target.config)
    cfg.num_hidden_layers = layers
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = list(cfg.layer_types)[:layers]
    base = copy.copy(target.base_model)
    base._modules = dict(base._modules)  # copy.copy shares the submodule dict; give the view its own
    base.layers = nn.ModuleList(list(target.base_model.layers)[:layers])
    base.config = cfg
    view = copy.copy(target)
    view._modules = dict(view._modules)
    setattr(view, target.base_model_prefix, base)
    view.config = cfg
    return view


class MedusaDrafter:
    """Medusa-style heads (Cai et al. 2024): head k maps the target's final hidden state h_t to the
    token k+1 positions after the target's own next token. All γ ≤ K drafts come from one pass over
    one hidden state, verified as a chain of each head's top-1 (greedy) or a sample from each head's
    warped distribution q_k (sampling): Leviathan's test is exact for any q the draft was sampled from.
    """

    observes_hidden = True
    learns_responses = replayable = False

    def __init__(self, heads, lm_head, sampling: SamplingConfig, generator: torch.Generator | None,
                 vocab_size: int):
        self.heads, self.lm_head = heads, lm_head
        self.sampling, self.generator, self.vocab_size = sampling, generator, vocab_size
        self.h = None

    def start(self, prompt: torch.Tensor) -> None:
        self.h = None

    def observe(self, h: torch.Tensor) -> None:
        self.h = h

    def propose(self, seq: torch.Tensor, gamma: int) -> Proposal:
        # γ arrives capped at K (methods.effective_gamma); the heads' forward takes the first γ heads.
        if gamma == 0:
            return Proposal(seq[:0], torch.empty(0, self.vocab_size, device=seq.device))
        logits = self.heads.logits(self.h, self.lm_head, gamma)[:, : self.vocab_size]  # (γ, V)
        q = S.warp(logits, self.sampling)
        if self.sampling.greedy:
            return Proposal(q.argmax(-1).to(seq.dtype), q)
        return Proposal(seq.new_tensor([S.sample(qi, self.generator) for qi in q]), q)

    def rollback(self, length: int) -> None:
        pass


class PromptLookupDrafter:
    """Prompt-lookup decoding (Saxena 2023; HF `prompt_lookup_num_tokens`, vLLM `ngram`).

    Finds the most recent earlier occurrence of the sequence's last n tokens (n from max_ngram down
    to min_ngram) and proposes the tokens that followed it. No model, so q is one-hot (None).
    """

    observes_hidden = learns_responses = False
    replayable = True

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
