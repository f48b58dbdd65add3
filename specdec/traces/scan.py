"""A prompt's trace → the greedy round records of speculative decoding for any γ (pure functions).

Mirrors decoding.loops.speculative_decode round by round. The first token comes from the target's
prefill; a round that starts after j emitted tokens drafts g = min(γ, max_new_tokens − j − 1) tokens
(fewer when the drafter has fewer: prompt lookup's continuation may be short or empty, Medusa has K
heads), accepts the leading run n of drafts equal to the target's tokens y_j, y_{j+1}, …, then adds
y_{j+n} (the correction or bonus) and cuts what it adds at EOS and at max_new_tokens. Because every
accepted draft equals y, the next round starts from the target's own prefix again.

A round record holds what decoding.loops writes: drafted, accepted, emitted; draft_tokens and beta
only for the positions the target tested (the accepted run and the first rejection) — the drafts
after a rejection were made from the drafter's own wrong prefix, never checked, and are not traced;
timings are added later (timing.py).

A drafter is scored either from its DrafterTrace (a model teacher-forced along the target's pass:
generate.py) or, when it is `replayable` (decoding.drafters: its proposals are a function of the committed
ids and of the responses it learned, e.g. prompt lookup), by calling its own propose() at each round start
along the target's tokens — the same calls the real loop makes, so the same proposals.
"""

from __future__ import annotations

import torch

from specdec.traces.generate import DrafterTrace, PromptTrace


def leading_matches(proposal, y, start: int) -> int:
    """How many leading tokens of `proposal` equal y[start], y[start + 1], …"""
    n = 0
    for x in proposal:
        if start + n >= len(y) or x != y[start + n]:
            break
        n += 1
    return n


def model_proposal(tr: DrafterTrace, y, j: int, g: int) -> tuple[int, int, list, list | None]:
    """A draft model or layer-skip round from position j drafting g tokens → (drafted, accepted, tested
    tokens, their β). The drafter's choice at t given y_<t is top[t]; it drafts until the first miss."""
    n = 0
    while n < g and j + n < len(y) and tr.top[j + n] == y[j + n]:
        n += 1
    tested = min(n + 1, g)
    return g, n, tr.top[j: j + tested], tr.beta[j: j + tested]


def medusa_proposal(tr: DrafterTrace, y, j: int, g: int) -> tuple[int, int, list, list | None]:
    """K heads on the hidden state that produced y_{j-1}: head i proposes y_{j-1+i}; at most K drafts."""
    row = tr.top[j - 1]
    drafted = min(g, len(row))
    n = leading_matches(row[:drafted], y, j)
    tested = min(n + 1, drafted)
    beta = tr.beta[j - 1][:tested]
    return drafted, n, row[:tested], None if any(b is None for b in beta) else beta


def replay(drafter, trace: PromptTrace):
    """propose(j, g) → ≤ g ids: a replayable drafter's proposal after the prompt + the target's first j tokens."""
    ids = torch.tensor(trace.prompt + trace.extended)
    drafter.start(ids[: len(trace.prompt)])
    return lambda j, g: drafter.propose(ids[: len(trace.prompt) + j], g).x.tolist()


def rounds(trace: PromptTrace, drafter, gamma: int, max_new_tokens: int, eos_ids: set[int]) -> list[dict]:
    """The round records of greedy speculative decoding at draft length γ, without timings: {drafted,
    accepted, emitted, draft_tokens, beta}. drafter: its DrafterTrace, or a replayable Drafter."""
    y = trace.extended
    if not isinstance(drafter, DrafterTrace):
        proposal = replay(drafter, trace)

        def propose(j, g):
            x = proposal(j, g)
            n = leading_matches(x, y, j)
            return len(x), n, x[: min(n + 1, len(x))], None
    else:
        tr = drafter
        medusa = bool(tr.top) and isinstance(tr.top[0], list)

        def propose(j, g):
            return (medusa_proposal if medusa else model_proposal)(tr, y, j, g)
    out = []
    emitted = 1 if y else 0
    while 0 < emitted < max_new_tokens and y[emitted - 1] not in eos_ids:
        j = emitted
        drafted, n, tested, beta = propose(j, min(gamma, max_new_tokens - emitted - 1))
        new = _cut(y[j: j + n + 1], eos_ids)[: max_new_tokens - emitted]
        out.append({"drafted": drafted, "accepted": n, "emitted": len(new), "draft_tokens": list(tested),
                    "beta": None if beta is None else [round(float(b), 6) for b in beta]})
        emitted += len(new)
    return out


def agreement(trace: PromptTrace, drafter, max_gamma: int) -> dict:
    """Compact per-position agreement for results.json: run[j] = leading matches of a round starting at
    output position j (j = 1 … len − 1, capped at max_gamma): the accepted count at any γ is min(run, g).
    Model drafters also give match bits m_t = [top_t = y_t] and β_t per position (greedy).
    drafter: its DrafterTrace, or a replayable Drafter."""
    y = trace.extended
    out = {"run": []}
    proposal = None if isinstance(drafter, DrafterTrace) else replay(drafter, trace)
    for j in range(1, len(trace.tokens)):
        if proposal is not None:
            out["run"].append(leading_matches(proposal(j, max_gamma), y, j))
        elif drafter.top and isinstance(drafter.top[0], list):
            out["run"].append(leading_matches(drafter.top[j - 1][:max_gamma], y, j))
        else:
            out["run"].append(leading_matches(drafter.top[j: j + max_gamma], y, j))
    if proposal is None:
        tr = drafter
        if tr.top and not isinstance(tr.top[0], list):
            n = len(trace.tokens)
            out["match"] = "".join("1" if a == b else "0" for a, b in zip(tr.top[1:n], y[1:n]))
            out["beta"] = [round(float(b), 4) for b in tr.beta[1:n]]
    return out


def _cut(tokens: list[int], eos_ids: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos_ids:
            return tokens[: i + 1]
    return tokens
