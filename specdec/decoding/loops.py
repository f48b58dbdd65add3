"""The two decoding loops: plain autoregressive (the baseline) and speculative.

Notation as in specdec.decoding.sampling: p = target, q = draft, γ = drafted tokens per round.
Both loops return data, never print: a Generation with the emitted ids and timings, and for the
speculative loop one Round per target pass. Every statistic (α, τ, ρ, speedup) is derived later.

Timing: prefill_s is the time to first token (for speculative decoding it includes the drafter's
own prefill); decode_s is the time for every later token. Clocks are synchronised on CUDA/MPS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from specdec.decoding import sampling as S
from specdec.config import SamplingConfig
from specdec.decoding.forward import clock, forward, forward_hidden, new_cache, rollback


@dataclass
class Round:
    """One target verify pass. drafted = γ' (≤ γ), accepted = n ≤ γ', emitted = tokens kept (n + 1,
    fewer only when EOS or max_new_tokens cut the round). beta: (γ',) Σ min(p, q) per drafted
    position, None without a draft distribution. Seconds are wall time."""

    drafted: int
    accepted: int
    emitted: int
    draft_tokens: list[int]
    beta: list[float] | None
    draft_s: float
    verify_s: float


@dataclass
class Generation:
    tokens: list[int]  # new token ids only, EOS included when it was emitted
    prompt_tokens: int
    prefill_s: float
    decode_s: float
    rounds: list[Round] | None = field(default=None)

    @property
    def new_tokens(self) -> int:
        return len(self.tokens)


class Stopped(Exception):
    """should_stop() turned true inside a generation: the caller drops the partial generation."""


def _check(should_stop) -> None:
    # Once per token or round: a cancel is honoured within one forward, not after the whole
    # generation (max_new_tokens forwards of a large model can take minutes). Costs ~0.1 µs a step.
    if should_stop is not None and should_stop():
        raise Stopped


def baseline_decode(
    model, prompt: torch.Tensor, max_new_tokens: int, sampling: SamplingConfig,
    eos_ids: set[int], generator: torch.Generator | None = None, should_stop=None,
) -> Generation:
    """Autoregressive decoding with the model's KV cache: one forward per token. prompt: (L,) ids.
    should_stop: () -> bool, polled every token; raises Stopped when it turns true."""
    device = prompt.device
    with torch.inference_mode():
        t0 = clock(device)
        cache = new_cache(model)
        token = S.next_token(forward(model, prompt, cache)[-1], sampling, generator)
        tokens = [token]
        t1 = clock(device)
        step = prompt.new_empty(1)
        while len(tokens) < max_new_tokens and token not in eos_ids:
            _check(should_stop)
            step[0] = token
            token = S.next_token(forward(model, step, cache)[-1], sampling, generator)
            tokens.append(token)
        t2 = clock(device)
    return Generation(tokens, int(prompt.shape[0]), t1 - t0, t2 - t1)


def speculative_decode(
    target, drafter, prompt: torch.Tensor, gamma: int, max_new_tokens: int, sampling: SamplingConfig,
    eos_ids: set[int], generator: torch.Generator | None = None, typical: tuple[float, float] | None = None,
    should_stop=None,
) -> Generation:
    """Speculative decoding (Leviathan et al. 2023, Alg. 1): the drafter proposes ≤ γ tokens, the
    target scores all of them plus one more in a single forward, and the accepted run plus one
    corrected or bonus token is kept. Both caches roll back to the committed prefix.

    Invariant between rounds: seq = prompt + emitted tokens, and the target cache holds seq[:-1].
    A drafter that observes_hidden (Medusa heads) is given the target's final hidden state that produced
    seq[-1]; the target forward then returns it beside the logits, at no extra cost.

    typical=(ε, δ) swaps the exact test for Medusa's typical acceptance (S.verify_typical): lossy, so
    only for a run that asks for it by name and measures how far the output drifts.
    should_stop: () -> bool, polled every round; raises Stopped when it turns true.
    """
    device = prompt.device
    observe = drafter.observe if drafter.observes_hidden else None
    buf = prompt.new_empty(prompt.shape[0] + max_new_tokens + gamma + 1)
    length = prompt.shape[0]
    buf[:length] = prompt
    rounds: list[Round] = []
    with torch.inference_mode():
        t0 = clock(device)
        cache = new_cache(target)
        drafter.start(prompt)
        logits, h = _target_pass(target, prompt, cache, 1, observe)
        token = S.next_token(logits[-1], sampling, generator)
        if observe is not None:
            observe(h[-1])
        buf[length] = token
        length += 1
        emitted = 1
        t1 = clock(device)
        t_round = t1
        while emitted < max_new_tokens and token not in eos_ids:
            _check(should_stop)
            seq = buf[:length]
            # Draft no more than can be emitted: the round adds accepted + 1 tokens.
            proposal = drafter.propose(seq, min(gamma, max_new_tokens - emitted - 1))
            x = proposal.x
            t_draft = clock(device)
            logits, h = _target_pass(target, torch.cat([seq[-1:], x]), cache, x.shape[0] + 1, observe)
            if typical is not None:
                n, token = S.verify_typical(logits, x, sampling, generator, *typical)
            elif sampling.greedy:
                n, token = S.verify_greedy(logits, x)
            else:
                n, token = S.verify_sampled(S.warp(logits, sampling), proposal.q, x, generator)
            new = _truncate_at_eos(x[:n].tolist() + [token], eos_ids)[: max_new_tokens - emitted]
            token = new[-1]
            if observe is not None:
                observe(h[n])  # the position whose logits gave the corrected or bonus token
            rollback(cache, length + n)
            drafter.rollback(length + n)
            buf[length: length + len(new)] = torch.tensor(new)
            length += len(new)
            emitted += len(new)
            beta = _beta(logits, proposal.q, sampling)
            t_verify = clock(device)
            rounds.append(Round(int(x.shape[0]), n, len(new), x.tolist(), beta, t_draft - t_round, t_verify - t_draft))
            t_round = t_verify
        t2 = clock(device)
    return Generation(buf[prompt.shape[0]:length].tolist(), int(prompt.shape[0]), t1 - t0, t2 - t1, rounds)



def _target_pass(target, ids, cache, keep: int, observe):
    """Target logits (keep, V), and the hidden states (keep, d) only when a drafter observes them."""
    if observe is None:
        return forward(target, ids, cache, keep), None
    return forward_hidden(target, ids, cache, keep)


def _truncate_at_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos_ids:
            return tokens[: i + 1]
    return tokens


def _beta(target_logits: torch.Tensor, q: torch.Tensor | None, sampling: SamplingConfig) -> list[float] | None:
    """β per drafted position from the same warped distributions the test used (temperature 1 when greedy)."""
    if q is None:
        return None
    p = S.warp(target_logits[: q.shape[0]], sampling)
    return [round(b, 6) for b in S.acceptance_probability(p, q).tolist()]
